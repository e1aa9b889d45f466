"""Usage records leave the request path here: queued in memory, written to the database in batches.

A request only appends to a list. A background task writes the list every `flush_seconds` (or sooner when
it grows), in one transaction per batch. A failed write keeps the batch for the next try; at shutdown
whatever cannot be written is spilled to a JSON-lines file that the next start replays, so no record and
no charge is lost. A record that arrives after the shutdown flush, and whatever is still queued when the
process exits without one, is spilled the same way.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from llmrelay.store.usage import UsageRecord, write_batch

log = logging.getLogger("llmrelay.usage")

BATCH_SIZE = 2000
RunInDb = Callable[..., Awaitable[Any]]


class UsageRecorder:
    def __init__(self, engine: Engine, run_db: RunInDb, spill_path: Path, flush_seconds: float = 0.2) -> None:
        self._engine = engine
        self._run_db = run_db
        self._spill_path = spill_path
        self._flush_seconds = flush_seconds
        self._buffer: list[UsageRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        # Spend recorded here but not yet in the database, per key: (nano, requests).
        self._unflushed: dict[int, list[int]] = defaultdict(lambda: [0, 0])

    def record(self, record: UsageRecord) -> None:
        if self._closed:  # nothing writes the queue any more: to the spill file, which the next start replays
            self._buffer.append(record)
            self._spill("a record arrived after the shutdown flush")
            return
        self._buffer.append(record)
        pending = self._unflushed[record.key_id]
        pending[0] += record.cost_nano
        pending[1] += 1
        if len(self._buffer) >= BATCH_SIZE:
            self._wake.set()

    def unflushed(self, key_id: int) -> tuple[int, int]:
        pending = self._unflushed.get(key_id)
        return (pending[0], pending[1]) if pending else (0, 0)

    def pending(self) -> list[UsageRecord]:
        """Records accepted but not yet written (reports add them so they are never behind)."""
        return list(self._buffer)

    async def start(self) -> None:
        await self._replay_spill()
        self._task = asyncio.create_task(self._run(), name="usage-recorder")
        atexit.register(self._spill_at_exit)  # a process that exits without close() still keeps its records

    async def _run(self) -> None:
        backoff = self._flush_seconds
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            backoff = self._flush_seconds if await self.flush() else min(backoff * 2, 5.0)

    async def flush(self) -> bool:
        """Write what is queued; True on success (or nothing to do)."""
        if not self._buffer:
            return True
        batch, self._buffer = self._buffer, []
        try:
            await self._run_db(write_batch, self._engine, batch)
        except Exception:
            log.exception("writing %d usage records failed; will retry", len(batch))
            self._buffer[:0] = batch
            return False
        for record in batch:
            pending = self._unflushed[record.key_id]
            pending[0] -= record.cost_nano
            pending[1] -= 1
            if pending[1] == 0:
                del self._unflushed[record.key_id]
        return True

    async def close(self, attempts: int = 5) -> None:
        """Stop the writer and flush everything; spill to disk what the database will not take."""
        self._closing = True
        self._wake.set()
        try:
            if self._task is not None:
                await self._task
            for attempt in range(attempts):
                if await self.flush():
                    return
                await asyncio.sleep(0.2 * (attempt + 1))
        finally:
            if self._buffer:  # the database would not take them (or the shutdown was cut short)
                self._spill("database unavailable")
            self._closed = True
            atexit.unregister(self._spill_at_exit)

    def _spill_at_exit(self) -> None:
        if self._buffer:
            self._spill("the process exited before the usage queue was written")

    def _spill(self, reason: str) -> None:
        self._spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self._spill_path.open("ab") as spill:
            for record in self._buffer:
                spill.write(orjson.dumps(asdict(record)) + b"\n")
        log.error("%s: spilled %d usage records to %s", reason, len(self._buffer), self._spill_path)
        self._buffer = []

    async def _replay_spill(self) -> None:
        if not self._spill_path.exists():
            return
        records = [UsageRecord(**orjson.loads(line)) for line in self._spill_path.read_bytes().splitlines() if line]
        await self._run_db(write_batch, self._engine, records)
        self._spill_path.unlink()
        log.warning("replayed %d spilled usage records from %s", len(records), self._spill_path)
