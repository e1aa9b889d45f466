"""One pool of keep-alive connections per upstream origin, shared by every channel that points there."""

from __future__ import annotations

from urllib.parse import urlsplit

from llmrelay.providers.connections import ConnectionPool


class UpstreamPool:
    def __init__(self) -> None:
        self._pools: dict[str, ConnectionPool] = {}

    def connections_for(self, base_url: str) -> ConnectionPool:
        """The connections to the origin (`scheme://host:port`) of `base_url`."""
        parts = urlsplit(base_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = ConnectionPool(origin)
        return pool

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
