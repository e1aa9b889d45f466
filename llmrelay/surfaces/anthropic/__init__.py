"""The Anthropic Messages API surface, for the anthropic SDK and Claude-native clients (Claude Code):
`POST /v1/messages` and `POST /v1/messages/count_tokens`. Keys arrive in `x-api-key` (or as a Bearer token);
errors go out in Anthropic's shape. Any model the gateway serves can be reached this way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from llmrelay.surfaces.anthropic.messages import count_tokens, messages
from llmrelay.surfaces.http import HttpRequest

if TYPE_CHECKING:
    from llmrelay.app import Gateway

Handler = Callable[["Gateway", HttpRequest], Awaitable[None]]

ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/messages": {"POST": messages},
    "/v1/messages/count_tokens": {"POST": count_tokens},
}
