"""The gateway's route table: exact paths, and templated ones such as `/v1/models/{model}`.

Exact paths are a dict lookup (the hot path); templates are compiled to regular expressions once and tried
in order only when no exact path matches. A `{name}` segment matches up to the next `/` or `:`, so Google's
`/v1beta/models/{model}:{action}` style works too; `{name:path}` matches the rest of the path, slashes and
colons included (model ids such as `org/model` or `llama3:8b`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from llmrelay.surfaces.http import HttpRequest

if TYPE_CHECKING:
    from llmrelay.app import Gateway

Handler = Callable[["Gateway", HttpRequest], Awaitable[None]]
Methods = Mapping[str, Handler]
_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


def compile_template(template: str) -> re.Pattern[str]:
    pattern, last = "", 0
    for match in _PARAMETER.finditer(template):
        matches = ".+" if match.group(2) else "[^/:]+"
        pattern += re.escape(template[last : match.start()]) + f"(?P<{match.group(1)}>{matches})"
        last = match.end()
    return re.compile(pattern + re.escape(template[last:]) + r"\Z")


class PathTable:
    def __init__(self, routes: Mapping[str, Methods]) -> None:
        self._exact = {path: methods for path, methods in routes.items() if "{" not in path}
        self._templates = [(compile_template(path), methods) for path, methods in routes.items() if "{" in path]

    def match(self, path: str, method: str) -> tuple[Handler | None, dict[str, str]] | None:
        """The handler for `method` at `path` (None: the path exists, the method does not) and the path's
        parameters; None when no route has this path. Templates are tried in order, and one
        whose path matches but not its method lets a later template serve the method (`GET /v1/models/{id}`
        beside `POST /v1/models/{model}:generateContent`)."""
        methods = self._exact.get(path)
        if methods is not None:
            return methods.get(method), {}
        first: tuple[Handler | None, dict[str, str]] | None = None
        for pattern, methods in self._templates:
            found = pattern.match(path)
            if found is None:
                continue
            handler = methods.get(method)
            if handler is not None:
                return handler, found.groupdict()
            first = first or (None, found.groupdict())
        return first
