"""The HTTP server protocol: uvicorn's httptools protocol with a bound on a request's head, and a direct
writer for streamed response bodies.

httptools buffers a request's line and headers until they are complete, however large they grow, and the
event loop that parses them serves every other client too: a 64 MB header stalled `/health` for seconds.
The head (request line and headers) is therefore capped in bytes and in header count, and a request past
either cap gets 431 before the application sees it.

A relayed stream is many small body chunks. Through ASGI each is a message dict and an awaited `send`; the
`DIRECT_BODY` scope extension instead writes a chunk straight to the connection from the upstream's data
callback (relay/streaming.py), with the same chunked framing uvicorn's `send` uses, and reports a full write
buffer so that the relay stops reading its upstream until the client catches up. The response's start and its
last chunk still go through `send`, which keeps uvicorn's own state (keep-alive, completion) right.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

DIRECT_BODY = "llmrelay.direct_body"  # the scope extension: a DirectBody for this request

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


class DirectBody:
    """Writes a streamed (chunked) response's body chunks to the client's connection without `send`."""

    __slots__ = ("_cycle", "_protocol")

    def __init__(self, protocol: BoundedHttpProtocol, cycle: RequestResponseCycle) -> None:
        self._protocol = protocol
        self._cycle = cycle

    def write(self, data: bytes) -> bool:
        """Write one chunk of a response started without a content-length (so uvicorn frames it chunked);
        False when the client's write buffer is full (the caller pauses its source)."""
        cycle = self._cycle
        if cycle.disconnected:
            return True
        cycle.transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        return not cycle.flow.write_paused

    def when_writable(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` when a full write buffer has drained (None: stop calling)."""
        self._protocol.on_writable = callback

    async def flush(self) -> None:
        """Everything written is with the transport already."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """Counts the bytes fed while a request's head is incomplete, and its headers, and refuses past the caps;
    offers each request a DirectBody."""

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)
        self._in_head = True
        self._head_bytes = 0
        self._refused = False
        self.on_writable: Callable[[], None] | None = None

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
