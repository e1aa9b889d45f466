"""Hostile mutations of a rich request body, for the codecs' fuzz tests: every field, nested ones too,
replaced by each hostile value (or removed), must give a clear 400 and never an exception."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

ABSENT = object()  # a key removed from a body (or left out of a translation)


def deep(levels: int) -> Any:
    """A value nested `levels` lists deep."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


HOSTILE_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], {}, [None], {"type": None}, [[]], 2**70, deep(300)]


def paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path (keys and indexes) of every value inside `value`."""
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*path, index))


def mutated(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of `body` with the value at `path` replaced by `value` (removed for ABSENT)."""
    changed = copy.deepcopy(body)
    target = changed
    for step in path[:-1]:
        target = target[step]
    if value is ABSENT:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed
