"""A thin ASGI layer: the request wrapper and response helpers every surface uses.

llmrelay speaks raw ASGI instead of going through a web framework: the relay path is a handful of
operations, and a framework's middleware, validation and response classes would cost more than the relay
itself (see bench/).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson

from llmrelay.formats.openai import openai_error
from llmrelay.relay.errors import RelayError
from llmrelay.server import DIRECT_BODY

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REQUEST_ID_HEADER = b"x-request-id"
OVERHEAD_HEADER = b"x-llmrelay-overhead-ms"
_REQUEST_ID_PREFIX = os.urandom(4).hex()
DRAIN_FACTOR = 4
DEFAULT_BODY_TIMEOUT = 60.0  # seconds for a request body to arrive in full (limits.body_timeout)


class HttpRequest:
    """One HTTP exchange: the ASGI scope and channels, plus the timing the overhead header reports."""

    __slots__ = (
        "body_timeout",
        "deadline_passed",
        "extra_headers",
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
        self.body_timeout = DEFAULT_BODY_TIMEOUT
        self.deadline_passed = False  # set when the whole request ran past limits.request_timeout
        self.extra_headers: list[tuple[bytes, bytes]] | None = None  # sent on any response (rate-limit state)
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
        try:
            # A body that trickles in (or never comes after its headers) must not hold a request open forever.
            async with asyncio.timeout(self.body_timeout):
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
        except TimeoutError:
            raise RelayError(
                408, f"The request body did not arrive within {self.body_timeout:g} s.", code="request_timeout"
            ) from None
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
        if self.extra_headers:
            all_headers += self.extra_headers
        if content_length is not None:
            all_headers.append((b"content-length", str(content_length).encode()))
        self.status = status
        self.response_started = True
        await self.send({"type": "http.response.start", "status": status, "headers": all_headers})

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        all_headers = [(b"content-type", content_type), *headers] if headers else [(b"content-type", content_type)]
        await self.start_response(status, all_headers, len(body))
        await self.send({"type": "http.response.body", "body": body})

    def _direct_body(self) -> Any:
        """The server's DirectBody for this request (server.py), or None under another ASGI server."""
        return self.scope.get("extensions", {}).get(DIRECT_BODY)

    def when_gone(self, callback: Callable[[], None] | None) -> bool:
        """Have the server call `callback` once the client's connection is lost (None: no longer); False when
        the server offers no such notice, and the caller must watch `receive` for `http.disconnect`."""
        direct = self._direct_body()
        if direct is None:
            return False
        direct.when_gone(callback)
        return True

    async def start_stream(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> BodyWriter:
        """Start a streamed response; its body's writer. With the server's direct writer the head goes out in the
        body's first write (a stream's first event is pushed at once, and anything else is written by the next
        turn of the event loop)."""
        direct = self._direct_body()
        if direct is None:
            await self.start_response(status, headers)
            return QueuedBody(self.send)
        with direct.gathered():
            await self.start_response(status, headers)
        return direct  # type: ignore[no-any-return]

    async def respond_json(self, status: int, payload: object) -> None:
        await self.respond(status, dumps(payload))

    async def respond_error(self, error: RelayError) -> None:
        status, body = self.render_error(error)
        await self.respond(status, body, headers=error.headers)


class BodyWriter(Protocol):
    """Writes a streamed response's body chunks from a synchronous caller (an upstream's data callback)."""

    def write(self, data: bytes) -> bool:
        """Queue or write one chunk; False once the client is behind (the caller pauses its source)."""
        ...

    def when_writable(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` once a client that was behind has caught up (None: stop calling)."""
        ...

    def push(self) -> None:
        """Hand what was written to the connection now rather than at the writer's own pace (a stream's first
        event, written from the request's task)."""
        ...

    async def end(self, tail: bytes) -> None:
        """End the body with `tail`, after every chunk written before it."""
        ...


class QueuedBody:
    """A BodyWriter over plain ASGI `send` (a server without the direct writer, server.py): chunks queue in
    order and one task sends them; past QUEUE_BYTES queued the client counts as behind."""

    QUEUE_BYTES = 64 * 1024

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._sender: asyncio.Task[None] | None = None
        self._behind = False
        self._on_writable: Callable[[], None] | None = None

    def write(self, data: bytes) -> bool:
        self._queue.append(data)
        self._queued += len(data)
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_queued())
        self._behind = self._queued > self.QUEUE_BYTES
        return not self._behind

    async def _send_queued(self) -> None:
        while self._queue:
            data = self._queue.popleft()
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
            self._queued -= len(data)
            if self._behind and self._queued <= self.QUEUE_BYTES:
                self._behind = False
                if self._on_writable is not None:
                    self._on_writable()
        self._sender = None

    def when_writable(self, callback: Callable[[], None] | None) -> None:
        self._on_writable = callback

    def push(self) -> None:
        """The sender task already sends each chunk as soon as it runs."""

    async def end(self, tail: bytes) -> None:
        if self._sender is not None:
            await self._sender
        await self._send({"type": "http.response.body", "body": tail, "more_body": False})


def payload_too_large(limit: int) -> RelayError:
    return RelayError(
        413,
        f"Request body is larger than this gateway accepts ({limit} bytes).",
        "invalid_request_error",
        "request_too_large",
    )


# How deeply a request body may nest. orjson reads 1024 levels but writes only about 254, and the gateway
# encodes what a client sent (the prompt's byte bound, translations, splices): a body it could read but not
# write failed later with a 500. Refused up front instead, with room to spare for the levels a translation
# adds around a client's value (an Anthropic input_schema becomes tools.N.function.parameters).
MAX_JSON_DEPTH = 200


def _encoder_depth() -> int:
    """The deepest nesting orjson writes (254 in orjson 3.x), measured once rather than assumed."""
    node: list[Any] = []
    for depth in range(1, 4096):
        try:
            orjson.dumps(node)
        except orjson.JSONEncodeError:
            return depth - 1
        node = [node]
    return 4095


# A body nests at most MAX_JSON_DEPTH levels exactly when it still encodes inside this many extra arrays.
_PADDING = _encoder_depth() - MAX_JSON_DEPTH
assert _PADDING >= 0, "orjson writes less nesting than MAX_JSON_DEPTH"


def parse_json_body(raw: bytes) -> Any:
    """A request body parsed as JSON; a 400 when it is empty, malformed, or nested past MAX_JSON_DEPTH."""
    if not raw:
        raise RelayError(400, "The request body is empty; send a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RelayError(
            400,
            f"We could not parse the JSON body of your request ({exc}). Send a valid JSON object.",
            code="invalid_json",
        ) from None
    # The check is one encode of the body inside _PADDING extra arrays, in C: 0.3 µs for a typical chat body,
    # and below the parse's own cost for nearly any body (counting the bytes `[` and `{` first was measured
    # slower than this encode on every body but the smallest). A body too short to nest that deep skips it;
    # only a body that fails it is walked, to name the field.
    if len(raw) > 2 * MAX_JSON_DEPTH and not _encodes_padded(body):
        _refuse_deep(body)
    return body


def _encodes_padded(body: Any) -> bool:
    padded = body
    for _ in range(_PADDING):
        padded = [padded]
    try:
        orjson.dumps(padded)
    except orjson.JSONEncodeError:
        return False
    return True


def json_depth(value: Any, limit: int | None = None) -> int:
    """How many arrays/objects deep `value` nests (a scalar: 0, `{}`: 1). With `limit`, the walk stops as
    soon as it is passed and returns limit + 1. Iterative: a hostile depth cannot exhaust the stack."""
    if not isinstance(value, dict | list):
        return 0
    deepest = 1
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if limit is not None and depth > limit:
                return depth
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _refuse_deep(body: Any) -> None:
    """The 400 for a body nested past MAX_JSON_DEPTH, naming the top-level field that is (nothing is raised
    when the walk finds none: the body failed to encode for another reason, which the encoder reports later)."""
    if isinstance(body, dict):
        for field, value in body.items():
            if json_depth(value, MAX_JSON_DEPTH - 1) > MAX_JSON_DEPTH - 1:
                raise RelayError(
                    400,
                    f"'{field}' is nested more than {MAX_JSON_DEPTH} levels deep (counting the request body "
                    "itself); this gateway does not accept deeper JSON.",
                    param=field,
                )
    elif json_depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise RelayError(400, f"The request body is nested more than {MAX_JSON_DEPTH} levels deep.")


def _encode_decimal(value: object) -> object:
    if isinstance(value, Decimal):
        # Exact: the decimal's own digits become the JSON number, no binary float in between.
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(payload: object, option: int = 0) -> bytes:
    """JSON bytes; Decimal amounts are written as exact JSON numbers."""
    return orjson.dumps(payload, default=_encode_decimal, option=option)
