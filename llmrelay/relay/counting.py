"""Counting a prompt's tokens for a client that asks (Anthropic's count_tokens, Gemini's countTokens).

A channel of the client's own format is asked (its count is the model's own, and free); any other model's
prompt is counted offline from the internal shape, with OpenAI's vocabularies (exact for OpenAI models, an
estimate for others).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmrelay.formats.base import ClientFormat
from llmrelay.metering.pricing import Price, Usage
from llmrelay.metering.tokens import count_chat_prompt, ensure_tokenizers
from llmrelay.providers.base import Capability, UpstreamRequest
from llmrelay.relay.jobs import Job
from llmrelay.relay.routing import Route


class ForwardedCountJob(Job):
    """A token count asked of a same-format channel: relayed as it answers, free, and still recorded."""

    capability = Capability.CHAT

    def __init__(
        self, model: str, endpoint: str, client: ClientFormat, build: Callable[[Route], UpstreamRequest]
    ) -> None:
        self.model = model
        self.endpoint = endpoint
        self.client = client
        self._build = build

    def bound(self, price: Price) -> Usage:
        return Usage()

    def upstream_request(self, route: Route, cap: int | None) -> UpstreamRequest:
        return self._build(route)

    async def meter(self, body: bytes, route: Route) -> tuple[Usage, str]:
        return Usage(), "request"


async def count_offline(body: dict[str, Any], upstream_model: str) -> int:
    """The prompt tokens of an internal chat body, framed as OpenAI frames messages."""
    await ensure_tokenizers()
    return count_chat_prompt(body["messages"], upstream_model, body.get("tools"))
