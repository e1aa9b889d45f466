"""Bad input that gave 500: JSON nested deeper than the encoder writes (issue 9).

orjson reads 1024 levels of nesting but writes only about 254, so a body nested between the two parsed, and
failed with a 500 the first time the gateway encoded it (the prompt's byte bound encodes `tools`; a
translation or a splice re-encodes the body). Every body is now refused up front, in parse_json_body, when it
nests more than MAX_JSON_DEPTH levels: a 400 in the client's format naming the field, nothing billed.
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
import openai
import orjson
import pytest
from anthropic import Anthropic
from openai import OpenAI

from llmrelay.relay.errors import RelayError
from llmrelay.surfaces.http import MAX_JSON_DEPTH, json_depth, parse_json_body
from tests.conftest import ADMIN_KEY, Gateway, call
from tests.test_billing import key_row

USER = [{"role": "user", "content": "deep"}]


def deep_schema(levels: int, object_type: str = "object") -> dict[str, Any]:
    """A JSON schema whose properties nest `levels` objects deep (2 JSON levels each)."""
    node: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        node = {"type": object_type, "properties": {"x": node}}
    return node


def deep_list(levels: int) -> list[Any]:
    node: list[Any] = []
    for _ in range(levels - 1):
        node = [node]
    return node


# ------------------------------------------------------------------------------------------ parse_json_body


def test_depth_is_counted_from_the_body() -> None:
    assert json_depth({}) == 1
    assert json_depth({"a": [1, {"b": []}]}) == 4
    assert json_depth("text") == 0
    assert json_depth(deep_list(300)) == 300


def test_a_body_at_the_limit_parses() -> None:
    raw = b'{"a":' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    assert json_depth(parse_json_body(raw)) == MAX_JSON_DEPTH


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH, 254, 255, 300, 1023])
def test_a_body_past_the_limit_is_a_400_naming_the_field(levels: int) -> None:
    # Written as bytes: orjson itself cannot encode past ~254 levels. The body object adds one level.
    raw = b'{"model": "m", "tools": ' + b"[" * levels + b"]" * levels + b"}"
    with pytest.raises(RelayError) as raised:
        parse_json_body(raw)
    assert raised.value.status == 400
    assert raised.value.param == "tools"
    assert "'tools'" in raised.value.message and str(MAX_JSON_DEPTH) in raised.value.message


def test_a_deep_top_level_array_is_a_400_without_a_field() -> None:
    with pytest.raises(RelayError) as raised:
        parse_json_body(orjson.dumps(deep_list(MAX_JSON_DEPTH + 1)))
    assert raised.value.status == 400 and raised.value.param is None


def test_many_shallow_brackets_and_brackets_in_strings_are_fine() -> None:
    wide = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]} for _ in range(500)]}
    assert parse_json_body(orjson.dumps(wide)) == wide
    text = {"content": "[{" * 5000}
    assert parse_json_body(orjson.dumps(text)) == text
    tokens = {"input": [[1, 2, 3]] * 5000}
    assert parse_json_body(orjson.dumps(tokens)) == tokens


def test_the_check_costs_little_on_a_typical_body() -> None:
    raw = orjson.dumps({"model": "gpt-4o", "messages": USER * 20, "tools": [{"type": "function"}] * 5})
    began = time.perf_counter()
    for _ in range(2000):
        parse_json_body(raw)
    assert (time.perf_counter() - began) / 2000 < 0.001  # generous: a CI box under load; ~10 µs here


# ------------------------------------------------------------------------------- through the three surfaces


@pytest.fixture(scope="module")
def deep_key(gateway: Gateway) -> str:
    return gateway.create_key("bad-input-deep", quota_usd="5")


def assert_nothing_billed(gateway: Gateway) -> None:
    row = key_row(gateway, "bad-input-deep")
    assert row["used_nano"] == 0 and row["records"] == 0


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5", "gemini-2.0-flash"])
def test_openai_sdk_deep_tools_are_a_400(gateway: Gateway, deep_key: str, model: str) -> None:
    client = OpenAI(api_key=deep_key, base_url=gateway.base_url, max_retries=0)
    tool = {"type": "function", "function": {"name": "deep", "parameters": deep_schema(140)}}
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=USER, tools=[tool])  # type: ignore[list-item]
    assert raised.value.status_code == 400
    assert raised.value.body["param"] == "tools"  # type: ignore[index]
    assert_nothing_billed(gateway)


def test_openai_deep_field_in_a_spliced_stream_is_a_400(gateway: Gateway, deep_key: str) -> None:
    # stream_options present and include_usage off: the body is re-encoded to ask the upstream for usage.
    body = {"model": "gpt-4o", "messages": USER, "stream": True, "stream_options": {}, "metadata": deep_list(300)}
    reply = call("POST", f"{gateway.base_url}/chat/completions", body, {"Authorization": f"Bearer {deep_key}"})
    assert reply.status == 400, reply.body
    assert reply.json()["error"]["param"] == "metadata"
    assert_nothing_billed(gateway)


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gpt-4o"])
def test_anthropic_messages_deep_tools_are_a_400(gateway: Gateway, deep_key: str, model: str) -> None:
    claude = Anthropic(api_key=deep_key, base_url=gateway.url, max_retries=0)
    tool = {"name": "deep", "input_schema": deep_schema(140)}
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(model=model, max_tokens=10, messages=USER, tools=[tool])  # type: ignore[list-item]
    assert raised.value.body["type"] == "error"  # type: ignore[index]
    assert raised.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "'tools'" in raised.value.message
    assert_nothing_billed(gateway)


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gpt-4o", "gemini-2.0-flash"])
def test_gemini_generate_content_deep_schema_is_a_400(gateway: Gateway, deep_key: str, model: str) -> None:
    # 126 object levels: the schema alone encodes (252 levels), but wrapped in the upstream request it did not.
    body = {
        "contents": [{"role": "user", "parts": [{"text": "deep"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": deep_schema(126)},
    }
    reply = call("POST", f"{gateway.url}/v1beta/models/{model}:generateContent", body, {"x-goog-api-key": deep_key})
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert "'generationConfig'" in error["message"] and len(error["message"]) < 300
    assert_nothing_billed(gateway)


# Every route that reads a JSON body from a client reads it through parse_json_body: none may answer a deep
# body with anything but a 400 (in its own API's shape).
JSON_ROUTES = [
    ("/v1/chat/completions", "openai"),
    ("/v1/completions", "openai"),
    ("/v1/embeddings", "openai"),
    ("/v1/images/generations", "openai"),
    ("/v1/audio/speech", "openai"),
    ("/v1/moderations", "openai"),
    ("/v1/messages", "anthropic"),
    ("/v1/messages/count_tokens", "anthropic"),
    ("/v1beta/models/gpt-4o:generateContent", "gemini"),
    ("/v1beta/models/gpt-4o:streamGenerateContent", "gemini"),
    ("/v1beta/models/gpt-4o:countTokens", "gemini"),
    ("/admin/keys", "admin"),
]


@pytest.mark.parametrize(("path", "api"), JSON_ROUTES)
def test_every_json_route_refuses_a_deep_body(gateway: Gateway, deep_key: str, path: str, api: str) -> None:
    headers = {
        "openai": {"Authorization": f"Bearer {deep_key}"},
        "anthropic": {"x-api-key": deep_key},
        "gemini": {"x-goog-api-key": deep_key},
        "admin": {"Authorization": f"Bearer {ADMIN_KEY}"},
    }[api]
    raw = b'{"model": "gpt-4o", "extra": ' + b"[" * 300 + b"]" * 300 + b"}"
    reply = call("POST", f"{gateway.url}{path}", raw=raw, headers={**headers, "Content-Type": "application/json"})
    assert reply.status == 400, (path, reply.body)
    error = reply.json()["error"]
    message = error["message"]
    assert "'extra'" in message and "nested" in message
    if api in ("openai", "admin"):
        assert error["param"] == "extra"
    assert_nothing_billed(gateway)
