"""Model name matching: exact names and glob patterns such as `gpt-4-gizmo-*`."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable


def is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


class ModelPatterns:
    """A set of model names and globs; exact names are a dict hit, globs are tried only on a miss."""

    __slots__ = ("exact", "globs")

    def __init__(self, names: Iterable[str]) -> None:
        names = list(names)
        self.exact = frozenset(n for n in names if not is_pattern(n))
        self.globs = tuple(n for n in names if is_pattern(n))

    def matches(self, model: str) -> bool:
        return model in self.exact or any(fnmatch.fnmatchcase(model, g) for g in self.globs)
