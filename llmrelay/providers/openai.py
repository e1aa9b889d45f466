"""The OpenAI-compatible adaptor: OpenAI itself and any server that speaks its API (vLLM, Ollama, ...).

When the client also speaks OpenAI's format the body is forwarded as the client sent it: only the model
name (when the channel maps it), `stream_options` (so usage is always reported) and, when a key can only
afford part of a reply, an output cap are spliced into the bytes, without decoding and re-encoding them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from llmrelay.config import ChannelConfig
from llmrelay.metering.pricing import Usage
from llmrelay.providers.base import Capability, UpstreamRequest
from llmrelay.relay.errors import bad_request
from llmrelay.relay.request import ChatRequest
from llmrelay.surfaces.multipart import MultipartForm

_NULL_USAGE = b',"usage":null'
_REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def usage_from_openai(usage: dict[str, Any]) -> Usage:
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def usage_requested(body: dict[str, Any]) -> dict[str, Any]:
    """The change that makes an upstream stream report usage (the client's other stream options kept)."""
    return {"stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}


def output_cap_field(model: str) -> str:
    """Reasoning models (o1 family, gpt-5) take max_completion_tokens and reject max_tokens."""
    return "max_completion_tokens" if model.startswith(_REASONING_MODEL_PREFIXES) else "max_tokens"


def splice_openai_body(raw: bytes, body: dict[str, Any], new_model: str | None, changes: dict[str, Any]) -> bytes:
    """The client's bytes with the model replaced and top-level keys set, re-encoding only as a fallback.

    New keys are inserted after the opening brace. The body is re-encoded instead when that would not be
    exact: a key in `changes` already exists (even as null), or the model's encoded text is ambiguous (it
    appears twice, or the top-level key was written with escapes and only a nested one matches).
    """
    if any(key in body for key in changes):
        return orjson.dumps({**body, "model": new_model or body["model"], **changes})
    out = raw
    if new_model is not None:
        pattern = re.compile(rb'"model"\s*:\s*' + re.escape(orjson.dumps(body["model"])))
        if len(pattern.findall(out)) != 1:
            return orjson.dumps({**body, "model": new_model, **changes})
        out = pattern.sub(lambda _m: b'"model":' + orjson.dumps(new_model), out, count=1)
        # Escaped key text can hide the top-level key from the pattern; check, on the rare bodies that have it.
        if b"\\u" in raw and orjson.loads(out).get("model") != new_model:
            return orjson.dumps({**body, "model": new_model, **changes})
    if changes:
        brace = out.index(b"{")
        inserted = b"".join(orjson.dumps({k: v})[1:-1] + b"," for k, v in changes.items())
        out = out[: brace + 1] + inserted + out[brace + 1 :]
    return out


def choice_texts(choice: dict[str, Any]) -> list[str]:
    """Generated text of one choice: chat `message` or stream `delta` (content, refusal, reasoning, tool
    calls), or a legacy completion's `text`."""
    texts = [choice["text"]] if isinstance(choice.get("text"), str) else []
    message = choice.get("message") or choice.get("delta")
    if not isinstance(message, dict):
        return texts
    texts += [message[k] for k in ("content", "refusal", "reasoning_content") if isinstance(message.get(k), str)]
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            texts.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
    return texts


def _sse_payload(event: bytes) -> bytes | None:
    """The data of a one-line `data:` SSE event (what OpenAI-compatible servers send)."""
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            return line[5:].strip()
    return None


class OpenAIStreamTap:
    """Passes an OpenAI SSE stream through, reading usage on the side.

    - drops the usage-only chunk when the client did not ask for usage (we asked the upstream for it);
    - removes `"usage":null` from chunks for the same reason;
    - holds back `[DONE]` so the relay can synthesise a usage chunk first when the upstream sent none.
    """

    def __init__(self, client_wants_usage: bool, chunk_object: str = "chat.completion.chunk") -> None:
        self.usage: Usage | None = None
        self.done = False
        self._client_wants_usage = client_wants_usage
        # We asked the upstream for usage the client did not want: hide it again.
        self._strip_null_usage = not client_wants_usage
        self._chunk_object = chunk_object
        self._events: list[bytes] = []

    def feed(self, event: bytes) -> bytes | None:
        if event.startswith((b"data: [DONE]", b"data:[DONE]")):
            self.done = True
            return None
        if self._strip_null_usage and _NULL_USAGE in event:
            event = event.replace(_NULL_USAGE, b"")
        elif b'"usage"' in event:
            event = self._take_usage(event)
        if event:
            self._events.append(event)
        return event or None

    def _take_usage(self, event: bytes) -> bytes:
        payload = _sse_payload(event)
        try:
            chunk = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            return event
        if not isinstance(chunk, dict) or not isinstance(chunk.get("usage"), dict):
            return event
        self.usage = usage_from_openai(chunk["usage"])
        if self._client_wants_usage:
            return event
        if not chunk.get("choices"):
            return b""  # the usage-only chunk the client did not ask for
        del chunk["usage"]
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _chunks(self) -> Iterator[dict[str, Any]]:
        """The relayed events decoded, lazily: only needed when usage must be counted or synthesised."""
        for event in self._events:
            payload = _sse_payload(event)
            try:
                chunk = orjson.loads(payload) if payload else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict):
                yield chunk

    def completion_texts(self) -> list[str]:
        return [
            text
            for chunk in self._chunks()
            for choice in chunk.get("choices") or ()
            if isinstance(choice, dict)
            for text in choice_texts(choice)
        ]

    def finish(self, usage: Usage) -> bytes:
        """What ends a complete stream: a synthesised usage chunk if the client asked, then [DONE]."""
        tail = b""
        if self._client_wants_usage and self.usage is None:
            first = self._first_chunk()
            chunk = {
                "id": first.get("id", ""),
                "object": self._chunk_object,
                "created": first.get("created", 0),
                "model": first.get("model", ""),
                "choices": [],
                "usage": usage_to_openai(usage),
            }
            if first.get("system_fingerprint"):
                chunk["system_fingerprint"] = first["system_fingerprint"]
            tail = b"data: " + orjson.dumps(chunk) + b"\n\n"
        return tail + b"data: [DONE]\n\n"

    def _first_chunk(self) -> dict[str, Any]:
        return next((chunk for chunk in self._chunks() if "id" in chunk), {})


class OpenAICompatibleProvider:
    wire_format = "openai"
    capabilities = frozenset(Capability)

    def _upstream(self, channel: ChannelConfig, path: str, body: bytes, content_type: str) -> UpstreamRequest:
        headers = {"Content-Type": content_type, **channel.headers}
        if channel.api_key:
            headers["Authorization"] = f"Bearer {channel.api_key}"
        return UpstreamRequest(f"{channel.base_url}{path}", headers, body)

    def chat_request(
        self, channel: ChannelConfig, request: ChatRequest, upstream_model: str, max_output_cap: int | None
    ) -> UpstreamRequest:
        changes, removals = reasoning_model_changes(request.body, upstream_model)
        if request.stream and not request.include_usage:
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
            body = splice_openai_body(body, request.body, new_model, changes)
        return self._upstream(channel, "/chat/completions", body, "application/json")

    def json_request(
        self,
        channel: ChannelConfig,
        path: str,
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
            raw = splice_openai_body(raw, body, new_model, changes or {})
        return self._upstream(channel, path, raw, "application/json")

    def multipart_request(
        self, channel: ChannelConfig, path: str, form: MultipartForm, changes: dict[str, str]
    ) -> UpstreamRequest:
        """A form upload, forwarded as sent unless fields (a mapped model name) must change."""
        body = form.with_fields(changes) if changes else form.raw
        return self._upstream(channel, path, body, form.content_type)

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

    def error_message(self, body: bytes) -> str:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body[:500].decode("utf-8", "replace").strip() or "no error message"
        if isinstance(parsed, dict):
            error = parsed.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return error["message"]
            if isinstance(error, str):
                return error
            if isinstance(parsed.get("message"), str):
                return parsed["message"]
        return body[:500].decode("utf-8", "replace")


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
