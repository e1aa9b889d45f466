"""The Anthropic adaptor: Claude through the Messages API (`POST {base_url}/v1/messages`).

An Anthropic client's request is forwarded as it came (the model name and, when a key can only afford part
of a reply, max_tokens spliced in) with its `anthropic-beta` header; a request from any other client is
encoded from the internal shape by `formats/anthropic.py`, which also decodes replies and streams.
"""

from __future__ import annotations

import orjson

from llmrelay.config import ChannelConfig
from llmrelay.formats.anthropic import (
    ANTHROPIC_VERSION,
    AnthropicPassthroughTap,
    AnthropicToChatStream,
    anthropic_reply_to_chat,
    anthropic_reply_usage,
    chat_to_anthropic,
    uses_json_tool,
)
from llmrelay.formats.base import Completion
from llmrelay.formats.splice import splice_json_body
from llmrelay.metering.pricing import Usage
from llmrelay.providers.base import Capability, UpstreamRequest
from llmrelay.relay.request import ChatRequest

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


class AnthropicProvider:
    wire_format = "anthropic"
    capabilities = frozenset({Capability.CHAT})
    inlines_images = False  # Claude fetches image URLs itself (a `url` image source)

    def upstream(
        self, channel: ChannelConfig, path: str, body: bytes, client_headers: dict[str, str] | None = None
    ) -> UpstreamRequest:
        """A request to the channel: the key in `x-api-key`, the API version every call must name."""
        headers = {
            "content-type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **(client_headers or {}),
            **channel.headers,
        }
        if channel.api_key:
            headers["x-api-key"] = channel.api_key
        return UpstreamRequest(f"{channel.base_url}{path}", headers, body)

    def chat_request(
        self,
        channel: ChannelConfig,
        request: ChatRequest,
        upstream_model: str,
        max_output_cap: int | None,
        default_max_output: int,
    ) -> UpstreamRequest:
        if request.source_format == self.wire_format:
            new_model = upstream_model if upstream_model != request.model else None
            changes = {"max_tokens": max_output_cap} if max_output_cap is not None else {}
            body = request.raw
            if new_model is not None or changes:
                body = splice_json_body(body, request.native, new_model, changes)
            return self.upstream(channel, MESSAGES_PATH, body, request.upstream_headers)
        max_tokens = max_output_cap or request.max_output_tokens or default_max_output
        body = orjson.dumps(chat_to_anthropic(request.body, upstream_model, max_tokens))
        return self.upstream(channel, MESSAGES_PATH, body)

    def parse_chat_response(self, body: bytes) -> tuple[Usage | None, list[str]]:
        return anthropic_reply_usage(body)

    def chat_stream_tap(self, request: ChatRequest) -> AnthropicPassthroughTap:
        return AnthropicPassthroughTap()  # Anthropic streams always carry usage; nothing to add or strip

    def decode_chat_reply(self, body: bytes, request: ChatRequest) -> tuple[Completion, Usage | None]:
        reply = orjson.loads(body)
        if not isinstance(reply, dict):
            raise ValueError("the upstream reply is not a message")
        return anthropic_reply_to_chat(reply, uses_json_tool(request.body))

    def stream_decoder(self, request: ChatRequest) -> AnthropicToChatStream:
        return AnthropicToChatStream(uses_json_tool(request.body))
