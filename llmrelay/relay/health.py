"""What the gateway knows of each channel's health: rests (cooldowns) per model, disabling, load, last error.

All of it lives in memory and is read on every request without awaiting anything. A channel rests for a
model after an upstream 429 (as long as its Retry-After asks, within bounds) or after repeated failures
(a growing time); a channel whose upstream refuses the gateway's credentials (401, 403, out of credit) is
disabled until an operator or the health probe enables it again. The snapshot of this state is written to
the database by the gateway (store/channels.py), off the request path, for `llmrelay channels list`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from llmrelay.config import RoutingConfig


class Failure(StrEnum):
    """How an upstream attempt failed, as far as routing is concerned."""

    RATE_LIMITED = "rate_limited"  # 429: rest the channel for the model, try another
    FAILED = "failed"  # 5xx, 408, timeouts, connection errors, unreadable replies: try another
    CREDENTIALS = "credentials"  # the upstream refused the gateway's key or account: disable the channel


class DisabledBy(StrEnum):
    OPERATOR = "operator"  # only an operator enables it again
    GATEWAY = "gateway"  # the health probe may enable it again once the upstream answers


@dataclass(slots=True)
class ModelRest:
    """A channel's recent record for one model: failures in a row, rests in a row, and the current rest."""

    failures: int = 0
    rests: int = 0
    until: float = 0.0  # time.monotonic() at which the current rest ends


@dataclass(frozen=True, slots=True)
class HealthView:
    """A channel's state as operators see it (wall-clock times, Unix seconds)."""

    name: str
    state: str  # "ok", "cooling_down", "disabled"
    disabled_reason: str | None
    disabled_by: str | None
    cooling_until: int | None
    cooling_models: tuple[str, ...]
    in_flight: int
    last_error: str | None
    last_error_at: int | None
    latency_ms: int | None
    successes: int
    failures: int

    @classmethod
    def unseen(cls, name: str) -> HealthView:
        """A channel no gateway has reported on yet."""
        return cls(name, "ok", None, None, None, (), 0, None, None, None, 0, 0)


class ChannelHealth:
    """One channel's health. Updated by the relay after every attempt; read by the router on every pick."""

    __slots__ = (
        "_rests",
        "disabled_by",
        "disabled_reason",
        "failures",
        "in_flight",
        "last_error",
        "last_error_at",
        "latency_ms",
        "max_parallel",
        "name",
        "resting",
        "settings",
        "successes",
        "version",
    )

    def __init__(self, name: str, settings: RoutingConfig, max_parallel: int | None = None) -> None:
        self.name = name
        self.settings = settings
        self.max_parallel = max_parallel
        self.in_flight = 0
        self.disabled_reason: str | None = None
        self.disabled_by: DisabledBy | None = None
        self.resting = False  # some model is (or was recently) resting: the router only then looks closer
        self._rests: dict[str, ModelRest] = {}
        self.last_error: str | None = None
        self.last_error_at: int | None = None
        self.latency_ms: int | None = None
        self.successes = 0
        self.failures = 0
        self.version = 0  # bumped on every change an operator would see, so snapshots are written only then

    @property
    def disabled(self) -> bool:
        return self.disabled_reason is not None

    def rest_left(self, model: str, now: float) -> float:
        """Seconds the channel still rests for `model` (0: it may be picked)."""
        rest = self._rests.get(model)
        return rest.until - now if rest is not None and rest.until > now else 0.0

    def succeeded(self, model: str, latency_ms: int) -> None:
        """An attempt reached its first byte: the model's failure record is cleared."""
        self.successes += 1
        self.latency_ms = latency_ms
        if self.resting and self._rests.pop(model, None) is not None:
            self.resting = bool(self._rests)
            self.version += 1

    def failed(self, model: str, failure: Failure, message: str, retry_after: float | None = None) -> float:
        """Record a failed attempt; returns the seconds the channel now rests for the model (0: none)."""
        self.failures += 1
        self.last_error = message
        self.last_error_at = int(time.time())
        self.version += 1
        if failure is Failure.CREDENTIALS:
            self.disable(message, DisabledBy.GATEWAY)
            return 0.0
        rest = self._rests.setdefault(model, ModelRest())
        self.resting = True
        rest.failures += 1
        settings = self.settings
        if failure is Failure.FAILED and rest.failures < settings.failures_to_cool_down:
            return 0.0
        growing = min(settings.cooldown * 2**rest.rests, settings.max_cooldown)
        seconds = growing if retry_after is None else min(max(retry_after, 0.001), settings.max_cooldown)
        rest.rests += 1
        rest.failures = 0
        rest.until = time.monotonic() + seconds
        return seconds

    def disable(self, reason: str, by: DisabledBy) -> None:
        self.disabled_reason = reason
        self.disabled_by = by
        self.version += 1

    def enable(self) -> None:
        """Back in service, with a clean record (an operator or the probe has seen it work)."""
        self.disabled_reason = None
        self.disabled_by = None
        self._rests.clear()
        self.resting = False
        self.version += 1

    def view(self) -> HealthView:
        now = time.monotonic()
        resting = {model: rest.until - now for model, rest in self._rests.items() if rest.until > now}
        cooling_until = int(time.time() + max(resting.values())) + 1 if resting else None
        state = "disabled" if self.disabled else "cooling_down" if resting else "ok"
        return HealthView(
            name=self.name,
            state=state,
            disabled_reason=self.disabled_reason,
            disabled_by=self.disabled_by.value if self.disabled_by else None,
            cooling_until=cooling_until,
            cooling_models=tuple(sorted(resting)),
            in_flight=self.in_flight,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            latency_ms=self.latency_ms,
            successes=self.successes,
            failures=self.failures,
        )
