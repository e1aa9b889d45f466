"""The compiled chunk reader (providers/_chunkreader.c): an upstream connection's data callback that relays a
read holding one whole chunk without the parser. Its answers on their own, then through an UpstreamConnection
against the parser's path, its reference: every read, in every shape, must give the client the same bytes and
the tap the same usage, end and kept events; and over a real socket, on both event loops."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.formats.openai import OpenAIStreamTap
from llmrelay.providers import connections
from llmrelay.providers.connections import ChunkReader, ConnectionPool, UpstreamConnection
from llmrelay.relay.streaming import EventRelay
from tests.test_eventscan import SECRET, PythonOnlyTap, events
from tests.test_upstream_connections import END, SSE_HEAD, Scripted, chunk, open_stream, writes

EVENT = b'data: {"a":1,"usage":null}\n\n'


class Calls:
    """The reader's callbacks, recording what they were given."""

    def __init__(self, scan_answer: object = "same", write_answer: bool = True, boundary: bool = True) -> None:
        self.scan_answer = scan_answer
        self.write_answer = write_answer
        self.boundary = boundary
        self.scanned: list[bytes] = []
        self.written: list[bytes] = []
        self.parsed: list[bytes] = []
        self.failed: list[BaseException] = []
        self.paused = 0

    def scan(self, data: bytes) -> object:
        self.scanned.append(data)
        if isinstance(self.scan_answer, Exception):
            raise self.scan_answer
        return data if self.scan_answer == "same" else self.scan_answer

    def write(self, data: bytes) -> bool:
        self.written.append(data)
        return self.write_answer

    def pause(self) -> None:
        self.paused += 1

    def parse(self, data: bytes) -> bool:
        self.parsed.append(data)
        return self.boundary

    def reader(self, synced: bool = True) -> ChunkReader:
        assert ChunkReader is not None
        return ChunkReader(self.scan, self.write, self.pause, self.parse, self.failed.append, lambda: 12.5, synced)


def test_the_chunk_reader_is_built() -> None:
    assert ChunkReader is not None, "llmrelay/providers/_chunkreader.c was not compiled: is gcc installed?"


def test_a_whole_chunk_the_scan_takes_is_written_as_it_came() -> None:
    calls = Calls()
    reader = calls.reader()
    read = chunk(EVENT)
    assert reader(read) is None
    assert calls.scanned == [EVENT] and calls.parsed == [] and calls.paused == 0
    assert calls.written == [read] and calls.written[0] is read  # not copied
    assert reader.last == 12.5


def test_data_the_scan_changes_is_framed_again() -> None:
    calls = Calls(scan_answer=b'data: {"a":1}\n\n')
    calls.reader()(chunk(EVENT))
    assert calls.written == [chunk(b'data: {"a":1}\n\n')]


@pytest.mark.parametrize(
    "read",
    [
        b"%X\r\n%b\r\n" % (len(EVENT), EVENT),  # upper-case hex
        b"0%x\r\n%b\r\n" % (len(EVENT), EVENT),  # a leading zero
        b"%x;ext=1\r\n%b\r\n" % (len(EVENT), EVENT),  # a chunk extension
        chunk(EVENT)[:-1],  # a cut chunk
        chunk(EVENT)[:-2] + b"\n\n",  # not ended by CRLF
        b"%x\r\n%b\r\n" % (len(EVENT) + 1, EVENT),  # the size does not match
        END,  # the last chunk: the parser must see the body end
        b"123456789\r\n",  # a size line past 8 digits
        b"data: x\r\n",
        b"",
    ],
)
def test_any_other_read_goes_to_the_parser(read: bytes) -> None:
    calls = Calls()
    reader = calls.reader()
    reader(read)
    assert calls.parsed == [read] and calls.written == [] and calls.scanned == []


def test_several_whole_chunks_are_written_together_up_to_one_the_scan_leaves() -> None:
    calls = Calls()
    reader = calls.reader()
    second = b'data: {"b":2}\n\n'
    reader(chunk(EVENT) + chunk(second))
    assert calls.written == [chunk(EVENT) + chunk(second)] and calls.parsed == []
    calls.scan_answer = b"x"
    reader(chunk(EVENT) + chunk(second))
    assert calls.written[1:] == [chunk(b"x") * 2]
    calls.written.clear()
    calls.scan_answer = "same"
    reader(chunk(EVENT) + chunk(EVENT)[:-1])  # the second is cut: the parser's, after the first is written
    assert calls.written == [chunk(EVENT)] and calls.parsed == [chunk(EVENT)[:-1]]
    done = b"data: [DONE]\n\n"
    leaves_done = Calls()
    leaves_done.scan = lambda data: None if data == done else data  # type: ignore[method-assign]
    leaves_done.reader()(chunk(EVENT) + chunk(done) + chunk(EVENT) + END)
    assert leaves_done.written == [chunk(EVENT)]
    assert leaves_done.parsed == [chunk(done) + chunk(EVENT) + END]  # from the first the scan leaves, in order


def test_data_the_scan_leaves_goes_to_the_parser_which_says_where_it_stands() -> None:
    calls = Calls(scan_answer=None, boundary=False)
    reader = calls.reader()
    reader(chunk(EVENT))
    assert calls.scanned == [EVENT] and calls.parsed == [chunk(EVENT)] and calls.written == []
    assert not reader.synced  # mid-chunk: the next whole-looking read is the parser's too
    calls.scan_answer = "same"
    reader(chunk(EVENT))
    assert calls.parsed == [chunk(EVENT)] * 2 and calls.written == []
    calls.boundary = True
    reader(b"5\r\nhello\r\n")  # ends the chunk; the parser says it stands between chunks again
    assert reader.synced
    reader(chunk(EVENT))
    assert calls.written == [chunk(EVENT)]


def test_a_full_client_pauses_and_an_error_fails_the_connection() -> None:
    calls = Calls(write_answer=False)
    calls.reader()(chunk(EVENT))
    assert calls.paused == 1
    error = ValueError("cannot relay")
    failing = Calls(scan_answer=error)
    assert failing.reader()(chunk(EVENT)) is None
    assert failing.failed == [error] and failing.written == []
    wrong = Calls(scan_answer="a str")
    wrong.reader()(chunk(EVENT))
    assert isinstance(wrong.failed[0], TypeError)


def test_the_reader_checks_its_arguments_and_holds_no_stray_references() -> None:
    calls = Calls()
    with pytest.raises(TypeError):
        ChunkReader(calls.scan, None, calls.pause, calls.parse, calls.failed.append, lambda: 0.0, True)  # type: ignore[misc]
    reader = calls.reader()
    with pytest.raises(TypeError):
        reader("text")
    read = chunk(EVENT) + b" "  # not interned: its count is its own
    read = read[:-1]
    before = sys.getrefcount(read)
    for _ in range(100):
        reader(read)
    assert sys.getrefcount(read) == before + 100  # one per written read, none leaked
    calls.written.clear()
    assert sys.getrefcount(read) == before


class Transport:
    """The upstream connection's transport, in memory: the test delivers reads to whoever is its protocol's
    data callback now, as the event loop does."""

    def __init__(self) -> None:
        self.protocol: UpstreamConnection | None = None
        self.closed = False

    def set_protocol(self, protocol: UpstreamConnection) -> None:
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class ChunkedBody:
    """The DirectBody's two ways in, both recording the client's bytes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.chunks_taken = 0

    def write(self, data: bytes) -> bool:
        self.written.append(b"%x\r\n%b\r\n" % (len(data), data))
        return True

    def write_chunk(self, data: bytes) -> bool:
        self.chunks_taken += 1
        self.written.append(data)
        return True

    def push(self) -> None:
        pass


async def relay_reads(tap: OpenAIStreamTap, reads: list[bytes], before: int) -> tuple[object, ...]:
    """The reads through an UpstreamConnection, as its event loop would deliver them, the relay beginning once
    the head is in and `before` reads have come; what the client got, and how many chunks the reader took."""
    connection = UpstreamConnection(None)  # type: ignore[arg-type]
    transport = Transport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    transport.protocol = connection
    connection._send(b"POST / HTTP/1.1\r\n\r\n", 5.0)
    body = ChunkedBody()
    relay = EventRelay(tap, body, connection, (SECRET,))  # type: ignore[arg-type]

    async def consume() -> None:
        relay.feed_first(await connection.first_data())
        await connection.relay(relay.feed, relay.whole_chunks)
        relay.finish()

    consumer = None
    for index, data in enumerate([*reads, None]):
        if consumer is None and connection.status and (index >= before or data is None):
            consumer = asyncio.ensure_future(consume())
        for _ in range(3):  # the consumer's steps between two reads
            await asyncio.sleep(0)
        if data is not None:
            assert transport.protocol is not None
            transport.protocol.data_received(data)
    assert consumer is not None
    await asyncio.wait_for(consumer, 2)
    assert "data_received" not in vars(connection)  # the class's callback once the relay is over
    return b"".join(body.written), tap.usage, tap.done, tap.completion_texts(), body.chunks_taken


def size_line(size: int, form: str) -> bytes:
    return {"canonical": b"%x", "upper": b"%X", "zero": b"0%x", "extension": b"%x;a=b"}[form] % size + b"\r\n"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(events, min_size=1, max_size=8),
    st.lists(st.sampled_from(["canonical", "canonical", "upper", "zero", "extension"]), min_size=8, max_size=8),
    st.booleans(),
    st.lists(st.integers(0, 600), max_size=3),
    st.integers(0, 3),
    st.booleans(),
)
def test_the_reader_and_the_parser_relay_every_read_alike(
    event_list: list[bytes], forms: list[str], chunk_per_event: bool, cuts: list[int], before: int, wants: bool
) -> None:
    if chunk_per_event:
        chunks = [size_line(len(event), form) + event + b"\r\n" for event, form in zip(event_list, forms, strict=False)]
    else:  # the events' bytes cut into chunks anywhere
        stream = b"".join(event_list)
        chunks = [size_line(len(part), "canonical") + part + b"\r\n" for part in (stream[:7], stream[7:]) if part]
    reply = SSE_HEAD + b"".join(chunks) + END
    points = sorted({min(cut, len(reply)) for cut in cuts})
    cut_reads = [reply[a:b] for a, b in zip([0, *points], [*points, len(reply)], strict=True) if reply[a:b]]
    for reads in (cut_reads, [SSE_HEAD, *chunks, END], [SSE_HEAD, b"".join(chunks) + END]):
        read = asyncio.run(relay_reads(OpenAIStreamTap(client_wants_usage=wants), reads, before))
        reference = asyncio.run(relay_reads(PythonOnlyTap(client_wants_usage=wants), reads, before))
        assert read[:4] == reference[:4]
        assert reference[4] == 0
        assert SECRET not in read[0]  # type: ignore[operator]


def test_one_chunk_per_event_is_relayed_by_the_reader() -> None:
    chunks = [chunk(b'data: {"choices":[],"n":%d,"usage":null}\n\n' % n) for n in range(5)]
    written, _, done, texts, taken = asyncio.run(
        relay_reads(OpenAIStreamTap(client_wants_usage=False), [SSE_HEAD, *chunks, END], 1)
    )
    assert taken == 4  # the first came before the relay began: the parser's, as the reply's first bytes
    assert written == b"".join(chunk(b'data: {"choices":[],"n":%d}\n\n' % n) for n in range(5))
    assert not done and texts == []  # no [DONE] yet; chunks with no choices generate no text


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_over_a_socket_the_reader_relays_and_the_body_ends(loop: str) -> None:
    """On a real connection: events as their own chunks reach the client by the reader, the rest (the usage,
    [DONE]) by the parser, the body's end ends the relay, and the connection goes back to its pool with its
    own data callback."""
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
    contents = [b'data: {"choices":[{"delta":{"content":"w%d"}}],"usage":null}\n\n' % n for n in range(6)]
    steps = [SSE_HEAD, chunk(contents[0])]
    for event in contents[1:]:
        steps += [0.01, chunk(event)]
    steps += [0.01, chunk(usage), chunk(b"data: [DONE]\n\n"), END]

    async def main() -> tuple[ChunkedBody, OpenAIStreamTap, bool]:
        async with Scripted(writes(*steps)) as server:
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server)
            tap = OpenAIStreamTap(client_wants_usage=True)
            body = ChunkedBody()
            relay = EventRelay(tap, body, connection, (SECRET,))  # type: ignore[arg-type]
            relay.feed_first(await connection.first_data())
            await connection.relay(relay.feed, relay.whole_chunks)
            relay.finish()
            restored = "data_received" not in vars(connection)
            connection.release()
            pool.close()
        return body, tap, restored

    runner = uvloop.run if loop == "uvloop" else asyncio.run
    body, tap, restored = runner(main())
    # [DONE] is the tap's to write, after the usage the gateway settles (tap.finish)
    assert b"".join(body.written) == b"".join(chunk(event) for event in [*contents, usage])
    assert body.chunks_taken == 5  # every content event after the first, which came with the head
    assert tap.usage is not None and tap.usage.total_tokens == 7 and tap.done
    assert tap.completion_texts() == [f"w{n}" for n in range(6)]
    assert restored


def test_chunks_relayed_by_the_reader_keep_the_idle_limit_from_passing() -> None:
    """The idle watchdog must see the reader's reads: events 0.1 s apart for 0.6 s under a 0.25 s idle limit
    are not a timeout, and silence after them is."""
    contents = [b'data: {"choices":[],"n":%d,"usage":null}\n\n' % n for n in range(7)]
    steps: list[bytes | float | None] = [SSE_HEAD, chunk(contents[0])]
    for event in contents[1:]:
        steps += [0.1, chunk(event)]

    async def main() -> tuple[int, type[BaseException] | None]:
        async with Scripted(writes(*steps, 5.0)) as server:
            pool = ConnectionPool(server.url)
            connection = await open_stream(pool, server, first_byte=0.25)
            connection.idle_limit(0.25)
            body = ChunkedBody()
            relay = EventRelay(OpenAIStreamTap(client_wants_usage=True), body, connection, (SECRET,))  # type: ignore[arg-type]
            relay.feed_first(await connection.first_data())
            error = None
            try:
                await connection.relay(relay.feed, relay.whole_chunks)
            except TimeoutError as exc:
                error = type(exc)
            pool.close()
        return body.chunks_taken, error

    taken, error = uvloop.run(main())
    assert taken == 6  # all after the first, each 0.1 s apart, came through the reader without a timeout
    assert error is TimeoutError  # and the silence after them is one


def test_without_the_extension_every_read_takes_the_parsers_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built without a C compiler, llmrelay relays the same bytes through the parser."""
    chunks = [chunk(b'data: {"choices":[],"n":%d,"usage":null}\n\n' % n) for n in range(5)]
    reads = [SSE_HEAD, *chunks, END]
    with_reader = asyncio.run(relay_reads(OpenAIStreamTap(client_wants_usage=True), reads, 1))
    monkeypatch.setattr(connections, "ChunkReader", None)
    without = asyncio.run(relay_reads(OpenAIStreamTap(client_wants_usage=True), reads, 1))
    assert with_reader[4] == 4 and without[4] == 0
    assert with_reader[:4] == without[:4]
