"""The event loop the gateway serves on: uvloop, with a listening socket that accepts the connections waiting
on it in batches.

uvloop (libuv) accepts one connection per turn of the event loop. A turn relays every event that arrived since
the last one, so under load it lasts tens or hundreds of milliseconds, and clients wait in the kernel's accept
queue: measured with 2,000 concurrent streams on one core, the gateway accepted ~40 connections a second while
600-800 waited, some for seconds, and those clients' first events came seconds late while established streams
flowed. The server here takes up to ACCEPT_BATCH waiting connections per turn instead (as asyncio's own loop
does). The batch is bounded so that one turn cannot be spent accepting, and so that with `--workers N` a busy
worker, which turns less often, leaves more of the waiting connections to the others.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvloop

log = logging.getLogger("llmrelay.server")

ACCEPT_BATCH = 128
ACCEPT_RETRY_SECONDS = 1.0  # after the process ran out of file descriptors (or memory) while accepting


class BatchAcceptServer(asyncio.AbstractServer):
    """Serves `protocol_factory` on an already listening TCP socket, accepting up to ACCEPT_BATCH connections
    each time the socket is readable."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol_factory: Callable[[], asyncio.BaseProtocol], sock: socket.socket
    ) -> None:
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._socket = sock
        self._serving = False
        self._closed = asyncio.Event()
        self._retry: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        self._start()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed.is_set() else (self._socket,)

    def _start(self) -> None:
        self._retry = None
        self._serving = True
        self._loop.add_reader(self._socket.fileno(), self._accept_waiting)

    def _stop(self) -> None:
        if self._serving:
            self._loop.remove_reader(self._socket.fileno())
            self._serving = False

    def _accept_waiting(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, _ = self._socket.accept()
            except (BlockingIOError, InterruptedError):
                return  # none left
            except ConnectionAbortedError:
                continue  # the client gave up while it waited
            except OSError as exc:  # out of file descriptors or memory: accepting more would only fail again
                log.error(
                    "cannot accept connections (%s); retrying in %.0f s", exc.strerror or exc, ACCEPT_RETRY_SECONDS
                )
                self._stop()
                self._retry = self._loop.call_later(ACCEPT_RETRY_SECONDS, self._start)
                return
            connection.setblocking(False)
            self._loop.create_task(self._connect(connection))

    async def _connect(self, connection: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, connection)
        except OSError:  # the client left before its transport was set up
            connection.close()

    def close(self) -> None:
        """Stop accepting; the listening socket is left to its owner (serve.py, shared by the workers)."""
        self._stop()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        """Serving starts on creation."""

    async def serve_forever(self) -> None:
        await self.wait_closed()


class GatewayLoop(uvloop.Loop):  # type: ignore[misc]  # uvloop's Loop is a Cython class without type hints
    """uvloop, except that a server on a given TCP socket (what uvicorn makes of the socket serve.py binds)
    accepts in batches. uvicorn's `loop` setting names this class ("llmrelay.event_loop:GatewayLoop"): a
    custom setting is the loop factory itself."""

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], *args: Any, sock: Any = None, **options: Any
    ) -> asyncio.AbstractServer:
        if args or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6) or options.get("ssl"):
            return await super().create_server(protocol_factory, *args, sock=sock, **options)
        return BatchAcceptServer(self, protocol_factory, sock)
