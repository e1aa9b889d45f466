"""Whole-number floats are integers (issue 9).

JSON has one number type, and JSON Schema (2020-12, the dialect of OpenAI's OpenAPI document) counts 10.0 as
an integer. The gateway refused `max_tokens: 10.0`, `n: 1.0` and `dimensions: 256.0` with a 400; it now reads
them as the integers they are, and where it re-encodes a body the upstream gets them as integers (the fake
upstreams, like OpenAI's own API, refuse a decimal point in an integer field).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai import OpenAI

from llmrelay.formats.checks import as_int, int_value, is_int
from llmrelay.relay.errors import RelayError
from llmrelay.surfaces.openai.chat import parse_chat_request
from llmrelay.surfaces.openai.completions import parse_completion
from llmrelay.surfaces.openai.embeddings import parse_embeddings
from llmrelay.surfaces.openai.fields import optional_positive_int, whole_numbers_as_ints
from llmrelay.surfaces.openai.images import parse_generation
from tests.conftest import Gateway, call
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI

# ------------------------------------------------------------------------------------------------ checks.py


@pytest.mark.parametrize(
    ("value", "expected"), [(10, 10), (10.0, 10), (-3.0, -3), (0.0, 0), (1e3, 1000), (2.0**53, 2**53)]
)
def test_int_value_reads_whole_numbers(value: Any, expected: int) -> None:
    number = int_value(value)
    assert number == expected and type(number) is int


@pytest.mark.parametrize(
    "value", [10.5, True, False, None, "10", [10], float("inf"), float("nan"), 2.0**60, -(2.0**60)]
)
def test_int_value_refuses_the_rest(value: Any) -> None:
    assert int_value(value) is None


def test_as_int_returns_an_int_and_names_the_field() -> None:
    assert type(as_int(256.0, "dimensions")) is int
    assert as_int(7.0, "n", positive=True) == 7
    with pytest.raises(RelayError) as raised:
        as_int(0.0, "n", positive=True)
    assert raised.value.param == "n"
    with pytest.raises(RelayError):
        as_int(2.5, "top_k")


def test_is_int_stays_a_type_test() -> None:
    # Callers of is_int keep the value they tested, so it must stay an int: is_int(10.0) is False. Reading an
    # integer field goes through as_int / int_value, which convert.
    assert is_int(3) and not is_int(3.0) and not is_int(True)


# ------------------------------------------------------------------------------------------------ fields.py


def test_optional_positive_int_accepts_and_rewrites_a_whole_float() -> None:
    body: dict[str, Any] = {"n": 2.0, "max_tokens": 10}
    assert optional_positive_int(body, "n", 10) == 2
    assert type(body["n"]) is int
    with pytest.raises(RelayError) as raised:
        optional_positive_int({"n": 2.5}, "n")
    assert raised.value.param == "n"
    with pytest.raises(RelayError):
        optional_positive_int({"n": 11.0}, "n", 10)


def test_whole_numbers_as_ints_re_encodes_only_when_needed() -> None:
    raw = b'{"model": "m",  "max_tokens": 10}'
    body = orjson.loads(raw)
    assert whole_numbers_as_ints(raw, body, ("max_tokens", "n")) is raw  # untouched: the client's bytes
    raw = b'{"model": "m", "max_tokens": 10.0, "n": 1.0, "temperature": 1.0, "seed": 1e300}'
    body = orjson.loads(raw)
    out = whole_numbers_as_ints(raw, body, ("max_tokens", "n", "seed"))
    sent = orjson.loads(out)
    assert sent == body and type(sent["max_tokens"]) is int and type(sent["n"]) is int
    assert type(sent["temperature"]) is float  # only the integer fields
    assert type(sent["seed"]) is float  # not exact as an int: left for the upstream to judge


@pytest.mark.parametrize(
    ("parse", "raw", "fields"),
    [
        (
            lambda raw: parse_chat_request(raw).raw,
            b'{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":10.0,"n":1.0}',
            ("max_tokens", "n"),
        ),
        (
            lambda raw: parse_chat_request(raw).raw,
            b'{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":10.0}',
            ("max_completion_tokens",),
        ),
        (
            lambda raw: parse_completion(raw, None).raw,
            b'{"model":"m","prompt":"x","max_tokens":5.0,"best_of":2.0}',
            ("max_tokens", "best_of"),
        ),
        (lambda raw: parse_embeddings(raw, None).raw, b'{"model":"m","input":"x","dimensions":256.0}', ("dimensions",)),
        (lambda raw: parse_generation(raw, None).raw, b'{"model":"dall-e-2","prompt":"x","n":2.0}', ("n",)),
    ],
)
def test_every_openai_surface_forwards_integers(parse, raw: bytes, fields: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    sent = orjson.loads(parse(raw))
    for field in fields:
        assert type(sent[field]) is int, field


# -------------------------------------------------------------------------------------- through the gateway


@pytest.fixture(scope="module")
def openai_client(gateway: Gateway) -> OpenAI:
    return OpenAI(api_key=gateway.create_key("bad-input-ints", quota_usd="5"), base_url=gateway.base_url, max_retries=0)


def test_chat_with_float_integers_to_an_openai_model(openai_client: OpenAI, upstream: FakeOpenAI) -> None:
    reply = openai_client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "floats ints-chat-1"}],
        max_tokens=10.0,
        n=1.0,  # type: ignore[arg-type]
    )
    assert reply.choices[0].message.content == "You said: floats ints-chat-1"
    sent = upstream.requests_with("ints-chat-1")[-1]
    assert type(sent.json["max_tokens"]) is int and type(sent.json["n"]) is int
    assert b"10.0" not in sent.raw


def test_chat_with_float_integers_to_claude_and_gemini(
    openai_client: OpenAI, claude_upstream: FakeAnthropic, gemini_upstream: FakeGemini
) -> None:
    for model, marker in (("claude-sonnet-4-5", "ints-chat-2"), ("gemini-2.0-flash", "ints-chat-3")):
        reply = openai_client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": marker}],
            max_tokens=10.0,
            n=1.0,  # type: ignore[arg-type]
        )
        assert reply.choices[0].message.content == f"You said: {marker}"
    assert type(claude_upstream.requests_with("ints-chat-2")[-1].json["max_tokens"]) is int
    config = gemini_upstream.requests_with("ints-chat-3")[-1].json["generationConfig"]
    assert type(config["maxOutputTokens"]) is int


def test_completions_embeddings_and_images_with_float_integers(openai_client: OpenAI, upstream: FakeOpenAI) -> None:
    done = openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="ints-cmp-1", max_tokens=5.0)  # type: ignore[arg-type]
    assert done.choices[0].text
    assert type(upstream.requests_with("ints-cmp-1")[-1].json["max_tokens"]) is int
    vectors = openai_client.embeddings.create(model="text-embedding-3-small", input="ints-emb-1", dimensions=4.0)  # type: ignore[arg-type]
    assert len(vectors.data[0].embedding) == 4
    images = openai_client.images.generate(model="dall-e-2", prompt="ints-img-1", n=2.0, size="256x256")  # type: ignore[arg-type]
    assert len(images.data or []) == 2


def test_gemini_generate_content_with_float_integers_to_gpt_4o(gateway: Gateway, upstream: FakeOpenAI) -> None:
    key = gateway.create_key("bad-input-ints-gemini", quota_usd="5")
    body = {
        "contents": [{"role": "user", "parts": [{"text": "ints-gem-1"}]}],
        "generationConfig": {"maxOutputTokens": 10.0, "candidateCount": 1.0},
    }
    reply = call("POST", f"{gateway.url}/v1beta/models/gpt-4o:generateContent", body, {"x-goog-api-key": key})
    assert reply.status == 200, reply.body
    sent = upstream.requests_with("ints-gem-1")[-1].json
    assert type(sent["max_tokens"]) is int and sent["max_tokens"] == 10


def test_anthropic_messages_with_a_float_max_tokens(gateway: Gateway) -> None:
    key = gateway.create_key("bad-input-ints-anthropic", quota_usd="5")
    body = {"model": "gpt-4o", "max_tokens": 10.0, "messages": [{"role": "user", "content": "ints-anth-1"}]}
    reply = call("POST", f"{gateway.url}/v1/messages", body, {"x-api-key": key})
    assert reply.status == 200, reply.body
