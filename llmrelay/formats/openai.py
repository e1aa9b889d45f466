"""The OpenAI chat completions codec. It is also the internal shape, so most of its "translation" is
identity: what it adds is usage in OpenAI's convention, stream framing (`data: ...` events and `[DONE]`),
the same-format stream tap, and OpenAI-shaped errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from llmrelay.formats.base import Chunk, ClientFormat, Completion
from llmrelay.metering.pricing import Usage
from llmrelay.relay.errors import RelayError
from llmrelay.relay.request import ChatRequest

_NULL_USAGE = b',"usage":null'
DONE_EVENT = b"data: [DONE]\n\n"


def usage_from_openai(usage: dict[str, Any]) -> Usage:
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        details = {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        cache_write_tokens=int(details.get("cache_write_tokens") or 0),
    )


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object: prompt_tokens counts cache reads and writes, as OpenAI clients expect, and the
    details name both (`cache_write_tokens` is in the openai SDK's PromptTokensDetails)."""
    details = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": details,
    }


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


def generated_texts(replies: Iterator[Chunk] | list[Chunk]) -> list[str]:
    """Generated text of completions or stream chunks (for counting what an upstream reported no usage for)."""
    return [
        text
        for chunk in replies
        for choice in chunk.get("choices") or ()
        if isinstance(choice, dict)
        for text in choice_texts(choice)
    ]


def http_image_urls(body: dict[str, Any]) -> list[str]:
    """The http(s) image URLs of a chat request's messages (data URIs excluded), in order."""
    urls = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            image = part.get("image_url") if isinstance(part, dict) and part.get("type") == "image_url" else None
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                urls.append(url)
    return urls


def sse_data(event: bytes) -> bytes | None:
    """The data of a one-line `data:` SSE event (what OpenAI-compatible servers send)."""
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            return line[5:].strip()
    return None


def data_event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage_chunk(first: Chunk, usage: Usage, chunk_object: str) -> Chunk:
    """The usage-only chunk OpenAI ends a stream with when asked (`stream_options.include_usage`)."""
    chunk = {
        "id": first.get("id", ""),
        "object": chunk_object,
        "created": first.get("created", 0),
        "model": first.get("model", ""),
        "choices": [],
        "usage": usage_to_openai(usage),
    }
    if first.get("system_fingerprint"):
        chunk["system_fingerprint"] = first["system_fingerprint"]
    return chunk


class OpenAIStreamTap:
    """Passes an OpenAI SSE stream through to an OpenAI client, reading usage on the side.

    - drops the usage-only chunk when the client did not ask for usage (we asked the upstream for it);
    - removes `"usage":null` from chunks for the same reason;
    - holds back `[DONE]` so the relay can synthesise a usage chunk first when the upstream sent none.
    """

    error_message: str | None = None  # an upstream error event is relayed as it came

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
        payload = sse_data(event)
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
        return data_event(chunk)

    def _chunks(self) -> Iterator[Chunk]:
        """The relayed events decoded, lazily: only needed when usage must be counted or synthesised."""
        for event in self._events:
            payload = sse_data(event)
            try:
                chunk = orjson.loads(payload) if payload else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict):
                yield chunk

    def completion_texts(self) -> list[str]:
        return generated_texts(self._chunks())

    def finish(self, usage: Usage) -> bytes:
        """What ends a complete stream: a synthesised usage chunk if the client asked, then [DONE]."""
        if self._client_wants_usage and self.usage is None:
            first = next((chunk for chunk in self._chunks() if "id" in chunk), {})
            return data_event(usage_chunk(first, usage, self._chunk_object)) + DONE_EVENT
        return DONE_EVENT


# ------------------------------------------------------------------------ an OpenAI upstream, translated


def openai_reply_to_chat(body: bytes) -> tuple[Completion, Usage | None]:
    """An OpenAI-format reply as the internal completion (it already is one) and its reported usage."""
    reply = orjson.loads(body)
    if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
        raise ValueError("the upstream reply is not a chat completion")
    usage = reply.get("usage")
    return reply, usage_from_openai(usage) if isinstance(usage, dict) else None


class OpenAIToChatStream:
    """Decodes an OpenAI SSE stream into internal chunks; usage chunks become `usage`."""

    __slots__ = ("done", "error_message", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.done = False
        self.error_message: str | None = None

    def feed(self, event: bytes) -> list[Chunk]:
        payload = sse_data(event)
        if not payload:
            return []
        if payload == b"[DONE]":
            self.done = True
            return []
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        error = chunk.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            self.error_message = str(message or "The upstream reported an error.")
            return []
        usage = chunk.pop("usage", None)
        if isinstance(usage, dict):
            self.usage = usage_from_openai(usage)
        return [chunk] if chunk.get("choices") else []


# ----------------------------------------------------------------------------- to an OpenAI client


class ChatToOpenAIStream:
    """Encodes internal chunks for an OpenAI client: `data:` events, a usage chunk when asked, `[DONE]`."""

    __slots__ = ("_first", "_include_usage")

    def __init__(self, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._first: Chunk | None = None

    def feed(self, chunk: Chunk) -> bytes:
        if self._first is None:
            self._first = chunk
        return data_event(chunk)

    def finish(self, usage: Usage) -> bytes:
        if not self._include_usage:
            return DONE_EVENT
        return data_event(usage_chunk(self._first or {}, usage, "chat.completion.chunk")) + DONE_EVENT


def chat_to_openai_reply(completion: Completion, usage: Usage, request: ChatRequest) -> bytes:
    return orjson.dumps({**completion, "usage": usage_to_openai(usage)})


def openai_error_body(error: RelayError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}


def openai_error(error: RelayError) -> tuple[int, bytes]:
    return error.status, orjson.dumps(openai_error_body(error))


def openai_stream_error(error: RelayError) -> bytes:
    """An error event in an OpenAI stream: the openai SDK raises it as an APIError mid-iteration."""
    return data_event(openai_error_body(error))


OPENAI_CLIENT = ClientFormat(
    name="openai",
    endpoint="chat.completions",
    encode_reply=chat_to_openai_reply,
    stream_encoder=lambda request: ChatToOpenAIStream(request.include_usage),
    render_error=openai_error,
    stream_error=openai_stream_error,
)
