"""What every fake upstream shares: an aiohttp app on its own event loop in a background thread, on
127.0.0.1 and an ephemeral port, recording every request it receives."""

from __future__ import annotations

import asyncio
import collections
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


@dataclass(frozen=True)
class Fault:
    """How a fake upstream misbehaves for one request (see FakeServer.inject): wait `hang` seconds first
    (past a gateway's first-byte timeout), then drop the connection without a reply, answer 200 with a body
    that is not JSON, or answer the error `status` in the provider's own error shape with `headers`
    (Retry-After, ...) and, if given, `body` instead of the provider's usual error body. A fault with
    none of these only delays the real reply."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    hang: float = 0.0
    drop: bool = False
    malformed: bool = False


class FakeServer:
    """Subclasses add their routes in `routes`; `base_url` is the URL as the provider's SDK takes it."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.faults: collections.deque[Fault] = collections.deque()  # one each for the next requests
        self.standing_fault: Fault | None = None  # for every request while set
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

    def error_response(self, status: int) -> web.Response:
        """An error reply of `status` in the provider's own shape."""
        raise NotImplementedError

    def inject(self, *faults: Fault) -> None:
        """Misbehave once per fault, for the next requests in order (set `standing_fault` for all of them)."""
        self.faults.extend(faults)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.standing_fault = None

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        fault = self.faults.popleft() if self.faults else self.standing_fault
        if fault is None:
            return await handler(request)
        received = Received(request.path, dict(request.headers), await request.read())
        self.state.requests.append(received)  # seen at once, even if the caller gives up during the hang
        if fault.hang:
            await asyncio.sleep(fault.hang)
        if fault.status is None and not fault.drop and not fault.malformed:
            self.state.requests.remove(received)  # only delayed: the handler records it
            return await handler(request)
        if fault.drop:
            request.transport.close()  # type: ignore[union-attr]
            return web.Response()
        if fault.malformed:
            return web.Response(body=b'{"id": "broken", "choices": [', content_type="application/json")
        if fault.body is not None:
            return web.json_response(fault.body, status=fault.status, headers=fault.headers)
        response = self.error_response(fault.status)
        response.headers.update(fault.headers)
        return response

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._faults])
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
