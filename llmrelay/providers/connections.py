"""The gateway's HTTP/1.1 client for upstream calls, on plain asyncio: the byte path from an upstream's socket
to the relay.

Every upstream call is a POST whose reply is read whole (`read_all`) or relayed as it arrives (`relay`: event
streams, audio). A streamed reply is a trickle of small events; through a general client (aiohttp, which the
gateway used before) each one cost a StreamReader future, a task wake-up and a re-armed read timer before the
relay saw it, and preparing a request cost more than the rest of the relay's work on it (py-spy under bench/'s
token-paced loads). Here an upstream's bytes go from the socket's data callback through the HTTP parser
(httptools, in C, which also undoes chunked framing) to the relay's sink in one synchronous call; no task wakes
per event, and the first-byte and idle limits are one watchdog timer per reply that re-arms only when it fires.

While a chunked reply is relayed, the compiled chunk reader (providers/_chunkreader.c, an optional extension)
takes the place of the data callback: a read that begins with whole chunks, whose events the relay's compiled scan
takes, goes to the client's writer without the parser or a Python frame, and the rest of any read goes through
the parser as before. The parser's chunk callbacks tell the reader whether it stands between chunks, the only
place it may take over from.

One `ConnectionPool` per upstream origin keeps idle keep-alive connections (most recently used first; closed
after KEEPALIVE_SECONDS idle). A request on a reused connection that the upstream had already closed, so that
not one byte of a reply came, is sent once more on a new connection: the upstream never read it. TLS is
verified against the system's certificates. Replies are asked for uncompressed; gzip and deflate are decoded.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import zlib
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

try:
    from llmrelay.providers._chunkreader import ChunkReader
except ImportError:  # built without a C compiler: every read goes through the parser
    ChunkReader = None

KEEPALIVE_SECONDS = 60.0
WholeChunks = tuple[Callable[[bytes], "bytes | None"], Callable[[bytes], bool]]  # see UpstreamConnection.relay
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's trusted certificates, loaded once (as aiohttp's default context does)."""
    return ssl.create_default_context()


class UpstreamConnectionError(ConnectionError):
    """The upstream could not be reached, or its connection broke or spoke broken HTTP. The message is for the
    operator's log (it may name the host and the OS error); `summary` is what a client may be told."""

    def __init__(self, detail: str, summary: str) -> None:
        super().__init__(detail)
        self.summary = summary


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an upstream, carrying one request at a time.

    After `ConnectionPool.open` the reply's status and headers are known; the body is then read whole
    (`read_all`), or its first bytes awaited (`first_data`) and the rest pushed to a sink (`relay`). `release`
    returns a connection whose reply ended cleanly to its pool; `close` drops it.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._header_name = ""
        self._parser = httptools.HttpResponseParser(self)
        self._received_any = False
        self._head: asyncio.Future[None] | None = None
        self._pending: list[bytes] = []  # body bytes that arrived before a sink or reader took them
        self._waiter: asyncio.Future[None] | None = None  # woken on body bytes, the body's end, or a failure
        self._sink: Callable[[bytes], None] | None = None
        self._complete = False
        self._until_close = False  # a body with neither length nor chunking ends when the connection does
        self._chunked = False
        self._at_chunk_boundary = True  # the parser stands between two chunks of a chunked body
        self._reader: ChunkReader | None = None  # in place of data_received while relaying (see relay)
        self._keep_alive = False
        self._decompress: Callable[[bytes], bytes] | None = None
        self._error: BaseException | None = None
        self._span = 0.0  # the current read limit: seconds without a byte before the reply has timed out
        self._last = 0.0
        self._paused = False  # reading paused for a slow client: the upstream is not idle, we are
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        if self._head is None:  # bytes on an idle connection: nothing asked for them, and nothing can reuse it
            self.close()
            return
        self._received_any = True
        self._last = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._fail(exc.__context__ or exc)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamConnectionError(f"the reply is not valid HTTP ({exc})", "its reply was not valid HTTP"))

    def eof_received(self) -> bool:
        return False  # close the transport: HTTP/1.1 has no half-closed exchanges

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._head is None or self._complete:
            return
        if self._until_close and self.status:
            self._ended()
            return
        lost = "the upstream closed the connection before the reply was complete"
        self._fail(UpstreamConnectionError(lost, "the connection closed before the reply was complete"))

    # ------------------------------------------------------------------ httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if name:
            self._header_name = name.decode("latin-1").lower()
            previous = self.headers.get(self._header_name)
            text = value.decode("latin-1")
            self.headers[self._header_name] = f"{previous}, {text}" if previous is not None else text
        else:  # a value continued over several reads
            self.headers[self._header_name] += value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        headers = self.headers
        self._chunked = "chunked" in headers.get("transfer-encoding", "")
        self._until_close = "content-length" not in headers and not self._chunked
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "deflate"):
            # wbits 47: a zlib or gzip header, detected; "deflate" is zlib-wrapped by the HTTP standard.
            self._decompress = zlib.decompressobj(47).decompress
        elif encoding != "identity":
            unsupported = f"the reply's body is in an unsupported encoding ({encoding})"
            self._fail(UpstreamConnectionError(unsupported, "its reply was in an unsupported encoding"))
            return
        assert self._head is not None
        if not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._decompress is not None:
            body = self._decompress(body)
            if not body:
                return
        sink = self._sink
        if sink is not None:
            sink(body)  # an exception here reaches data_received as the parser's callback error
            return
        self._pending.append(body)
        self._wake()

    def on_chunk_header(self) -> None:
        self._at_chunk_boundary = False

    def on_chunk_complete(self) -> None:
        self._at_chunk_boundary = True

    def on_message_complete(self) -> None:
        self._ended()

    # ------------------------------------------------------------------ the exchange

    def _send(self, request: bytes, first_byte_timeout: float) -> asyncio.Future[None]:
        assert self.transport is not None
        self._head = self._loop.create_future()
        self._span = first_byte_timeout
        self._last = self._loop.time()
        self._timer = self._loop.call_at(self._last + first_byte_timeout, self._watch)
        self.transport.write(request)
        return self._head

    def _watch(self) -> None:
        """The read limit's watchdog: data arriving only moves `_last`, and the timer re-arms when it fires."""
        now = self._loop.time()
        if self._paused:
            self._last = now
        elif self._reader is not None:
            self._last = max(self._last, self._reader.last)
        due = self._last + self._span
        if now >= due:
            self._timer = None
            self._fail(TimeoutError())
        else:
            self._timer = self._loop.call_at(due, self._watch)

    def idle_limit(self, seconds: float) -> None:
        """The reply has begun: from now on `seconds` without a byte is a timeout (the first-byte limit until now)."""
        self._span = seconds

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _ended(self) -> None:
        self._complete = True
        if self._reader is not None:
            self._reader.synced = False  # what comes after the body is the parser's to refuse
        self._stop_timer()
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self._error is not None or self._complete:
            return
        self._error = error
        self._stop_timer()
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        self._wake()
        self.close()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _body_arrived(self, whole: bool) -> None:
        """Wait until the body has ended, or (not `whole`) until some of it is pending; raises the failure that
        ended the exchange (a timeout, a broken connection, what a sink raised)."""
        while not self._complete and (whole or not self._pending):
            if self._error is not None:
                raise self._error
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _take_pending(self) -> bytes:
        pending, self._pending = self._pending, []
        return pending[0] if len(pending) == 1 else b"".join(pending)

    async def first_data(self) -> bytes:
        """The body's first bytes (b"" when it ended without any), waiting for them within the read limit."""
        await self._body_arrived(whole=False)
        return self._take_pending()

    async def read_all(self) -> bytes:
        """The whole body, waiting for it within the read limit."""
        await self._body_arrived(whole=True)
        return self._take_pending()

    async def relay(self, sink: Callable[[bytes], None], whole_chunks: WholeChunks | None = None) -> None:
        """Pass the rest of the body to `sink` as it arrives, returning when it ends; raises TimeoutError when
        the read limit passes without a byte, UpstreamConnectionError when the connection breaks, and what the
        sink raised.

        `whole_chunks` (scan, write): for a chunked, uncompressed body, the whole chunks a read begins with whose
        data `scan` takes (returns the bytes to relay, else None) go framed to `write` in one call (False: pause
        reading), by the compiled chunk reader (providers/_chunkreader.c) in place of data_received: no parser,
        no Python frame. The rest of that read, and every other read, takes the parser's path to `sink`. `scan`
        must do to a chunk's data what `sink` would."""
        self._sink = sink
        try:
            for data in self._pending:
                sink(data)
            self._pending = []
            if whole_chunks is not None and ChunkReader is not None and self._chunked and self._decompress is None:
                self._read_whole_chunks(*whole_chunks)
            await self._body_arrived(whole=True)
        finally:
            self._sink = None
            if self._reader is not None:
                self._reader = None
                del self.data_received  # the class's again
                if not self.closed:
                    self.transport.set_protocol(self)  # type: ignore[union-attr]

    def _read_whole_chunks(self, scan: Callable[[bytes], bytes | None], write: Callable[[bytes], bool]) -> None:
        assert ChunkReader is not None and self.transport is not None
        if self._complete or self._error is not None or self.closed:
            return
        self._reader = ChunkReader(
            scan, write, self.pause_reading, self._parse, self._fail, self._loop.time, self._at_chunk_boundary
        )
        self.data_received = self._reader  # type: ignore[method-assign]
        self.transport.set_protocol(self)  # the event loop looks data_received up again

    def _parse(self, data: bytes) -> bool:
        """The chunk reader's way to the parser: data_received's work; whether the parser then stands between
        chunks (the reader takes whole chunks only from there)."""
        UpstreamConnection.data_received(self, data)
        return self._at_chunk_boundary

    def pause_reading(self) -> None:
        """Stop reading from the upstream (the client is slow to read); its reply waits in the socket."""
        if self.transport is not None and not self.closed and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self._paused:
            self._paused = False
            self._last = self._loop.time()
            self.transport.resume_reading()

    def release(self) -> None:
        """Done with the reply: back to the pool when it ended cleanly and the upstream keeps the connection."""
        if self._complete and self._error is None and self._keep_alive and not self.closed:
            self._reset()
            self._pool.put(self)
        else:
            self.close()

    def close(self) -> None:
        self._stop_timer()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class ConnectionPool:
    """Keep-alive connections to one upstream origin (`scheme://host:port`)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or ""
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._host_header = parts.netloc.rpartition("@")[2]
        self._idle: deque[UpstreamConnection] = deque()

    async def open(
        self, url: str, headers: dict[str, str], body: bytes, connect_timeout: float | None, first_byte_timeout: float
    ) -> UpstreamConnection:
        """POST `body` to `url` and wait for the reply's status and headers; raises UpstreamConnectionError
        (or TimeoutError) when the upstream cannot be reached or does not answer in time."""
        request = self._request(url, headers, body)
        while True:
            connection = self._take()
            reused = connection is not None
            if connection is None:
                connection = await self._connect(connect_timeout)
            try:
                await connection._send(request, first_byte_timeout)
                return connection
            except UpstreamConnectionError:
                connection.close()
                if reused and not connection._received_any:
                    continue  # the upstream closed the idle connection before our request reached it
                raise
            except BaseException:
                connection.close()
                raise

    def _request(self, url: str, headers: dict[str, str], body: bytes) -> bytes:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"POST {target} HTTP/1.1",
            f"Host: {self._host_header}",
            f"Content-Length: {len(body)}",
            "Accept-Encoding: identity",  # events relayed as they come; a compressing upstream is still decoded
        ]
        has_agent = False
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in _OWN_HEADERS:
                continue
            has_agent = has_agent or lowered == "user-agent"
            lines.append(f"{name}: {value}")
        if not has_agent:
            lines.append("User-Agent: llmrelay")
        head = "\r\n".join(lines)
        breaks = len(lines) - 1
        if head.count("\r") != breaks or head.count("\n") != breaks or "\0" in head or " " in target:
            # A header value or path holding a line break would smuggle a second request to the upstream.
            raise UpstreamConnectionError(
                "the upstream request has a line break in a header or its path", "the request could not be sent"
            )
        return head.encode("latin-1") + b"\r\n\r\n" + body

    def _take(self) -> UpstreamConnection | None:
        idle = self._idle
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < KEEPALIVE_SECONDS:
                return connection
            connection.close()
        return None

    def put(self, connection: UpstreamConnection) -> None:
        connection.idle_since = asyncio.get_running_loop().time()
        idle = self._idle
        idle.append(connection)
        while idle and connection.idle_since - idle[0].idle_since >= KEEPALIVE_SECONDS:
            idle.popleft().close()  # the oldest have been idle too long

    async def _connect(self, timeout: float | None) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: UpstreamConnection(self),
                    self._host,
                    self._port,
                    ssl=_tls_context() if self._tls else None,
                    server_hostname=self._host if self._tls else None,
                )
        except OSError as exc:
            detail = f"cannot connect to {self._host}:{self._port} ({exc})"
            raise UpstreamConnectionError(detail, "the connection failed") from None
        return connection

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
