"""A streamed response body's writes to its client, gathered per turn of the event loop.

A chunk is not written at once: the chunks of one turn of the event loop are written together at the start of the
next (TurnWrites), one write per connection. To a client on the same host (the bench's, or a reverse proxy in front
of the gateway) the kernel does the receiving side's work inside our write and wakes the reader; written back to
back, the reader is still awake for the next write instead of being woken for each. Measured with 2,000
token-paced streams: 5-7% more streams a second.

This file is the reference; `_bodywrites.c` is the same in C, used where it is built (setup.py), because with
token-paced streams these run for every relayed event. tests/test_body_writes.py runs both.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Flow(Protocol):
    write_paused: bool


class Cycle(Protocol):
    """What a body needs of uvicorn's request cycle."""

    disconnected: bool
    flow: Flow
    transport: Any


class Connection(Protocol):
    """What a body needs of the server's protocol (server.py): this loop's TurnWrites, and whom to tell that a
    body that held its writer back has been written."""

    turn_writes: Any
    on_writable: Any


class PyTurnWrites:
    """The bodies written during this turn of the event loop; calling the object (one call_soon callback) pushes
    them at the start of the next. A body's failed write does not keep the others' chunks back: the first error
    is raised once all are pushed (the event loop logs it)."""

    __slots__ = ("_bodies", "_call_soon")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._call_soon = loop.call_soon
        self._bodies: list[PyGatheredBody] = []

    def add(self, body: PyGatheredBody) -> None:
        if not self._bodies:
            self._call_soon(self)
        self._bodies.append(body)

    def __call__(self) -> None:
        bodies, self._bodies = self._bodies, []
        error: Exception | None = None
        for body in bodies:
            try:
                body.push()
            except Exception as exc:  # raised below, once every body is pushed
                error = error or exc
        if error is not None:
            raise error


class PyGatheredBody:
    """A response body's framed chunks, gathered for the turn and written to its connection in one write.
    `protocol` and `cycle` are the connection's protocol and the request's cycle it was made with."""

    __slots__ = ("_flow", "_held", "_limit", "_pending", "_turn", "_write", "cycle", "protocol")

    def __init__(self, protocol: Connection, cycle: Cycle, limit: int) -> None:
        self.protocol = protocol
        self.cycle = cycle
        self._flow = cycle.flow
        self._write = cycle.transport.write
        self._turn: PyTurnWrites = protocol.turn_writes
        self._pending: bytes | None = None
        self._limit = limit  # pending bytes past which write_chunk says stop
        self._held = False  # write_chunk said stop because of the pending bytes, not a full write buffer

    def write_chunk(self, chunk: bytes) -> bool:
        """Gather framed body bytes for this turn's push; False: the caller should stop (pause its source) until
        the protocol's on_writable is called."""
        if self.cycle.disconnected:
            return True
        pending = self._pending
        if pending is None:
            self._turn.add(self)
            self._pending = chunk
        else:
            self._pending = pending = pending + chunk
            if len(pending) >= self._limit:
                self._held = True
                return False
        return not self._flow.write_paused

    def push(self) -> None:
        """Write what is pending now."""
        pending, self._pending = self._pending, None
        if pending is None or self.cycle.disconnected:
            return
        self._write(pending)
        if self._held:
            self._held = False
            on_writable = self.protocol.on_writable
            if not self._flow.write_paused and on_writable is not None:
                on_writable()  # else the protocol's resume_writing says so once the buffer drains


try:
    from llmrelay._bodywrites import GatheredBody, TurnWrites
except ImportError:  # built without a C compiler
    GatheredBody = PyGatheredBody  # type: ignore[assignment,misc]
    TurnWrites = PyTurnWrites  # type: ignore[assignment,misc]
