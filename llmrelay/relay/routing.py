"""Which channel serves a model, and under which upstream model name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from llmrelay.providers.base import Channel
from llmrelay.relay.patterns import ModelPatterns, is_pattern


@dataclass(frozen=True, slots=True)
class Route:
    channel: Channel
    upstream_model: str


class Router:
    """Resolves a requested model to a route: exact names first, then glob patterns, in channel order."""

    def __init__(self, channels: Iterable[Channel]) -> None:
        self.channels = tuple(channels)
        self._exact: dict[str, Channel] = {}
        self._patterns: list[tuple[ModelPatterns, Channel]] = []
        for channel in self.channels:
            names = [*channel.config.models, *channel.config.model_map]
            for name in names:
                if not is_pattern(name):
                    self._exact.setdefault(name, channel)
            globs = [n for n in names if is_pattern(n)]
            if globs:
                self._patterns.append((ModelPatterns(globs), channel))
        self._cache: dict[str, Route | None] = {}

    def resolve(self, model: str) -> Route | None:
        try:
            return self._cache[model]
        except KeyError:
            pass
        channel = self._exact.get(model)
        if channel is None:
            channel = next((c for patterns, c in self._patterns if patterns.matches(model)), None)
        route = None
        if channel is not None:
            route = Route(channel, channel.config.model_map.get(model, model))
        if len(self._cache) < 10_000:  # bounded: model names come from clients
            self._cache[model] = route
        return route

    def listed_models(self) -> list[tuple[str, Channel]]:
        """Concrete model names (not patterns) with the first channel serving each, in config order."""
        seen: dict[str, Channel] = {}
        for channel in self.channels:
            for name in [*channel.config.models, *channel.config.model_map]:
                if not is_pattern(name):
                    seen.setdefault(name, channel)
        return list(seen.items())
