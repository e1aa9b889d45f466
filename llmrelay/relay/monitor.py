"""Keeps the database's view of channel health and the gateway's in step, in the background.

Every poll: apply the operator's enable/disable commands newer than the last seen, and write the snapshot
of each channel whose state changed (its counters and latency at most every SNAPSHOT_SECONDS). With
`routing.probe_interval` set, channels the gateway disabled are checked that often and enabled again once
their upstream accepts the gateway's credentials.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine

from llmrelay.providers.base import Channel
from llmrelay.relay.health import DisabledBy
from llmrelay.relay.probe import probe_channel
from llmrelay.store.channels import Command, command_revision, commands_since, save_snapshots, stored_states

log = logging.getLogger("llmrelay.channels")
SNAPSHOT_SECONDS = (
    10.0  # how stale `channels list` may show counters and latency of a channel that changed nothing else
)

RunDb = Callable[..., Awaitable[Any]]


class ChannelMonitor:
    def __init__(self, channels: tuple[Channel, ...], engine: Engine, run_db: RunDb) -> None:
        self.channels = {channel.config.name: channel for channel in channels}
        self._engine = engine
        self._run_db = run_db
        self._revision = 0
        self._written: dict[str, tuple[int, int]] = {}  # name -> (health version, successes) last written
        self._written_at = 0.0

    async def load(self) -> None:
        """Take up what the database says: channels left disabled (by an operator or an earlier run) stay so."""
        self._revision = await self._run_db(command_revision, self._engine)
        stored = await self._run_db(stored_states, self._engine)
        for name, state in stored.items():
            channel = self.channels.get(name)
            if channel is not None and state.state == "disabled":
                by = DisabledBy.OPERATOR if state.disabled_by == DisabledBy.OPERATOR else DisabledBy.GATEWAY
                channel.health.disable(state.disabled_reason or "disabled", by)
        await self.sync()

    async def sync(self) -> None:
        for command in await self._run_db(commands_since, self._engine, self._revision):
            self.apply(command)
            self._revision = max(self._revision, command.revision)
        now = time.monotonic()
        refresh = now - self._written_at >= SNAPSHOT_SECONDS
        changed = []
        for name, channel in self.channels.items():
            health = channel.health
            mark = (health.version, health.successes)
            last = self._written.get(name)
            if last is None or mark[0] != last[0] or (refresh and mark != last):
                changed.append(channel)
                self._written[name] = mark
        if refresh:
            self._written_at = now
        if changed:
            await self._run_db(save_snapshots, self._engine, [channel.health.view() for channel in changed])

    def apply(self, command: Command) -> None:
        channel = self.channels.get(command.name)
        if channel is None:
            return
        if command.status == "enabled":
            channel.health.enable()
            log.info("channel %s enabled by an operator", command.name)
        else:
            channel.health.disable(command.reason or "disabled by an operator", DisabledBy.OPERATOR)
            log.info("channel %s disabled by an operator", command.name)

    async def probe_disabled(self) -> None:
        """Check each channel the gateway disabled; enable the ones whose upstream accepts the key again."""
        for channel in self.channels.values():
            if channel.health.disabled_by is not DisabledBy.GATEWAY:
                continue
            result = await probe_channel(channel)
            if result.ok and channel.health.disabled_by is DisabledBy.GATEWAY:  # not re-disabled meanwhile
                channel.health.enable()
                log.info(
                    "channel %s passed its health probe (%d ms) and is enabled again", result.channel, result.latency_ms
                )
            else:
                log.info("channel %s is still failing its health probe: %s", result.channel, result.detail)

    async def probe_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.probe_disabled()
                await self.sync()
            except Exception:
                log.exception("probing disabled channels failed")
