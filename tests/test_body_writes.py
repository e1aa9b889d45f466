"""The streamed body's gathered writes (llmrelay/body_writes.py), in both forms: the Python reference and the
compiled one (llmrelay/_bodywrites.c) that the server uses where it is built. Each test runs on both."""

from __future__ import annotations

import gc
import sys
import weakref
from types import SimpleNamespace
from typing import Any

import pytest

from llmrelay import body_writes
from llmrelay.body_writes import PyGatheredBody, PyTurnWrites

LIMIT = 100


def test_the_compiled_writes_are_built() -> None:
    assert body_writes.GatheredBody is not PyGatheredBody, "llmrelay/_bodywrites.c was not compiled: is gcc installed?"
    assert body_writes.TurnWrites is not PyTurnWrites


IMPLEMENTATIONS = [
    pytest.param((PyGatheredBody, PyTurnWrites), id="python"),
    pytest.param((body_writes.GatheredBody, body_writes.TurnWrites), id="compiled"),
]


class Loop:
    """call_soon recorded; `turn()` runs what was asked for, as the next turn of the event loop would."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def call_soon(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def turn(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


class Transport:
    def __init__(self, log: list[tuple[str, bytes]], name: str) -> None:
        self.log = log
        self.name = name
        self.fail = False

    def write(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionResetError(f"{self.name} is gone")
        self.log.append((self.name, data))


class Setup:
    def __init__(self, implementation: tuple[type, type]) -> None:
        self.body_type, turn_type = implementation
        self.loop = Loop()
        self.turn = turn_type(self.loop)
        self.log: list[tuple[str, bytes]] = []
        self.writable: list[str] = []

    def body(self, name: str = "a", body_type: type | None = None) -> Any:
        protocol = SimpleNamespace(turn_writes=self.turn, on_writable=lambda: self.writable.append(name))
        cycle = SimpleNamespace(
            disconnected=False, flow=SimpleNamespace(write_paused=False), transport=Transport(self.log, name)
        )
        return (body_type or self.body_type)(protocol, cycle, LIMIT)


@pytest.fixture(params=IMPLEMENTATIONS)
def setup(request: pytest.FixtureRequest) -> Setup:
    return Setup(request.param)


def test_a_turns_chunks_go_out_in_one_write_per_body_at_the_next_turn(setup: Setup) -> None:
    a, b = setup.body("a"), setup.body("b")
    assert a.write_chunk(b"1\r\nx\r\n") is True
    assert b.write_chunk(b"1\r\ny\r\n") is True
    assert a.write_chunk(b"1\r\nz\r\n") is True
    assert setup.log == []
    assert len(setup.loop.callbacks) == 1  # one callback for the turn, however many bodies
    setup.loop.turn()
    assert setup.log == [("a", b"1\r\nx\r\n1\r\nz\r\n"), ("b", b"1\r\ny\r\n")]
    setup.loop.turn()
    assert setup.log == [("a", b"1\r\nx\r\n1\r\nz\r\n"), ("b", b"1\r\ny\r\n")]  # nothing is written twice
    a.write_chunk(b"1\r\nw\r\n")
    assert len(setup.loop.callbacks) == 1  # the next turn asks again
    setup.loop.turn()
    assert setup.log[-1] == ("a", b"1\r\nw\r\n")


def test_push_writes_at_once_and_the_turn_then_has_nothing_left(setup: Setup) -> None:
    a = setup.body()
    a.write_chunk(b"first")
    a.push()
    assert setup.log == [("a", b"first")]
    setup.loop.turn()
    assert setup.log == [("a", b"first")]
    a.push()  # nothing pending
    assert setup.log == [("a", b"first")]


def test_a_full_write_buffer_says_stop_and_the_chunk_is_still_kept(setup: Setup) -> None:
    a = setup.body()
    a.cycle.flow.write_paused = True
    assert a.write_chunk(b"one") is False
    assert a.write_chunk(b"two") is False
    setup.loop.turn()
    assert setup.log == [("a", b"onetwo")]
    assert setup.writable == []  # the protocol's resume_writing tells once the buffer drains, not the body


def test_past_the_limit_the_body_holds_its_writer_until_its_push(setup: Setup) -> None:
    a = setup.body()
    assert a.write_chunk(b"x" * 60) is True
    assert a.write_chunk(b"y" * 60) is False  # 120 bytes pending >= LIMIT
    assert setup.writable == []
    setup.loop.turn()
    assert setup.log == [("a", b"x" * 60 + b"y" * 60)]
    assert setup.writable == ["a"]  # written: the writer may go on
    a.write_chunk(b"z")
    setup.loop.turn()
    assert setup.writable == ["a"]  # said once


def test_a_held_body_whose_buffer_filled_waits_for_the_protocol(setup: Setup) -> None:
    a = setup.body()
    a.write_chunk(b"x" * LIMIT)
    assert a.write_chunk(b"y") is False
    a.cycle.flow.write_paused = True
    setup.loop.turn()
    assert setup.writable == []


def test_a_held_body_with_no_one_to_tell_is_fine(setup: Setup) -> None:
    a = setup.body()
    a.protocol.on_writable = None
    a.write_chunk(b"x" * LIMIT)
    a.write_chunk(b"y")
    setup.loop.turn()
    assert setup.log == [("a", b"x" * LIMIT + b"y")]


def test_a_gone_client_gets_nothing(setup: Setup) -> None:
    a, b = setup.body("a"), setup.body("b")
    a.write_chunk(b"lost")
    b.write_chunk(b"kept")
    a.cycle.disconnected = True
    assert a.write_chunk(b"more") is True  # nothing to pause for: the relay learns of the leaving elsewhere
    setup.loop.turn()
    assert setup.log == [("b", b"kept")]


def test_one_bodys_failed_write_does_not_keep_the_others_back(setup: Setup) -> None:
    a, b, c = setup.body("a"), setup.body("b"), setup.body("c")
    for body in (a, b, c):
        body.write_chunk(body.cycle.transport.name.encode())
    b.cycle.transport.fail = True
    with pytest.raises(ConnectionResetError, match="b is gone"):
        setup.loop.turn()
    assert setup.log == [("a", b"a"), ("c", b"c")]
    a.write_chunk(b"again")  # the turn writer works on after the error
    setup.loop.turn()
    assert setup.log[-1] == ("a", b"again")


def test_the_body_offers_its_protocol_and_cycle(setup: Setup) -> None:
    a = setup.body()
    assert a.protocol.turn_writes is setup.turn
    assert a.cycle.transport.name == "a"


def test_a_subclass_adds_behaviour_without_a_dict(setup: Setup) -> None:
    class Framing(setup.body_type):  # type: ignore[name-defined,misc]  # what server.py's DirectBody does
        __slots__ = ()

        def write(self, data: bytes) -> bool:
            return self.write_chunk(b"%x\r\n%b\r\n" % (len(data), data))

    body = setup.body("f", Framing)
    assert not hasattr(body, "__dict__")
    body.write(b"hello")
    setup.loop.turn()
    assert setup.log == [("f", b"5\r\nhello\r\n")]


def test_bodies_are_freed_by_reference_counting(setup: Setup) -> None:
    """A body in a turn's list is released once pushed; nothing about it needs the cyclic collector."""
    body = setup.body()
    body.write_chunk(b"x")
    ref = weakref.ref(body.cycle.transport)
    gc.disable()
    try:
        del body
        setup.loop.turn()
        assert ref() is None
    finally:
        gc.enable()


def test_the_compiled_form_refuses_bad_arguments_and_leaks_nothing() -> None:
    setup = Setup((body_writes.GatheredBody, body_writes.TurnWrites))
    with pytest.raises(TypeError):
        setup.body().write_chunk("text")
    with pytest.raises(TypeError, match="compiled TurnWrites"):
        setup.body_type(SimpleNamespace(turn_writes=PyTurnWrites(setup.loop)), SimpleNamespace(), LIMIT)
    with pytest.raises(AttributeError):
        setup.body_type(SimpleNamespace(turn_writes=setup.turn), SimpleNamespace(), LIMIT)
    with pytest.raises(TypeError):
        setup.turn("an argument")
    before = sys.getrefcount(setup.turn)
    for _ in range(100):
        setup.body().write_chunk(b"x")
    setup.loop.turn()
    after = sys.getrefcount(setup.turn)  # not inside the assert, whose rewriting holds its operands
    assert after == before
