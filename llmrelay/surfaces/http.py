"""A thin ASGI layer: the request wrapper and response helpers every surface uses.

llmrelay speaks raw ASGI instead of going through a web framework: the relay path is a handful of
operations, and a framework's middleware, validation and response classes would cost more than the relay
itself (see bench/).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import orjson

from llmrelay.formats.openai import openai_error
from llmrelay.relay.errors import RelayError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REQUEST_ID_HEADER = b"x-request-id"
OVERHEAD_HEADER = b"x-llmrelay-overhead-ms"
_REQUEST_ID_PREFIX = os.urandom(4).hex()
DRAIN_FACTOR = 4


class HttpRequest:
    """One HTTP exchange: the ASGI scope and channels, plus the timing the overhead header reports."""

    __slots__ = (
        "method",
        "overhead_reported",
        "path",
        "path_params",
        "receive",
        "render_error",
        "request_id",
        "response_started",
        "scope",
        "send",
        "started",
        "status",
        "upstream_seconds",
    )

    _counter = 0

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.started = time.perf_counter()
        self.scope = scope
        self.receive = receive
        self.send = send
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.path_params: dict[str, str] = {}  # the `{name}` parts of a templated route
        HttpRequest._counter += 1
        # Process-unique and cheap: a random per-process prefix and a counter (no uuid on the hot path).
        self.request_id = f"req-{_REQUEST_ID_PREFIX}{HttpRequest._counter:012x}"
        self.upstream_seconds = 0.0
        self.response_started = False
        self.status = 0
        self.overhead_reported = 0.0
        # How errors are written: OpenAI's shape unless the surface that takes the request speaks another.
        self.render_error: Callable[[RelayError], tuple[int, bytes]] = openai_error

    def header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))

    async def body(self, limit: int) -> bytes:
        """The whole request body; 413 once it (or its declared length) passes `limit`."""
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._discard_body(int(declared), limit)
            raise payload_too_large(limit)
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise RelayError(499, "client closed the request", "invalid_request_error", "client_closed")
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > limit:
                if more:
                    await self._discard_body(None, limit)
                raise payload_too_large(limit)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _discard_body(self, declared: int | None, limit: int) -> None:
        """Read and drop a modestly oversized body, so the client (which is still sending) gets to read
        our 413 instead of a broken pipe; a body far over the limit is cut off at once."""
        budget = DRAIN_FACTOR * limit
        if declared is not None and declared > budget:
            return
        drained = 0
        while drained <= budget:
            message = await self.receive()
            drained += len(message.get("body", b""))
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                return

    async def json(self, limit: int) -> Any:
        raw = await self.body(limit)
        return parse_json_body(raw)

    def overhead_ms(self) -> float:
        return (time.perf_counter() - self.started - self.upstream_seconds) * 1000

    def timing_headers(self) -> list[tuple[bytes, bytes]]:
        self.overhead_reported = self.overhead_ms()
        return [
            (REQUEST_ID_HEADER, self.request_id.encode()),
            (OVERHEAD_HEADER, f"{self.overhead_reported:.3f}".encode()),
        ]

    async def start_response(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], content_length: int | None = None
    ) -> None:
        all_headers = [*headers, *self.timing_headers()]
        if content_length is not None:
            all_headers.append((b"content-length", str(content_length).encode()))
        self.status = status
        self.response_started = True
        await self.send({"type": "http.response.start", "status": status, "headers": all_headers})

    async def respond(self, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
        await self.start_response(status, [(b"content-type", content_type)], len(body))
        await self.send({"type": "http.response.body", "body": body})

    async def respond_json(self, status: int, payload: object) -> None:
        await self.respond(status, dumps(payload))

    async def respond_error(self, error: RelayError) -> None:
        status, body = self.render_error(error)
        await self.respond(status, body)


def payload_too_large(limit: int) -> RelayError:
    return RelayError(
        413,
        f"Request body is larger than this gateway accepts ({limit} bytes).",
        "invalid_request_error",
        "request_too_large",
    )


def parse_json_body(raw: bytes) -> Any:
    if not raw:
        raise RelayError(400, "The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RelayError(
            400,
            f"We could not parse the JSON body of your request ({exc}). Send a valid JSON object.",
            code="invalid_json",
        ) from None


def _encode_decimal(value: object) -> object:
    if isinstance(value, Decimal):
        # Exact: the decimal's own digits become the JSON number, no binary float in between.
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(payload: object) -> bytes:
    """JSON bytes; Decimal amounts are written as exact JSON numbers."""
    return orjson.dumps(payload, default=_encode_decimal)
