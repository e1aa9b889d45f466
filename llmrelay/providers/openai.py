"""The OpenAI-compatible adaptor: OpenAI itself and any server that speaks its API (vLLM, Ollama, ...).

When the client also speaks OpenAI's format the body is forwarded as the client sent it: only the model
name (when the channel maps it), `stream_options` (so usage is always reported) and, when a key can only
afford part of a reply, an output cap are spliced into the bytes, without decoding and re-encoding them.
A client of another format is served from its request's internal (OpenAI) shape, encoded afresh.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.config import ChannelConfig
from llmrelay.formats.base import Completion
from llmrelay.formats.openai import (
    OpenAIStreamTap,
    OpenAIToChatStream,
    choice_texts,
    openai_reply_to_chat,
    usage_from_openai,
)
from llmrelay.formats.responses import ResponsesStreamTap
from llmrelay.formats.splice import splice_json_body
from llmrelay.metering.pricing import Usage
from llmrelay.providers.base import Capability, StreamTap, UpstreamRequest
from llmrelay.relay.errors import bad_request
from llmrelay.relay.request import ChatRequest
from llmrelay.surfaces.multipart import MultipartForm

_REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def usage_requested(body: dict[str, Any]) -> dict[str, Any]:
    """The change that makes an upstream stream report usage (the client's other stream options kept)."""
    return {"stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}


def output_cap_field(model: str) -> str:
    """Reasoning models (o1 family, gpt-5) take max_completion_tokens and reject max_tokens."""
    return "max_completion_tokens" if model.startswith(_REASONING_MODEL_PREFIXES) else "max_tokens"


class OpenAICompatibleProvider:
    wire_format = "openai"
    capabilities = frozenset(Capability)
    inlines_images = False  # OpenAI-compatible servers fetch image URLs themselves

    def url(self, channel: ChannelConfig, path: str, upstream_model: str) -> str:
        """Where an endpoint is called. OpenAI names the model in the body, so it is not part of the URL."""
        return f"{channel.base_url}{path}"

    def auth_headers(self, channel: ChannelConfig) -> dict[str, str]:
        return {"Authorization": f"Bearer {channel.api_key}"} if channel.api_key else {}

    def reports_stream_usage(self, channel: ChannelConfig) -> bool:
        return True

    def _upstream(
        self, channel: ChannelConfig, path: str, upstream_model: str, body: bytes, content_type: str
    ) -> UpstreamRequest:
        # The channel's own key wins over a same-named header in its `headers:`.
        headers = {"Content-Type": content_type, **channel.headers, **self.auth_headers(channel)}
        return UpstreamRequest(self.url(channel, path, upstream_model), headers, body)

    def chat_request(
        self,
        channel: ChannelConfig,
        request: ChatRequest,
        upstream_model: str,
        max_output_cap: int | None,
        default_max_output: int,
    ) -> UpstreamRequest:
        """`default_max_output` is not needed: an OpenAI model without max_tokens writes up to its own limit."""
        if request.source_format == "responses" and channel.responses:
            return self._responses_request(channel, request, upstream_model, max_output_cap)
        changes, removals = reasoning_model_changes(request.body, upstream_model)
        if request.stream and not request.include_usage and self.reports_stream_usage(channel):
            changes.update(usage_requested(request.body))
        if max_output_cap is not None:
            changes[output_cap_field(upstream_model)] = max_output_cap
        new_model = upstream_model if upstream_model != request.model else None
        body = request.raw
        if removals or request.source_format != self.wire_format:
            # Encoded afresh: a client of another format sent other bytes (the canonical body is its
            # translation), or keys must be dropped, which splicing cannot do (o1-family quirks).
            kept = {k: v for k, v in request.body.items() if k not in removals}
            body = orjson.dumps({**kept, "model": upstream_model, **changes})
        elif new_model is not None or changes:
            body = splice_json_body(body, request.body, new_model, changes)
        return self._upstream(channel, "/chat/completions", upstream_model, body, "application/json")

    def _responses_request(
        self, channel: ChannelConfig, request: ChatRequest, upstream_model: str, max_output_cap: int | None
    ) -> UpstreamRequest:
        """A Responses API request, forwarded as sent but for a mapped model name and an output cap (a
        Responses stream always ends with its usage, so nothing needs asking for)."""
        changes = {"max_output_tokens": max_output_cap} if max_output_cap is not None else {}
        new_model = upstream_model if upstream_model != request.model else None
        body = request.raw
        if new_model is not None or changes:
            body = splice_json_body(body, request.native, new_model, changes)
        return self._upstream(channel, "/responses", upstream_model, body, "application/json")

    def json_request(
        self,
        channel: ChannelConfig,
        path: str,
        upstream_model: str,
        raw: bytes,
        body: dict[str, Any],
        new_model: str | None,
        changes: dict[str, Any] | None = None,
    ) -> UpstreamRequest:
        """Any OpenAI JSON endpoint, forwarded as sent apart from the model name and `changes`."""
        if new_model is not None or changes:
            if "model" not in body:  # the client relied on the endpoint's default model
                changes = {**(changes or {}), "model": new_model}
                new_model = None
            raw = splice_json_body(raw, body, new_model, changes or {})
        return self._upstream(channel, path, upstream_model, raw, "application/json")

    def multipart_request(
        self, channel: ChannelConfig, path: str, upstream_model: str, form: MultipartForm, changes: dict[str, str]
    ) -> UpstreamRequest:
        """A form upload, forwarded as sent unless fields (a mapped model name) must change."""
        body = form.with_fields(changes) if changes else form.raw
        return self._upstream(channel, path, upstream_model, body, form.content_type)

    def parse_chat_response(self, body: bytes) -> tuple[Usage | None, list[str]]:
        """The reported usage of a chat or completion reply, and (when there is none) its generated texts."""
        response = orjson.loads(body)
        if not isinstance(response, dict):
            raise ValueError("the upstream reply is not a JSON object")
        usage = response.get("usage")
        if isinstance(usage, dict):
            return usage_from_openai(usage), []
        texts: list[str] = []
        for choice in response.get("choices") or ():
            if isinstance(choice, dict):
                texts.extend(choice_texts(choice))
        return None, texts

    def stream_tap(self, client_wants_usage: bool, chunk_object: str) -> OpenAIStreamTap:
        return OpenAIStreamTap(client_wants_usage, chunk_object)

    def chat_stream_tap(self, request: ChatRequest) -> StreamTap:
        if request.source_format == "responses":
            return ResponsesStreamTap()
        return OpenAIStreamTap(request.include_usage, "chat.completion.chunk")

    def decode_chat_reply(self, body: bytes, request: ChatRequest) -> tuple[Completion, Usage | None]:
        return openai_reply_to_chat(body)

    def stream_decoder(self, request: ChatRequest) -> OpenAIToChatStream:
        return OpenAIToChatStream()


# The first o1 models (beta) accept neither system messages nor sampling parameters other than defaults.
_O1_BETA_PREFIXES = ("o1-preview", "o1-mini")
_FIXED_SAMPLING = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0, "n": 1}
_UNSUPPORTED_ON_O1_BETA = ("logprobs", "top_logprobs", "logit_bias")


def reasoning_model_changes(body: dict[str, Any], upstream_model: str) -> tuple[dict[str, Any], set[str]]:
    """What a chat body needs for a reasoning model, as (keys to set, keys to drop), following OpenAI's docs:

    - o1 family and gpt-5 take `max_completion_tokens`, so a client's `max_tokens` is renamed;
    - o1-preview / o1-mini have no system role: system (and developer) messages are sent as user messages;
    - they only support the default sampling values: defaults are dropped, anything else is a clear 400.
    """
    changes: dict[str, Any] = {}
    removals: set[str] = set()
    if output_cap_field(upstream_model) == "max_completion_tokens" and body.get("max_tokens") is not None:
        removals.add("max_tokens")
        if body.get("max_completion_tokens") is None:
            changes["max_completion_tokens"] = body["max_tokens"]
    if not upstream_model.startswith(_O1_BETA_PREFIXES):
        return changes, removals
    messages = body.get("messages") or []
    if any(m.get("role") in ("system", "developer") for m in messages):
        changes["messages"] = [
            {**m, "role": "user"} if m.get("role") in ("system", "developer") else m for m in messages
        ]
    for field, default in _FIXED_SAMPLING.items():
        if field in body:
            if body[field] is not None and body[field] != default:
                raise bad_request(
                    f"Unsupported value: '{field}' does not support {body[field]!r} with model {upstream_model}. "
                    f"Only the default ({default}) value is supported.",
                    field,
                    "unsupported_value",
                )
            removals.add(field)
    for field in _UNSUPPORTED_ON_O1_BETA:
        if body.get(field):
            raise bad_request(
                f"'{field}' is not supported with model {upstream_model}.", field, "unsupported_parameter"
            )
        if field in body:
            removals.add(field)
    return changes, removals
