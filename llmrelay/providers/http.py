"""One pooled keep-alive HTTP client per upstream origin, shared by every channel that points there."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp


class UpstreamPool:
    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session_for(self, base_url: str) -> aiohttp.ClientSession:
        parts = urlsplit(base_url)
        origin = f"{parts.scheme}://{parts.netloc}"
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
