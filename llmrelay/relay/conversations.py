"""Responses the gateway keeps for `previous_response_id` on translated models.

An OpenAI channel keeps its own responses; a model reached through translation (Claude, Gemini, a server
with only chat completions) has no such memory, so the gateway keeps each response's conversation itself:
in a bounded in-memory cache for the next turn, which usually follows within seconds, and in the database
(written in the background) for later turns and other gateway processes. A response is found only with
the key that made it, and only until its retention ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine

from llmrelay.store.responses import StoredResponse, delete_expired, load_response, save_responses

log = logging.getLogger("llmrelay.responses")
CACHE_ENTRIES = 5_000
FLUSH_SECONDS = 0.2  # responses are written in batches, like usage records: one database call per batch
RunDb = Callable[..., Awaitable[Any]]


class ConversationStore:
    def __init__(self, engine: Engine, run_db: RunDb, retention_seconds: int) -> None:
        self._engine = engine
        self._run_db = run_db
        self.retention_seconds = retention_seconds
        self._cache: OrderedDict[str, StoredResponse] = OrderedDict()
        self._pending: list[StoredResponse] = []
        self._writes: set[asyncio.Task[None]] = set()

    def remember(self, response_id: str, key_id: int, model: str, conversation: list[dict[str, Any]]) -> None:
        """Keep a finished response's conversation (its input items and its output, as input items)."""
        now = int(time.time())
        stored = StoredResponse(response_id, key_id, model, now, now + self.retention_seconds, conversation)
        self._cache[response_id] = stored
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        if not self._pending:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)
        self._pending.append(stored)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:  # already written by close()
            return
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, batch: list[StoredResponse]) -> None:
        try:
            await self._run_db(save_responses, self._engine, batch)
        except Exception:
            log.exception("storing %d response(s) failed; they stay in this process's memory only", len(batch))

    async def find(self, response_id: str, key_id: int) -> StoredResponse | None:
        """The conversation up to `response_id`, if `key_id` made it and it is still kept."""
        now = int(time.time())
        stored = self._cache.get(response_id)
        if stored is None:
            stored = await self._run_db(load_response, self._engine, response_id, key_id, now)
        if stored is None or stored.key_id != key_id or stored.expires_at <= now:
            return None
        return stored

    async def purge(self) -> None:
        """Forget responses past their retention (in the database; the cache ages out by size)."""
        removed = await self._run_db(delete_expired, self._engine, int(time.time()))
        if removed:
            log.info("removed %d stored response(s) past their retention", removed)

    async def close(self) -> None:
        if self._pending:
            self._flush()
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=10)
