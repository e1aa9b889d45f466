"""POST /v1/messages and POST /v1/messages/count_tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from llmrelay.formats.anthropic import (
    ChatToAnthropicStream,
    anthropic_error,
    anthropic_stream_error,
    anthropic_to_chat,
    chat_to_anthropic_reply,
)
from llmrelay.formats.base import ClientFormat
from llmrelay.formats.splice import splice_json_body
from llmrelay.providers.anthropic import COUNT_TOKENS_PATH, AnthropicProvider
from llmrelay.providers.base import Capability, UpstreamRequest
from llmrelay.relay.auth import authenticate
from llmrelay.relay.chat import ChatJob
from llmrelay.relay.counting import ForwardedCountJob, count_offline
from llmrelay.relay.errors import bad_request
from llmrelay.relay.request import ChatRequest
from llmrelay.relay.routing import Route
from llmrelay.store.cache import KeyState
from llmrelay.surfaces.http import HttpRequest
from llmrelay.surfaces.openai.fields import json_object

if TYPE_CHECKING:
    from llmrelay.app import Gateway

KEY_HEADER = b"x-api-key"
# Client headers a Claude channel should see when the body is forwarded as sent: the API version the client
# wrote its body for, and betas that switch on features (prompt-caching TTLs, long output).
FORWARDED_HEADERS = (b"anthropic-version", b"anthropic-beta")

ANTHROPIC_CLIENT = ClientFormat(
    name="anthropic",
    endpoint="messages",
    encode_reply=lambda completion, usage, request: orjson.dumps(
        chat_to_anthropic_reply(completion, usage, request.model)
    ),
    stream_encoder=lambda request: ChatToAnthropicStream(request.model),
    render_error=anthropic_error,
    stream_error=anthropic_stream_error,
)


def forwarded_headers(http: HttpRequest) -> dict[str, str]:
    return {name.decode(): value for name in FORWARDED_HEADERS if (value := http.header(name))}


def parse_messages_request(raw: bytes, http: HttpRequest) -> ChatRequest:
    native = json_object(raw)
    body = anthropic_to_chat(native)  # validates; a bad body is a 400 before anything is billed
    stream = native.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream: Input should be a valid boolean", "stream")
    return ChatRequest(
        source_format="anthropic",
        raw=raw,
        body=body,
        model=native["model"],
        stream=stream,
        include_usage=True,  # an Anthropic stream always reports usage
        max_output_tokens=body["max_tokens"],  # as an int, even when the client wrote 10.0
        choices=1,
        native=native,
        upstream_headers=forwarded_headers(http),
    )


async def _authenticated_body(gw: Gateway, http: HttpRequest) -> tuple[KeyState, bytes]:
    http.render_error = anthropic_error  # from here on every error is Anthropic-shaped
    key = authenticate(gw.keys, http, KEY_HEADER)
    return key, await http.body(gw.config.max_body_bytes)


async def messages(gw: Gateway, http: HttpRequest) -> None:
    key, raw = await _authenticated_body(gw, http)
    await gw.relay.run(http, key, ChatJob(parse_messages_request(raw, http), ANTHROPIC_CLIENT))


async def count_tokens(gw: Gateway, http: HttpRequest) -> None:
    """The prompt's input tokens: asked of a Claude channel, counted offline for any other model."""
    key, raw = await _authenticated_body(gw, http)
    native = json_object(raw)
    # The same request as /v1/messages without max_tokens: validate it as one.
    body = anthropic_to_chat({**native, "max_tokens": 1})
    route, _price = gw.relay.route_and_price(key, native["model"], Capability.CHAT)
    provider = route.channel.provider
    if isinstance(provider, AnthropicProvider):
        headers = forwarded_headers(http)

        def build(route: Route) -> UpstreamRequest:
            new_model = route.upstream_model if route.upstream_model != native["model"] else None
            body = splice_json_body(raw, native, new_model, {}) if new_model else raw
            return provider.upstream(route.channel.config, COUNT_TOKENS_PATH, body, headers)

        job = ForwardedCountJob(native["model"], "messages.count_tokens", ANTHROPIC_CLIENT, build)
        await gw.relay.run(http, key, job)
        return
    await http.respond_json(200, {"input_tokens": await count_offline(body, route.upstream_model)})
