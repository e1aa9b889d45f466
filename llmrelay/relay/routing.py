"""Which channel serves a model, and under which upstream model name.

Every channel that lists a model (by name or glob) may serve it. Channels are tried by tier, highest
`priority` first; within a tier one is chosen at random by `weight`. A channel is passed over while it is
disabled, resting for the model after failures (relay/health.py), at its `max_parallel`, or already tried by
this request. All of it is in memory: picking a channel awaits nothing.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from llmrelay.providers.base import Channel
from llmrelay.relay.errors import RelayError
from llmrelay.relay.patterns import ModelPatterns, is_pattern


@dataclass(frozen=True, slots=True)
class Route:
    channel: Channel
    upstream_model: str


@dataclass(frozen=True, slots=True)
class Candidates:
    """The routes of one model, grouped in tiers (highest priority first), with each tier's weights."""

    tiers: tuple[tuple[tuple[Route, ...], tuple[int, ...]], ...]
    first: Route  # the preferred route when nothing is wrong (listings, prices)
    single: bool  # one route only: the common case, picked without a draw


class Router:
    """Resolves a requested model to its candidate routes: exact names and glob patterns, in channel order."""

    def __init__(self, channels: Iterable[Channel], rng: random.Random | None = None) -> None:
        self.channels = tuple(channels)
        self._exact: dict[str, list[Channel]] = {}
        self._patterns: list[tuple[ModelPatterns, Channel]] = []
        for channel in self.channels:
            names = [*channel.config.models, *channel.config.model_map]
            for name in dict.fromkeys(n for n in names if not is_pattern(n)):
                self._exact.setdefault(name, []).append(channel)
            globs = [n for n in names if is_pattern(n)]
            if globs:
                self._patterns.append((ModelPatterns(globs), channel))
        self._cache: dict[str, Candidates | None] = {}
        self._random = (rng or random.Random()).random

    def candidates(self, model: str) -> Candidates | None:
        try:
            return self._cache[model]
        except KeyError:
            pass
        serving = list(self._exact.get(model, ()))
        serving += [c for patterns, c in self._patterns if c not in serving and patterns.matches(model)]
        found = None
        if serving:
            # Config order within a tier; sorted() is stable.
            routes = [Route(c, c.config.model_map.get(model, model)) for c in serving]
            routes.sort(key=lambda route: -route.channel.config.priority)
            tiers: dict[int, list[Route]] = {}
            for route in routes:
                tiers.setdefault(route.channel.config.priority, []).append(route)
            found = Candidates(
                tuple((tuple(tier), tuple(r.channel.config.weight for r in tier)) for tier in tiers.values()),
                routes[0],
                len(routes) == 1,
            )
        if len(self._cache) < 10_000:  # bounded: model names come from clients
            self._cache[model] = found
        return found

    def choose(self, model: str, candidates: Candidates, tried: Collection[Channel] = ()) -> Route:
        """A route for the next attempt, or the 503 that says why there is none (with Retry-After)."""
        if candidates.single and not tried:
            route = candidates.first
            health = route.channel.health
            if not health.disabled and not health.resting and not _full(route.channel):
                return route
        now = time.monotonic()
        soonest_rest = math.inf
        busy = False
        for routes, weights in candidates.tiers:
            open_routes: list[Route] = []
            open_weights: list[int] = []
            for route, weight in zip(routes, weights, strict=True):
                channel = route.channel
                health = channel.health
                if health.disabled or channel in tried:
                    continue
                if health.resting:
                    left = health.rest_left(model, now)
                    if left > 0:
                        soonest_rest = min(soonest_rest, left)
                        continue
                if _full(channel):
                    busy = True
                    continue
                open_routes.append(route)
                open_weights.append(weight)
            if open_routes:
                return open_routes[0] if len(open_routes) == 1 else self._draw(open_routes, open_weights)
        raise _unavailable(model, soonest_rest, busy)

    def _draw(self, routes: list[Route], weights: list[int]) -> Route:
        point = self._random() * sum(weights)
        for route, weight in zip(routes, weights, strict=True):
            point -= weight
            if point < 0:
                return route
        return routes[-1]

    def listed_models(self) -> list[tuple[str, Channel]]:
        """Concrete model names (not patterns) with the first channel serving each, in config order."""
        seen: dict[str, Channel] = {}
        for channel in self.channels:
            for name in [*channel.config.models, *channel.config.model_map]:
                if not is_pattern(name):
                    seen.setdefault(name, channel)
        return list(seen.items())


def _full(channel: Channel) -> bool:
    health = channel.health
    return health.max_parallel is not None and health.in_flight >= health.max_parallel


def _unavailable(model: str, soonest_rest: float, busy: bool) -> RelayError:
    """Why no channel can take the request now, as a 503 the client's SDK retries after Retry-After."""
    if busy:
        message, code, wait = f"Every channel serving `{model}` is at its concurrency limit.", "channels_busy", 1.0
    elif soonest_rest < math.inf:
        message = f"Every channel serving `{model}` is resting after upstream failures or rate limits."
        code, wait = "channels_cooling_down", soonest_rest
    else:
        message, code, wait = f"Every channel serving `{model}` is disabled.", "channels_unavailable", None
    headers = None
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        message += f" Retry in {seconds} s."
        headers = [(b"retry-after", str(seconds).encode())]
    return RelayError(503, message, "server_error", code, headers=headers)
