"""POST /{version}/models/{model}:generateContent, :streamGenerateContent and :countTokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.formats.base import ClientFormat
from llmrelay.formats.gemini import (
    ChatToGeminiStream,
    chat_to_gemini_reply,
    gemini_error,
    gemini_stream_error,
    gemini_to_chat,
)
from llmrelay.providers.base import Capability, UpstreamRequest
from llmrelay.providers.gemini import GeminiProvider
from llmrelay.relay.auth import authenticate
from llmrelay.relay.chat import ChatJob
from llmrelay.relay.counting import ForwardedCountJob, count_offline
from llmrelay.relay.errors import RelayError
from llmrelay.relay.request import ChatRequest
from llmrelay.relay.routing import Route
from llmrelay.store.cache import KeyState
from llmrelay.surfaces.http import HttpRequest
from llmrelay.surfaces.openai.fields import json_object

if TYPE_CHECKING:
    from llmrelay.app import Gateway

GEMINI_CLIENT = ClientFormat(
    name="gemini",
    endpoint="generateContent",
    encode_reply=lambda completion, usage, request: orjson.dumps(
        chat_to_gemini_reply(completion, usage, request.model)
    ),
    stream_encoder=lambda request: ChatToGeminiStream(request.model),  # the relay frames JSON arrays
    render_error=gemini_error,
    stream_error=gemini_stream_error,
)


def parse_generate_request(raw: bytes, model: str, stream: bool, sse: bool) -> ChatRequest:
    native = json_object(raw)
    body = gemini_to_chat(native, model, stream)  # validates; a bad body is a 400 before anything is billed
    return ChatRequest(
        source_format="gemini",
        raw=raw,
        body=body,
        model=model,
        stream=stream,
        include_usage=True,  # every Gemini chunk carries usage
        max_output_tokens=body.get("max_tokens"),
        choices=body.get("n") or 1,
        native=native,
        sse=sse,
    )


def _count_request(native: dict[str, Any]) -> dict[str, Any]:
    """countTokens takes `contents` (and maybe more) or a whole `generateContentRequest`."""
    inner = native.get("generateContentRequest") or native.get("generate_content_request")
    return inner if isinstance(inner, dict) else native


async def model_action(gw: Gateway, http: HttpRequest) -> None:
    http.render_error = gemini_error  # from here on every error is Google-shaped
    key = authenticate(gw.keys, http, b"x-goog-api-key", "key")
    model, action = http.path_params["model"], http.path_params["action"]
    if action not in ("generateContent", "streamGenerateContent", "countTokens"):
        raise RelayError(404, f"Method {action} is not found for models/{model}.", "invalid_request_error")
    raw = await http.body(gw.config.max_body_bytes)
    if action == "countTokens":
        await _count_tokens(gw, http, key, model, raw)
        return
    stream = action == "streamGenerateContent"
    request = parse_generate_request(raw, model, stream, sse=http.query().get("alt") == "sse")
    await gw.relay.run(http, key, ChatJob(request, GEMINI_CLIENT))


async def _count_tokens(gw: Gateway, http: HttpRequest, key: KeyState, model: str, raw: bytes) -> None:
    """{"totalTokens": N}: asked of a Gemini channel, counted offline for any other model."""
    native = json_object(raw)
    body = gemini_to_chat(_count_request(native), model, False)
    route, _price = gw.relay.route_and_price(key, model, Capability.CHAT)
    provider = route.channel.provider
    if isinstance(provider, GeminiProvider):

        def build(route: Route) -> UpstreamRequest:
            return provider.upstream(route.channel.config, route.upstream_model, "countTokens", raw)

        await gw.relay.run(http, key, ForwardedCountJob(model, "countTokens", GEMINI_CLIENT, build))
        return
    await http.respond_json(200, {"totalTokens": await count_offline(body, route.upstream_model)})
