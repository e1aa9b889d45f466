"""The upstream HTTP client (providers/connections.py), against scripted HTTP servers on loopback.

Each scripted server reads one request at a time (head and Content-Length body) and answers it with the
steps its test gives: bytes to write, pauses, a close. What the server read is kept for the test to check.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from llmrelay.providers import connections
from llmrelay.providers.connections import ConnectionPool, UpstreamConnectionError
from llmrelay.surfaces.http import QueuedBody

SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENTS = [b'data: {"n":%d}\n\n' % n for n in range(3)]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


END = b"0\r\n\r\n"

Reply = Callable[[asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A loopback HTTP server answering its n-th request with replies[n] (the last one repeats)."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
                await reply(writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def writes(*steps: bytes | float | None) -> Reply:
    """A reply written in steps: bytes are written (and drained), a number is a pause in seconds, None closes."""

    async def reply(writer: asyncio.StreamWriter) -> None:
        for step in steps:
            if step is None:
                writer.close()
                return
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                writer.write(step)
                await writer.drain()

    return reply


SSE_REPLY = writes(SSE_HEAD, *(chunk(event) for event in EVENTS), END)


async def open_stream(pool: ConnectionPool, server: Scripted, first_byte: float = 5.0, **headers: str):  # type: ignore[no-untyped-def]
    return await pool.open(
        f"{server.url}/v1/chat/completions?x=1", {"Authorization": "Bearer k", **headers}, b'{"a":1}', 5.0, first_byte
    )


async def relay_all(connection) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The first bytes and the rest of the body, as the pieces the sink was handed."""
    pieces = [await connection.first_data()]
    await connection.relay(pieces.append)
    return pieces


def test_each_event_reaches_the_sink_as_it_arrives_and_the_request_is_well_formed() -> None:
    async def main() -> None:
        reply = writes(SSE_HEAD, chunk(EVENTS[0]), 0.05, chunk(EVENTS[1]), 0.05, chunk(EVENTS[2]), END)
        async with Scripted(reply) as server:
            host = server.url.removeprefix("http://").encode()
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server, **{"X-Custom": "v"})
            assert connection.status == 200
            assert connection.headers["content-type"] == "text/event-stream"
            pieces = await relay_all(connection)
            connection.release()
            pool.close()
        assert pieces == EVENTS  # one sink call per event: nothing waits for more bytes
        head, _, body = server.requests[0].partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /v1/chat/completions?x=1 HTTP/1.1"
        assert b"Host: " + host in lines
        assert b"Content-Length: 7" in lines and b"Authorization: Bearer k" in lines and b"X-Custom: v" in lines
        assert b"User-Agent: llmrelay" in lines
        assert body == b'{"a":1}'

    asyncio.run(main())


def test_a_kept_alive_connection_carries_the_next_request() -> None:
    async def main() -> None:
        async with Scripted(SSE_REPLY) as server:
            pool = ConnectionPool(server.url)
            for _ in range(3):
                connection = await open_stream(pool, server)
                assert b"".join(await relay_all(connection)) == b"".join(EVENTS)
                connection.release()
            pool.close()
        assert len(server.requests) == 3
        assert server.connections == 1

    asyncio.run(main())


def test_a_pooled_connection_the_upstream_closed_is_replaced_without_an_error() -> None:
    async def main() -> None:
        # The reply says keep-alive, then the server closes the idle connection: the next request must not fail.
        async with Scripted(writes(SSE_HEAD, chunk(EVENTS[0]), END, 0.05, None)) as server:
            pool = ConnectionPool(server.url)
            for _ in range(2):
                connection = await open_stream(pool, server)
                assert await relay_all(connection) == [EVENTS[0]]
                connection.release()
                await asyncio.sleep(0.2)  # the server has closed it by now
            pool.close()
        assert len(server.requests) == 2
        assert server.connections == 2

    asyncio.run(main())


@pytest.mark.parametrize(
    ("head", "body"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n",
            b"".join(EVENTS),
            id="content-length",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            b"".join(EVENTS),
            id="until-close",
        ),
    ],
)
def test_bodies_framed_by_length_or_by_the_connection_closing(head: bytes, body: bytes) -> None:
    async def main() -> None:
        head_bytes = head % len(body) if b"%d" in head else head
        async with Scripted(writes(head_bytes, body[:10], 0.02, body[10:], None)) as server:
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server)
            assert b"".join(await relay_all(connection)) == body
            connection.release()
            pool.close()

    asyncio.run(main())


def test_a_gzip_body_is_decoded() -> None:
    async def main() -> None:
        packed = gzip.compress(b"".join(EVENTS))
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
        head += b"content-length: %d\r\n\r\n" % len(packed)
        async with Scripted(writes(head, packed)) as server:
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server)
            assert b"".join(await relay_all(connection)) == b"".join(EVENTS)
            pool.close()

    asyncio.run(main())


def test_an_unsupported_encoding_is_an_error() -> None:
    async def main() -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: br\r\n"
        head += b"content-length: 3\r\n\r\n"
        async with Scripted(writes(head, b"abc")) as server:
            pool = ConnectionPool(server.url)
            with pytest.raises(UpstreamConnectionError, match="unsupported encoding"):
                await open_stream(pool, server)

    asyncio.run(main())


def test_an_error_reply_is_read_whole_with_its_headers() -> None:
    async def main() -> None:
        body = b'{"error":{"message":"slow down","type":"rate_limit_error"}}'
        head = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nX-RateLimit-Remaining-Requests: 0\r\n"
        head += b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        async with Scripted(writes(head, body[:5], 0.02, body[5:])) as server:
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server)
            assert connection.status == 429
            assert connection.headers["retry-after"] == "7"  # names lower-cased, as the relay looks them up
            assert connection.headers["x-ratelimit-remaining-requests"] == "0"
            assert await connection.read_all() == body
            connection.release()
            pool.close()

    asyncio.run(main())


def test_no_reply_within_the_first_byte_limit_times_out() -> None:
    async def main() -> None:
        async with Scripted(writes(5.0)) as server:
            pool = ConnectionPool(server.url)
            began = time.monotonic()
            with pytest.raises(TimeoutError):
                await open_stream(pool, server, first_byte=0.2)
            assert 0.15 < time.monotonic() - began < 3

    asyncio.run(main())


def test_silence_past_the_idle_limit_times_out_but_a_paused_read_does_not() -> None:
    async def main() -> None:
        stalled = writes(SSE_HEAD, chunk(EVENTS[0]), 5.0)
        async with Scripted(stalled) as server:
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server)
            connection.idle_limit(0.2)
            pieces = [await connection.first_data()]
            with pytest.raises(TimeoutError):
                await connection.relay(pieces.append)
            assert pieces == [EVENTS[0]]

        paced = writes(SSE_HEAD, chunk(EVENTS[0]), 0.05, chunk(EVENTS[1]), chunk(EVENTS[2]), END)
        async with Scripted(paced) as server:
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server)
            connection.idle_limit(0.2)
            pieces = [await connection.first_data()]
            connection.pause_reading()  # a slow client: the upstream's bytes wait in the socket
            relaying = asyncio.ensure_future(connection.relay(pieces.append))
            await asyncio.sleep(0.6)  # three idle limits: not a timeout, since it is us who stopped reading
            assert pieces == [EVENTS[0]] and not relaying.done()
            connection.resume_reading()
            await relaying
            assert b"".join(pieces) == b"".join(EVENTS)
            pool.close()

    asyncio.run(main())


def test_a_reply_cut_mid_body_is_a_connection_error() -> None:
    async def main() -> None:
        async with Scripted(writes(SSE_HEAD, chunk(EVENTS[0]), 0.05, None)) as server:
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server)
            pieces = [await connection.first_data()]
            with pytest.raises(UpstreamConnectionError, match="before the reply was complete"):
                await connection.relay(pieces.append)
            assert pieces == [EVENTS[0]]

    asyncio.run(main())


def test_a_sink_error_ends_the_relay_with_that_error() -> None:
    async def main() -> None:
        async with Scripted(writes(SSE_HEAD, chunk(EVENTS[0]), 0.05, chunk(EVENTS[1]), END)) as server:
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server)
            await connection.first_data()

            def sink(data: bytes) -> None:
                raise ValueError("cannot translate")

            with pytest.raises(ValueError, match="cannot translate"):
                await connection.relay(sink)
            assert connection.closed

    asyncio.run(main())


def test_a_reply_that_is_not_http_is_a_connection_error() -> None:
    async def main() -> None:
        async with Scripted(writes(b"SSH-2.0-OpenSSH\r\n\r\n")) as server:
            with pytest.raises(UpstreamConnectionError, match="not valid HTTP"):
                await open_stream(ConnectionPool(server.url), server)

    asyncio.run(main())


def test_an_unreachable_upstream_is_a_connection_error() -> None:
    async def main() -> None:
        async with Scripted(SSE_REPLY) as server:
            url = server.url
        with pytest.raises(UpstreamConnectionError, match="cannot connect"):
            await ConnectionPool(url).open(f"{url}/v1/x", {}, b"{}", 5.0, 5.0)

    asyncio.run(main())


@pytest.mark.parametrize("where", ["header", "path"])
def test_a_line_break_in_a_header_or_path_is_refused_before_anything_is_sent(where: str) -> None:
    async def main() -> None:
        async with Scripted(SSE_REPLY) as server:
            pool = ConnectionPool(server.url)
            url = f"{server.url}/v1/x" + (" HTTP/1.1\r\nEvil: 1" if where == "path" else "")
            headers = {"X-Team": "a\r\nEvil: 1"} if where == "header" else {}
            with pytest.raises(UpstreamConnectionError, match="line break"):
                await pool.open(url, headers, b"{}", 5.0, 5.0)
        assert server.requests == []

    asyncio.run(main())


def test_https_upstreams_are_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A certificate the system trusts (here: SSL_CERT_FILE) is accepted; any other is refused."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", key, "-out", cert, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def main() -> tuple[bytes, str]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                await SSE_REPLY(writer)
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_tls)
        url = f"https://localhost:{server.sockets[0].getsockname()[1]}"
        try:
            connections._tls_context.cache_clear()
            with pytest.raises(UpstreamConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await ConnectionPool(url).open(f"{url}/v1/x", {}, b"{}", 5.0, 5.0)
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            connections._tls_context.cache_clear()
            connection = await ConnectionPool(url).open(f"{url}/v1/x", {}, b"{}", 5.0, 5.0)
            body = b"".join(await relay_all(connection))
            connection.close()
            return body, connection.headers["content-type"]
        finally:
            connections._tls_context.cache_clear()
            server.close()

    assert asyncio.run(main()) == (b"".join(EVENTS), "text/event-stream")


def test_the_plain_asgi_writer_sends_in_order_and_reports_a_client_behind() -> None:
    """QueuedBody, for a server without the direct writer: order kept (the tail too), backpressure past its
    queue bound."""

    async def main() -> None:
        sent: list[bytes] = []
        gate = asyncio.Event()

        async def send(message: dict) -> None:  # type: ignore[type-arg]
            await gate.wait()  # a client that is not reading yet
            sent.append(message["body"])

        body = QueuedBody(send)
        resumed: list[bool] = []
        body.when_writable(lambda: resumed.append(True))
        small, large = b"a" * 10, b"b" * QueuedBody.QUEUE_BYTES
        assert body.write(small) is True
        assert body.write(large) is False  # past the bound: the caller pauses its upstream
        await asyncio.sleep(0.01)
        assert sent == [] and resumed == []
        gate.set()
        await body.end(b"tail")
        assert sent == [small, large, b"tail"]  # the last chunk only after every queued one
        assert resumed == [True]

    asyncio.run(main())
