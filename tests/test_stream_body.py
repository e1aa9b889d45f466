"""Streamed response bodies written from a synchronous caller (the relay's upstream data callback), through a
real uvicorn server: llmrelay's own protocol, whose DirectBody writes to the connection, and plain uvicorn,
where the body goes through ASGI `send` (QueuedBody). Either way a client that stops reading must make the
writer report that it is behind, and its catching up must be signalled, with every byte arriving in order."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import weakref
from typing import Any

import pytest
import uvicorn

from llmrelay.server import PENDING_LIMIT, BoundedHttpProtocol, DirectBody
from llmrelay.surfaces.http import BodyWriter, HttpRequest, QueuedBody

PIECE = 1024
MAX_BYTES = 256 * 1024 * 1024  # a writer that never reports a full buffer fails instead of running forever


def numbered(number: int) -> bytes:
    """A 1 KiB piece that starts with its number."""
    return b"%08d" % number + b"." * (PIECE - 8)


def numbers_in(body: bytes) -> list[int]:
    return [int(body[i : i + 8]) for i in range(0, len(body), PIECE)]


async def open_stream(scope: dict[str, Any], receive: Any, send: Any) -> tuple[BodyWriter, asyncio.Event]:
    """Start an event-stream response; its body writer and an event set when the writer says go on."""
    http = HttpRequest(scope, receive, send)
    body = await http.start_stream(200, [(b"content-type", b"text/event-stream")])
    writable = asyncio.Event()
    body.when_writable(writable.set)
    return body, writable


class BurstApp:
    """Writes more than a turn's bound in one go (as one large upstream read would) to a client that reads:
    the writer must say stop, then signal that it may go on once the burst has been written."""

    def __init__(self) -> None:
        self.answers: list[bool] = []
        self.resumed = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, writable = await open_stream(scope, receive, send)
        for number in range(1, 2 * PENDING_LIMIT // PIECE):
            self.answers.append(body.write(numbered(number)))
            if not self.answers[-1]:
                break
        await asyncio.wait_for(writable.wait(), 10)
        self.resumed = True
        body.when_writable(None)
        await body.end(b"")


class StreamingApp:
    """Writes numbered 1 KiB pieces until the writer says the client is behind, waits until it has caught up,
    writes one more piece and ends; records what it saw."""

    def __init__(self) -> None:
        self.writer_kind = ""
        self.pieces = 0
        self.behind = False
        self.caught_up = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, writable = await open_stream(scope, receive, send)
        self.writer_kind = type(body).__name__

        def piece() -> bytes:
            self.pieces += 1
            return numbered(self.pieces)

        while self.pieces * PIECE < MAX_BYTES:
            if not body.write(piece()):
                self.behind = True
                break
            if self.pieces % 16 == 0:
                await asyncio.sleep(0)  # a turn of the loop, as between upstream reads: the pieces go out
        await asyncio.wait_for(writable.wait(), 30)
        self.caught_up = True
        body.when_writable(None)
        body.write(piece())
        await body.end(b"")


def serve(app: Any, http: Any) -> tuple[uvicorn.Server, int, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=http, loop="uvloop", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    assert server.started
    return server, port, thread


def read_response(client: socket.socket) -> bytes:
    """What the server sends until the end of a chunked body."""
    raw = bytearray()
    while not raw.endswith(b"0\r\n\r\n"):
        data = client.recv(1 << 20)
        assert data, "the connection closed before the body ended"
        raw += data
    return bytes(raw)


def dechunk(raw: bytes) -> bytes:
    """The body of a chunked HTTP/1.1 response."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    body = bytearray()
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(body)
        body += rest[:size]
        rest = rest[size + 2 :]


@pytest.mark.parametrize(("http", "writer"), [(BoundedHttpProtocol, DirectBody), ("httptools", QueuedBody)])
def test_a_client_that_stops_reading_is_reported_behind_and_its_catching_up_signalled(http: Any, writer: type) -> None:
    app = StreamingApp()
    server, port, thread = serve(app, http)
    try:
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            client.sendall(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
            deadline = time.time() + 30
            while not app.behind and time.time() < deadline:  # the client reads nothing meanwhile
                time.sleep(0.02)
            assert app.behind, "the writer never reported the client behind"
            assert not app.caught_up
            raw = read_response(client)
    finally:
        server.should_exit = True
        thread.join(10)
    assert app.writer_kind == writer.__name__
    assert app.caught_up
    body = dechunk(raw)
    assert len(body) == app.pieces * PIECE
    assert numbers_in(body) == list(range(1, app.pieces + 1))  # every piece, in order


def test_a_burst_past_a_turns_bound_pauses_the_writer_until_it_is_written() -> None:
    app = BurstApp()
    server, port, thread = serve(app, BoundedHttpProtocol)
    try:
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
            client.settimeout(15)
            raw = read_response(client)
    finally:
        server.should_exit = True
        thread.join(10)
    pieces = len(app.answers)
    framed = len(b"%x\r\n\r\n" % PIECE) + PIECE
    assert pieces == -(-PENDING_LIMIT // framed)  # told to stop once the bound is reached, not before
    assert app.answers == [True] * (pieces - 1) + [False]
    assert app.resumed
    assert numbers_in(dechunk(raw)) == list(range(1, pieces + 1))


class Probe:
    """Put in a request's scope: alive as long as the scope is."""


class ProbedApp:
    """Streams a short body through the DirectBody and leaves a Probe in each request's scope."""

    def __init__(self) -> None:
        self.probes: list[weakref.ref[Probe]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        probe = Probe()
        scope["probe"] = probe
        self.probes.append(weakref.ref(probe))
        body, _ = await open_stream(scope, receive, send)
        body.write(b"data: one\n\n")
        await body.end(b"")


def test_a_finished_requests_objects_are_freed_without_the_cyclic_collector() -> None:
    """The DirectBody in a request's scope holds the request's cycle, whose scope holds the body: once the
    connection moves on (its next request, or its close) the scope must be freed by reference counting alone.
    Left to the cyclic collector, 2,000 streams' worth made each young collection take ~45 ms (bench/)."""
    app = ProbedApp()
    server, port, thread = serve(app, BoundedHttpProtocol)
    gc.collect()
    gc.disable()
    try:
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.settimeout(15)
            for _ in range(3):
                client.sendall(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
                assert dechunk(read_response(client)) == b"data: one\n\n"
            alive = [probe() is not None for probe in app.probes]
        assert alive == [False, False, True]  # the last request's connection is still open
        deadline = time.time() + 10
        while app.probes[-1]() is not None and time.time() < deadline:  # the server sees the close
            time.sleep(0.02)
        assert app.probes[-1]() is None
    finally:
        gc.enable()
        server.should_exit = True
        thread.join(10)


def test_pipelined_requests_each_stream_their_body() -> None:
    """A request whose head arrives while the one before it is still answered (pipelined) must not take that
    one's DirectBody away from it."""
    app = ProbedApp()
    server, port, thread = serve(app, BoundedHttpProtocol)
    try:
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.settimeout(15)
            client.sendall(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n" * 2)
            raw = bytearray()
            while raw.count(b"0\r\n\r\n") < 2:
                data = client.recv(1 << 20)
                assert data, "the connection closed before both bodies ended"
                raw += data
    finally:
        server.should_exit = True
        thread.join(10)
    first, _, second = bytes(raw).partition(b"0\r\n\r\n")
    assert dechunk(first + b"0\r\n\r\n") == dechunk(second) == b"data: one\n\n"
    assert len(app.probes) == 2


class RecordingTransport(asyncio.Transport):
    """A connection's transport that keeps each write: what the client would receive, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        if not self.closed:  # as uvloop's and asyncio's transports do, a write after close() is dropped
            self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        pass


class EventsApp:
    """Streams three events the way the relay does: the first pushed from the task, the next written by a data
    callback (gathered for the turn), then the end."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        http = HttpRequest(scope, receive, send)
        body = await http.start_stream(200, [(b"content-type", b"text/event-stream")])
        body.write(b"data: first\n\n")
        body.push()
        asyncio.get_running_loop().call_soon(body.write, b"data: second\n\n")
        await asyncio.sleep(0.01)
        body.write(b"data: last\n\n")
        await body.end(b"data: [DONE]\n\n")


@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_streams_head_goes_with_its_first_event_and_its_last_events_with_the_end(keep_alive: bool) -> None:
    """Two writes fewer a stream: the head is gathered with the first event, the last events with the end; and when
    the connection is to close after the response, the gathered end still goes out before it closes."""

    async def main() -> list[bytes]:
        config = uvicorn.Config(EventsApp(), lifespan="off", access_log=False, proxy_headers=False)
        config.load()
        from uvicorn.server import ServerState

        protocol = BoundedHttpProtocol(config, ServerState(), {}, asyncio.get_running_loop())
        transport = RecordingTransport()
        protocol.connection_made(transport)
        connection = b"keep-alive" if keep_alive else b"close"
        protocol.data_received(b"GET /stream HTTP/1.1\r\nHost: test\r\nConnection: " + connection + b"\r\n\r\n")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if any(write.endswith(b"0\r\n\r\n") for write in transport.writes):
                break
        assert transport.closed is not keep_alive
        return transport.writes

    writes = asyncio.run(main())
    assert len(writes) == 3, writes
    head, middle, end = writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\nd\r\ndata: first\n\n\r\n")
    assert middle == b"e\r\ndata: second\n\n\r\n"
    assert end == b"c\r\ndata: last\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
