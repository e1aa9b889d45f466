"""One pooled keep-alive HTTP client per upstream origin, shared by every channel that points there (and one
pool of connections for its streamed replies, event_stream.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from llmrelay.providers.event_stream import EventStreamPool


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


class UpstreamPool:
    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._streams: dict[str, EventStreamPool] = {}

    def streams_for(self, base_url: str) -> EventStreamPool:
        """The keep-alive connections for streamed replies from the origin of `base_url`."""
        origin = _origin(base_url)
        pool = self._streams.get(origin)
        if pool is None:
            pool = self._streams[origin] = EventStreamPool(origin)
        return pool

    def session_for(self, base_url: str) -> aiohttp.ClientSession:
        origin = _origin(base_url)
        session = self._sessions.get(origin)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=0,  # no pool-wide cap: concurrency is bounded by clients, not by a hidden queue
                limit_per_host=0,
                keepalive_timeout=60,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "llmrelay"},
                raise_for_status=False,
            )
            self._sessions[origin] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        for pool in self._streams.values():
            pool.close()
        self._streams.clear()
