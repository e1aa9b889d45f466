"""The route table: exact paths, templates with `{name}` and `{name:path}`, and methods per template."""

from __future__ import annotations

import pytest

from llmrelay.surfaces.paths import PathTable, compile_template


async def get_model(gw, http) -> None:  # type: ignore[no-untyped-def]
    """A stand-in handler; the table only hands handlers back."""


async def generate(gw, http) -> None:  # type: ignore[no-untyped-def]
    """Another stand-in."""


TABLE = PathTable(
    {
        "/v1/models": {"GET": get_model},
        "/v1/models/{model}:{action}": {"POST": generate},
        "/v1/models/{model:path}": {"GET": get_model},
    }
)


@pytest.mark.parametrize(
    ("method", "path", "handler", "params"),
    [
        ("GET", "/v1/models", get_model, {}),
        ("GET", "/v1/models/gpt-4o", get_model, {"model": "gpt-4o"}),
        ("GET", "/v1/models/org/llama3:8b", get_model, {"model": "org/llama3:8b"}),
        (
            "POST",
            "/v1/models/gemini-2.0-flash:generateContent",
            generate,
            {"model": "gemini-2.0-flash", "action": "generateContent"},
        ),
        # A GET on a generate path is the model id "gemini:generateContent": the later template serves it.
        ("GET", "/v1/models/gemini:generateContent", get_model, {"model": "gemini:generateContent"}),
    ],
)
def test_match(method: str, path: str, handler: object, params: dict[str, str]) -> None:
    assert TABLE.match(path, method) == (handler, params)


def test_known_path_with_another_method_has_no_handler() -> None:
    assert TABLE.match("/v1/models", "POST") == (None, {})
    assert TABLE.match("/v1/models/x/y", "DELETE") == (None, {"model": "x/y"})


@pytest.mark.parametrize("path", ["/v2/models", "/v1/models/", "/v1/modelsx"])
def test_unknown_paths(path: str) -> None:
    assert TABLE.match(path, "GET") is None


def test_a_name_stops_at_slash_and_colon() -> None:
    pattern = compile_template("/a/{x}/b")
    assert pattern.match("/a/one/b") and not pattern.match("/a/o/ne/b") and not pattern.match("/a/o:n/b")
