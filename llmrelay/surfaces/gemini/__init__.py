"""The Gemini API surface, for the google-genai SDK and Gemini REST clients: `POST
/{v1beta,v1}/models/{model}:generateContent`, `:streamGenerateContent` (SSE with `alt=sse`, else a JSON
array), `:countTokens`, and the model listings. Keys arrive in `x-goog-api-key` or `?key=`; errors go out
in Google's shape. Any model the gateway serves can be reached this way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from llmrelay.surfaces.gemini.generate import model_action
from llmrelay.surfaces.http import HttpRequest
from llmrelay.surfaces.models import list_gemini_models, retrieve_gemini_model

if TYPE_CHECKING:
    from llmrelay.app import Gateway

Handler = Callable[["Gateway", HttpRequest], Awaitable[None]]

ROUTES: dict[str, dict[str, Handler]] = {
    "/v1beta/models": {"GET": list_gemini_models},
    "/v1beta/models/{model}": {"GET": retrieve_gemini_model},
    "/v1beta/models/{model}:{action}": {"POST": model_action},
    # google-genai 3.x calls /v1 by default; GET /v1/models{,/id} tell Gemini callers apart by their key
    "/v1/models/{model}:{action}": {"POST": model_action},
}
