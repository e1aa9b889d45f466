"""A value of the wrong JSON type in any field the OpenAI surface reads is a 400 naming it, never an exception
that surfaces as a 500 (issue 9: `"role": {}` was one: `{} in a_frozenset` raises TypeError)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from llmrelay.relay.errors import RelayError
from llmrelay.surfaces.openai.audio import parse_speech
from llmrelay.surfaces.openai.chat import parse_chat_job
from llmrelay.surfaces.openai.completions import parse_completion
from llmrelay.surfaces.openai.embeddings import parse_embeddings
from llmrelay.surfaces.openai.fields import one_of
from llmrelay.surfaces.openai.images import parse_generation
from llmrelay.surfaces.openai.moderations import parse_moderation

# Every JSON type, and the values of each that trip code written for another (bools are ints to Python).
HOSTILE: list[Any] = [
    None,
    True,
    0,
    -1,
    10.0,
    10.5,
    1e300,
    18446744073709551615,
    "",
    "x",
    [],
    [None],
    [True],
    [[False]],
    [{}],
    {},
    {"a": {}},
]

USER = [{"role": "user", "content": "x"}]
BODIES: dict[str, tuple[Callable[[bytes, str | None], Any], dict[str, Any]]] = {
    "chat": (
        parse_chat_job,
        {"model": "gpt-4o", "messages": USER, "max_tokens": 5, "n": 1, "stream": True, "stream_options": {}},
    ),
    "completions": (parse_completion, {"model": "m", "prompt": "x", "max_tokens": 5, "n": 1, "best_of": 1}),
    "embeddings": (parse_embeddings, {"model": "m", "input": "x", "dimensions": 4, "encoding_format": "float"}),
    "images": (parse_generation, {"model": "dall-e-3", "prompt": "x", "n": 1, "size": "1024x1024", "quality": "hd"}),
    "speech": (parse_speech, {"model": "tts-1", "input": "x", "voice": "alloy", "response_format": "mp3", "speed": 1}),
    "moderations": (parse_moderation, {"model": "m", "input": "x"}),
}
CASES = [(name, field) for name, (_, body) in BODIES.items() for field in body]
CASES += [("chat", "messages.0.role"), ("chat", "messages.0"), ("chat", "messages.0.content")]


def with_value(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    body = orjson.loads(orjson.dumps(body))
    *path, last = field.split(".")
    node: Any = body
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


@pytest.mark.parametrize(("endpoint", "field"), CASES)
def test_any_type_in_any_field_is_accepted_or_a_400(endpoint: str, field: str) -> None:
    parse, body = BODIES[endpoint]
    for value in HOSTILE:
        raw = orjson.dumps(with_value(body, field, value))
        try:
            job = parse(raw, "application/json")
        except RelayError as error:
            assert error.status == 400, (field, value)
            continue
        budget = getattr(job, "budget", None)
        if budget is not None:
            budget()  # what the relay computes next from the parsed fields


@pytest.mark.parametrize(
    ("parse", "raw", "param"),
    [
        (parse_chat_job, b'{"model": "m", "messages": [{"role": {}, "content": null}]}', "messages[0].role"),
        (parse_completion, b'{"model": "m", "prompt": [[false]]}', "prompt"),
        (parse_completion, b'{"model": "m", "prompt": [true, 1]}', "prompt"),
        (parse_embeddings, b'{"model": "m", "input": [[1, true]]}', "input"),
        (parse_generation, b'{"model": "dall-e-2", "prompt": "x", "size": {}}', "size"),
        (parse_generation, b'{"model": "dall-e-2", "prompt": "x", "size": ["256x256"]}', "size"),
    ],
)
def test_values_that_gave_500_or_were_taken_for_another_type(parse, raw: bytes, param: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RelayError) as raised:
        parse(raw, "application/json")
    assert raised.value.status == 400 and raised.value.param == param


def test_one_of_refuses_an_unhashable_value_against_a_set() -> None:
    with pytest.raises(RelayError) as raised:
        one_of({"voice": {"a": 1}}, "voice", frozenset({"alloy"}))
    assert raised.value.param == "voice"
