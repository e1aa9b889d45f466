"""What every fake upstream shares: an aiohttp app on its own event loop in a background thread, on
127.0.0.1 and an ephemeral port, recording every request it receives."""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.raw)


@dataclass
class FakeState:
    requests: list[Received] = field(default_factory=list)
    cancelled_streams: int = 0
    completed_streams: int = 0


class FakeServer:
    """Subclasses add their routes in `routes`; `base_url` is the URL as the provider's SDK takes it."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.port = 0
        self._ids = itertools.count(1)  # for reply ids
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def requests_with(self, marker: str) -> list[Received]:
        return [r for r in self.state.requests if marker.encode() in r.raw]
