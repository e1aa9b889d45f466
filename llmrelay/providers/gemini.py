"""The Gemini adaptor: Google AI Studio's Generative Language API
(`POST {base_url}/{api_version}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`).

The channel's API version is used whatever version the client called; the key goes in `x-goog-api-key`.
A Gemini client's body is forwarded as it came (the model is in the URL, so a mapped name changes nothing in
the body); any other client's request is encoded from the internal shape by `formats/gemini.py`, with http(s)
image URLs fetched and sent inline, since Gemini reads images only inline or from its own file store.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.config import ChannelConfig
from llmrelay.formats.base import Completion
from llmrelay.formats.gemini import (
    GeminiPassthroughTap,
    GeminiToChatStream,
    chat_to_gemini,
    gemini_reply_to_chat,
    gemini_reply_usage,
)
from llmrelay.metering.pricing import Usage
from llmrelay.providers.base import Capability, UpstreamRequest
from llmrelay.relay.request import ChatRequest


def _with_output_cap(body: dict[str, Any], cap: int) -> dict[str, Any]:
    config = body.get("generationConfig") or body.get("generation_config") or {}
    rest = {k: v for k, v in body.items() if k not in ("generationConfig", "generation_config")}
    return {**rest, "generationConfig": {**config, "maxOutputTokens": cap}}


class GeminiProvider:
    wire_format = "gemini"
    capabilities = frozenset({Capability.CHAT})
    inlines_images = True

    def upstream(self, channel: ChannelConfig, model: str, action: str, body: bytes) -> UpstreamRequest:
        """A call of `action` (generateContent, streamGenerateContent, countTokens) on the channel's model."""
        query = "?alt=sse" if action == "streamGenerateContent" else ""
        url = f"{channel.base_url}/{channel.api_version}/models/{model}:{action}{query}"
        headers = {"content-type": "application/json", **channel.headers}
        if channel.api_key:
            headers["x-goog-api-key"] = channel.api_key
        return UpstreamRequest(url, headers, body)

    def chat_request(
        self,
        channel: ChannelConfig,
        request: ChatRequest,
        upstream_model: str,
        max_output_cap: int | None,
        default_max_output: int,
    ) -> UpstreamRequest:
        """`default_max_output` is not needed: Gemini's own default is the model's limit."""
        action = "streamGenerateContent" if request.stream else "generateContent"
        if request.source_format == self.wire_format:
            body = request.raw
            if max_output_cap is not None:  # the cap is nested in generationConfig: encoded afresh (rare)
                body = orjson.dumps(_with_output_cap(request.native, max_output_cap))
            return self.upstream(channel, upstream_model, action, body)
        native = chat_to_gemini(request.body, request.inline_images)
        if max_output_cap is not None:
            native = _with_output_cap(native, max_output_cap)
        return self.upstream(channel, upstream_model, action, orjson.dumps(native))

    def parse_chat_response(self, body: bytes) -> tuple[Usage | None, list[str]]:
        return gemini_reply_usage(body)

    def chat_stream_tap(self, request: ChatRequest) -> GeminiPassthroughTap:
        return GeminiPassthroughTap()  # the JSON-array form is framed by the relay

    def decode_chat_reply(self, body: bytes, request: ChatRequest) -> tuple[Completion, Usage | None]:
        reply = orjson.loads(body)
        if not isinstance(reply, dict):
            raise ValueError("the upstream reply is not a GenerateContentResponse")
        return gemini_reply_to_chat(reply, request.model)

    def stream_decoder(self, request: ChatRequest) -> GeminiToChatStream:
        return GeminiToChatStream(request.model)
