"""The HTTP server protocol: uvicorn's httptools protocol with a bound on a request's head, and a direct
writer for streamed response bodies.

httptools buffers a request's line and headers until they are complete, however large they grow, and the
event loop that parses them serves every other client too: a 64 MB header stalled `/health` for seconds.
The head (request line and headers) is therefore capped in bytes and in header count, and a request past
either cap gets 431 before the application sees it.

A relayed stream is many small body chunks. Through ASGI each is a message dict and an awaited `send`; the
`DIRECT_BODY` scope extension instead writes a chunk straight to the connection from the upstream's data
callback (relay/streaming.py), with the same chunked framing uvicorn's `send` uses, gathering the chunks of a
turn of the event loop into one write per connection, and reports a full write buffer so that the relay stops
reading its upstream until the client catches up. The response's start and its last chunk still go through
`send`, which keeps uvicorn's own state (keep-alive, completion) right. The same object tells the relay when the
client's connection is lost, where through ASGI a task per request would wait on `receive` to learn it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from llmrelay.body_writes import GatheredBody, TurnWrites

DIRECT_BODY = "llmrelay.direct_body"  # the scope extension: a DirectBody for this request, which also tells of
# the client leaving

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 128
_REFUSAL_BODY = orjson.dumps(
    {
        "error": {
            "message": f"Request header fields too large (at most {MAX_HEAD_BYTES} bytes and {MAX_HEADERS} headers).",
            "type": "invalid_request_error",
            "param": None,
            "code": "headers_too_large",
        }
    }
)
_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _REFUSAL_BODY
)


class DirectBody(GatheredBody):
    """Writes a streamed (chunked) response's body chunks to the client's connection without `send`, gathered per
    turn of the event loop (body_writes.py)."""

    __slots__ = ()

    def __init__(self, protocol: BoundedHttpProtocol, cycle: RequestResponseCycle) -> None:
        super().__init__(protocol, cycle, PENDING_LIMIT)

    def write(self, data: bytes) -> bool:
        """Write one chunk of a response started without a content-length (so uvicorn frames it chunked);
        False when the client's write buffer is full (the caller pauses its source)."""
        return self.write_chunk(b"%x\r\n%b\r\n" % (len(data), data))

    # write_chunk(chunk) -> bool: `write`, for data already framed as HTTP chunks (an upstream's own chunks,
    # relayed as they came). push(): write what is pending now, as the next turn would; from a task for a
    # stream's first event, which would otherwise wait for the next turn's reads (under load, tens of ms).

    def when_writable(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` when a full write buffer has drained (None: stop calling)."""
        self.protocol.on_writable = callback

    def when_gone(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` when the client's connection is lost, at once if it is already (None: stop)."""
        if callback is not None and self.cycle.disconnected:
            callback()
        else:
            self.protocol.on_gone = callback

    async def end(self, tail: bytes) -> None:
        """Write what is pending, then `tail` as the last chunk, through `send` (which keeps uvicorn's state), in
        one write (gathered)."""
        with self.gathered():
            await self.cycle.send({"type": "http.response.body", "body": tail, "more_body": False})
        self.push()

    def gathered(self) -> _GatheredTransport:
        """What uvicorn's `send` writes within this `with` (a response's head, its last chunk) joins the pending
        chunks, to go out in the same write as them: a stream's head with its first event (one write fewer a
        stream, and one wake-up of the client), and its end with any events the turn has not written yet."""
        return _GatheredTransport(self)


class _GatheredTransport:
    """Stands in for the connection's transport in uvicorn's request cycle while DirectBody.gathered() holds."""

    __slots__ = ("_body", "_transport")

    def __init__(self, body: DirectBody) -> None:
        self._body = body
        self._transport: asyncio.Transport = body.cycle.transport

    def __enter__(self) -> None:
        self._body.cycle.transport = self

    def __exit__(self, *exc_info: object) -> None:
        self._body.cycle.transport = self._transport

    def write(self, data: bytes) -> None:
        self._body.write_chunk(data)

    def close(self) -> None:
        self._body.push()  # what was gathered goes out before the connection closes
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


PENDING_LIMIT = 64 * 1024  # bytes gathered for one client within a turn past which its relay pauses its upstream

_TURN_WRITES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TurnWrites] = weakref.WeakKeyDictionary()


def _turn_writes(loop: asyncio.AbstractEventLoop) -> TurnWrites:
    turn = _TURN_WRITES.get(loop)
    if turn is None:
        turn = _TURN_WRITES[loop] = TurnWrites(loop)
    return turn


class BoundedHttpProtocol(HttpToolsProtocol):
    """Counts the bytes fed while a request's head is incomplete, and its headers, and refuses past the caps;
    offers each request a DirectBody."""

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)
        self._in_head = True
        self._head_bytes = 0
        self._refused = False
        self.on_writable: Callable[[], None] | None = None
        self.on_gone: Callable[[], None] | None = None
        self.turn_writes = _turn_writes(self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        on_gone, self.on_gone = self.on_gone, None
        if on_gone is not None:
            on_gone()
        self._release_body()

    def _release_body(self) -> None:
        """Take the last request's DirectBody out of its scope, once the connection has moved on (a new request, or
        closed). The body holds its request's cycle and the cycle's scope holds the body: left as it is, that loop
        keeps every request's scope, headers and cycle alive until the cyclic collector finds them, a dozen objects
        a request. With 2,000 token-paced streams they were a third of what each young collection looked at."""
        cycle = self.cycle
        if cycle is not None:
            extensions = cycle.scope.get("extensions")
            if extensions is not None:
                extensions.pop(DIRECT_BODY, None)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.on_writable is not None:
            self.on_writable()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        # Counted once here rather than per header (a Python call per header is hot-path cost); the head's
        # byte cap already bounds how many headers can have been collected.
        self._in_head = False
        if len(self.headers) > MAX_HEADERS:
            self._refused = True
        if self._refused:
            return  # the application never sees a refused request
        if self.cycle is not None and self.cycle.response_complete:  # a pipelined request's is still in use
            self._release_body()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # not for a request uvicorn answered itself
            self.scope["extensions"] = {DIRECT_BODY: DirectBody(self, cycle)}  # type: ignore[typeddict-unknown-key]

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:  # a refused request has no cycle to complete
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused or (self._in_head and self._head_bytes > MAX_HEAD_BYTES):
            self._refused = True
            self.transport.write(_REFUSAL)
            self.transport.close()
