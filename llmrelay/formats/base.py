"""The interfaces every codec fills in: stream decoders and encoders, and a client format's record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import orjson

from llmrelay.metering.pricing import Usage
from llmrelay.relay.errors import RelayError
from llmrelay.relay.request import ChatRequest

Chunk = dict[str, Any]  # one internal `chat.completion.chunk`
Completion = dict[str, Any]  # one internal `chat.completion`


class StreamDecoder(Protocol):
    """Reads an upstream's SSE stream (one whole event at a time) into internal chunks, carrying state
    across events; `usage` is what the upstream reported, `done` whether it ended the stream properly,
    `error_message` the error the upstream reported mid-stream (None when it reported none)."""

    usage: Usage | None
    done: bool
    error_message: str | None

    def feed(self, event: bytes) -> list[Chunk]: ...


class StreamEncoder(Protocol):
    """Writes internal chunks as a client format's SSE events, carrying state across chunks."""

    def feed(self, chunk: Chunk) -> bytes: ...

    def finish(self, usage: Usage) -> bytes:
        """What ends a complete stream (usage, the format's terminator), once usage is known."""
        ...


@dataclass(frozen=True, slots=True)
class ClientFormat:
    """What a surface needs to answer its clients in their own format.

    - `encode_reply(completion, usage, request)`: the client's non-stream reply body;
    - `stream_encoder(request)`: a fresh encoder for one stream;
    - `render_error(error)`: the HTTP status and body of an error before any byte was sent;
    - `stream_error(error)`: the event that ends a stream that failed after it began.
    """

    name: str
    endpoint: str  # what usage records call a chat request in this format
    encode_reply: Callable[[Completion, Usage, ChatRequest], bytes]
    stream_encoder: Callable[[ChatRequest], StreamEncoder]
    render_error: Callable[[RelayError], tuple[int, bytes]]
    stream_error: Callable[[RelayError], bytes]


@dataclass(frozen=True, slots=True)
class UpstreamError:
    """What an upstream's error body says: its message, and its own error type and code when it names them."""

    message: str
    type: str | None = None
    code: str | None = None


def upstream_error(body: bytes) -> UpstreamError:
    """An upstream's error body read once. OpenAI, Anthropic and Gemini all put the message at
    `error.message`; other servers send `{"error": "..."}`, `{"message": ...}` or plain text. The type is
    OpenAI's and Anthropic's `error.type`; the code OpenAI's `error.code`, else Gemini's `error.status` (its
    `code` is the HTTP status, a number)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        return UpstreamError(_text_of(body))
    error = parsed.get("error")
    kind = code = None
    if isinstance(error, dict):
        kind, code = error.get("type"), error.get("code")
        if not isinstance(code, str):
            code = error.get("status")
        kind = kind if isinstance(kind, str) else None
        code = code if isinstance(code, str) else None
        error = error.get("message")
    for message in (error, parsed.get("message")):
        if isinstance(message, str):
            return UpstreamError(message, kind, code)
    return UpstreamError(_text_of(body), kind, code)


def upstream_error_message(body: bytes) -> str:
    return upstream_error(body).message


def _text_of(body: bytes) -> str:
    return body[:500].decode("utf-8", "replace").strip() or "no error message"


def error_status(status: int, names: Mapping[int, str], server_error: str, client_error: str) -> tuple[int, str]:
    """The HTTP status a client is answered with for an error of `status`, and its format's name for it:
    `names` first, then `server_error` for any other 5xx and `client_error` for any other HTTP 4xx. Anything
    else (499, the client went away, and the like) is no error to send a client: 400 and `client_error`."""
    if status in names:
        return status, names[status]
    if 500 <= status <= 599:
        return status, server_error
    if 400 <= status <= 499 and _is_http_status(status):
        return status, client_error
    return 400, client_error


def _is_http_status(status: int) -> bool:
    try:
        HTTPStatus(status)
    except ValueError:
        return False
    return True
