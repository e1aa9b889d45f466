"""Pure-function tests for the OpenAI adaptor, request parsing and error rendering (no network)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion

from llmrelay.config import ChannelConfig
from llmrelay.formats.base import upstream_error_message
from llmrelay.formats.openai import openai_error, usage_from_openai, usage_to_openai
from llmrelay.formats.splice import splice_json_body
from llmrelay.metering.pricing import Usage
from llmrelay.providers.base import Channel
from llmrelay.providers.openai import OpenAICompatibleProvider, output_cap_field
from llmrelay.relay.errors import (
    RelayError,
    bad_request,
    insufficient_quota,
    model_not_found,
    scrub_secrets,
    upstream_timeout,
    upstream_unreachable,
)
from llmrelay.relay.failures import relayed_error
from llmrelay.relay.request import ChatRequest
from llmrelay.surfaces.openai.chat import parse_chat_request
from llmrelay.surfaces.openai.completions import CompletionJob

PROVIDER = OpenAICompatibleProvider()
CHANNEL = ChannelConfig(
    name="up",
    type="openai",
    base_url="https://upstream.example/v1",
    api_key="sk-upstream-secret-0123456789",
    models=("gpt-4o", "gpt-4o-mini", "o1-mini"),
    headers={"OpenAI-Organization": "org-123", "X-Team": "blue"},
)
USER = [{"role": "user", "content": "hi"}]


def request_bytes(**fields: Any) -> bytes:
    return json.dumps({"model": "gpt-4o", "messages": USER, **fields}).encode()


# ------------------------------------------------------------------------------------------- splice body

# Odd whitespace, escaped unicode, a non-default key order, and numbers a re-encode would rewrite.
ODD_RAW = (
    b'  {\n\t"messages" :[ {"role":"user" , "content":"caf\\u00e9 \\ud83d\\ude00 \\"gpt-4o\\" \\/ "} ],\r\n'
    b'  "temperature": 0.70,  "model" :   "gpt-4o"  ,"top_p":1.0e0,\n  "tags":["x" ,"y"] }  '
)


def test_splice_replaces_only_the_model_bytes() -> None:
    body = json.loads(ODD_RAW)
    out = splice_json_body(ODD_RAW, body, "gpt-4o-2024-08-06", {})
    start = ODD_RAW.index(b'"model"')
    end = ODD_RAW.index(b'"gpt-4o"  ,') + len(b'"gpt-4o"')
    new_value = b'"gpt-4o-2024-08-06"'
    assert out[:start] == ODD_RAW[:start]
    assert out[len(out) - (len(ODD_RAW) - end) :] == ODD_RAW[end:]
    middle = out[start : len(out) - (len(ODD_RAW) - end)]
    assert middle.startswith(b'"model"') and middle.endswith(new_value)
    assert json.loads(b"{" + middle + b"}") == {"model": "gpt-4o-2024-08-06"}
    assert json.loads(out) == {**body, "model": "gpt-4o-2024-08-06"}


def test_splice_additions_go_after_the_first_brace() -> None:
    body = json.loads(ODD_RAW)
    additions = {"stream_options": {"include_usage": True}, "max_tokens": 42}
    out = splice_json_body(ODD_RAW, body, None, additions)
    brace = ODD_RAW.index(b"{")
    assert out[: brace + 1] == ODD_RAW[: brace + 1]
    assert out.endswith(ODD_RAW[brace + 1 :])
    assert json.loads(out) == {**body, **additions}
    inserted = out[brace + 1 : len(out) - len(ODD_RAW[brace + 1 :])]
    assert json.loads(b"{" + inserted.rstrip(b",") + b"}") == additions


def test_splice_model_and_additions_together() -> None:
    body = json.loads(ODD_RAW)
    out = splice_json_body(ODD_RAW, body, "my-upstream/gpt-4o", {"max_completion_tokens": 7})
    assert json.loads(out) == {**body, "model": "my-upstream/gpt-4o", "max_completion_tokens": 7}
    # The content string (which mentions "gpt-4o" in escaped quotes) is untouched byte for byte.
    content_bytes = b'"caf\\u00e9 \\ud83d\\ude00 \\"gpt-4o\\" \\/ "'
    assert content_bytes in out


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"metadata":{"model":"gpt-4o"}}',
        b'{"metadata":{"model" : "gpt-4o"},"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi","model":"gpt-4o"}]}',
    ],
)
def test_splice_falls_back_to_re_encoding_when_the_model_text_is_ambiguous(raw: bytes) -> None:
    body = json.loads(raw)
    out = splice_json_body(raw, body, "gpt-4o-mapped", {"stream_options": {"include_usage": True}})
    parsed = json.loads(out)
    assert parsed == {**body, "model": "gpt-4o-mapped", "stream_options": {"include_usage": True}}
    nested = parsed.get("metadata") or parsed["messages"][0]
    assert nested["model"] == "gpt-4o"  # only the top-level model is mapped


def test_splice_falls_back_when_the_client_escaped_the_model_value() -> None:
    raw = b'{"model":"gpt\\u002d4o","messages":[{"role":"user","content":"hi"}]}'
    body = json.loads(raw)
    assert body["model"] == "gpt-4o"
    out = splice_json_body(raw, body, "gpt-4o-mapped", {})
    assert json.loads(out)["model"] == "gpt-4o-mapped"


def test_splice_maps_the_top_level_model_even_when_its_key_is_escaped() -> None:
    # "\u006dodel" is the key "model". The only unescaped `"model":"gpt-4o"` is the one in metadata,
    # which must not be the one rewritten.
    raw = b'{"\\u006dodel":"gpt-4o","metadata":{"model":"gpt-4o"},"messages":[{"role":"user","content":"hi"}]}'
    body = json.loads(raw)
    parsed = json.loads(splice_json_body(raw, body, "gpt-4o-mapped", {}))
    assert parsed["model"] == "gpt-4o-mapped"
    assert parsed["metadata"] == {"model": "gpt-4o"}


def test_splice_without_changes_returns_the_same_bytes() -> None:
    body = json.loads(ODD_RAW)
    assert splice_json_body(ODD_RAW, body, None, {}) == ODD_RAW


# ------------------------------------------------------------------------------------------ chat_request


def build(raw: bytes, upstream_model: str = "gpt-4o", cap: int | None = None, channel: ChannelConfig = CHANNEL):
    request = parse_chat_request(raw)
    return request, PROVIDER.chat_request(channel, request, upstream_model, cap, 4096)


def test_plain_request_is_forwarded_byte_for_byte() -> None:
    raw = b'{"model": "gpt-4o",  "messages": [{"role": "user", "content": "hi"}], "temperature": 0.50}'
    _, upstream = build(raw)
    assert upstream.body == raw
    assert upstream.url == "https://upstream.example/v1/chat/completions"


def test_headers_carry_the_channel_key_and_extra_headers() -> None:
    _, upstream = build(request_bytes())
    assert upstream.headers["Authorization"] == "Bearer sk-upstream-secret-0123456789"
    assert upstream.headers["OpenAI-Organization"] == "org-123"
    assert upstream.headers["X-Team"] == "blue"
    assert upstream.headers["Content-Type"] == "application/json"


def test_channel_without_key_sends_no_authorization() -> None:
    local = ChannelConfig(name="ollama", type="openai", base_url="http://127.0.0.1:11434/v1", api_key="", models=("*",))
    _, upstream = build(request_bytes(), channel=local)
    assert "Authorization" not in upstream.headers
    assert upstream.url == "http://127.0.0.1:11434/v1/chat/completions"


def test_stream_without_include_usage_asks_the_upstream_for_usage() -> None:
    raw = b'{"model":"gpt-4o",  "stream":true, "messages":[{"role":"user","content":"caf\\u00e9"}]}'
    request, upstream = build(raw)
    assert not request.include_usage
    parsed = json.loads(upstream.body)
    assert parsed == {**json.loads(raw), "stream_options": {"include_usage": True}}
    assert upstream.body.endswith(raw[1:])  # the client's own bytes are kept


def test_stream_with_include_usage_is_untouched() -> None:
    raw = b'{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user"}]}'
    request, upstream = build(raw)
    assert request.include_usage
    assert upstream.body == raw


def test_existing_stream_options_are_respected_and_extended() -> None:
    raw = request_bytes(stream=True, stream_options={"include_usage": False, "include_obfuscation": False})
    _, upstream = build(raw)
    parsed = json.loads(upstream.body)
    assert parsed["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert parsed["messages"] == USER
    assert list(parsed).count("stream_options") == 1
    assert upstream.body.count(b'"stream_options"') == 1


@pytest.mark.parametrize("extra", [{}, {"stream": False}, {"stream": False, "stream_options": {"include_usage": True}}])
def test_non_stream_requests_get_no_stream_options(extra: dict[str, Any]) -> None:
    raw = request_bytes(**extra)
    _, upstream = build(raw)
    assert upstream.body == raw


def test_explicit_null_stream_options_is_replaced_not_duplicated() -> None:
    raw = request_bytes(stream=True, stream_options=None)
    _, upstream = build(raw)
    # A JSON object with a repeated key is read last-wins by most parsers (Python's json, orjson, Go's
    # encoding/json), so the upstream must not see a second, null, stream_options.
    assert upstream.body.count(b'"stream_options"') == 1
    assert json.loads(upstream.body)["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("model", "field"), [("gpt-4o", "max_tokens"), ("o1-mini", "max_completion_tokens")])
def test_explicit_null_output_limit_does_not_hide_the_cap(model: str, field: str) -> None:
    raw = json.dumps({"model": model, "messages": USER, field: None}).encode()
    _, upstream = build(raw, upstream_model=model, cap=50)
    assert upstream.body.count(f'"{field}"'.encode()) == 1
    assert json.loads(upstream.body)[field] == 50


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("gpt-4o", "max_tokens"),
        ("gpt-4o-mini", "max_tokens"),
        ("gpt-3.5-turbo", "max_tokens"),
        ("llama3:8b", "max_tokens"),
        ("o1", "max_completion_tokens"),
        ("o1-mini", "max_completion_tokens"),
        ("o1-preview", "max_completion_tokens"),
        ("o3-mini", "max_completion_tokens"),
        ("o4-mini", "max_completion_tokens"),
    ],
)
def test_output_cap_field_and_cap_injection(model: str, field: str) -> None:
    assert output_cap_field(model) == field
    raw = json.dumps({"model": model, "messages": USER}).encode()
    _, upstream = build(raw, upstream_model=model, cap=123)
    parsed = json.loads(upstream.body)
    assert parsed[field] == 123
    other = {"max_tokens", "max_completion_tokens"} - {field}
    assert not other & set(parsed)


def test_model_mapping_and_cap_and_usage_together() -> None:
    raw = b'{"model" : "fast",\n "stream" : true , "messages":[{"role":"user","content":"hi"}], "seed": 7}'
    _, upstream = build(raw, upstream_model="gpt-4o-mini", cap=99)
    parsed = json.loads(upstream.body)
    assert parsed == {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
        "seed": 7,
        "stream_options": {"include_usage": True},
        "max_tokens": 99,
    }
    assert upstream.body.endswith(b' "stream" : true , "messages":[{"role":"user","content":"hi"}], "seed": 7}')


def test_same_model_is_not_rewritten() -> None:
    raw = b'{"model" : "gpt-4o" , "messages":[{"role":"user","content":"hi"}]}'
    _, upstream = build(raw, upstream_model="gpt-4o")
    assert upstream.body == raw


# ------------------------------------------------------------------------------------- responses, errors

COMPLETION = {
    "id": "chatcmpl-AbC123",
    "object": "chat.completion",
    "created": 1_727_000_000,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_abc",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me check.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


def test_parse_chat_response_with_usage() -> None:
    ChatCompletion.model_validate(COMPLETION)
    body = orjson.dumps(COMPLETION)
    usage, texts = PROVIDER.parse_chat_response(body)
    assert usage == Usage(prompt_tokens=120, completion_tokens=30, cached_tokens=64)
    assert texts == []


def test_parse_chat_response_without_usage_returns_generated_texts() -> None:
    reply = {**COMPLETION, "usage": None}
    reply["choices"] = [
        *COMPLETION["choices"],
        {
            "index": 1,
            "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
            "finish_reason": "stop",
            "logprobs": None,
        },
    ]
    ChatCompletion.model_validate(reply)
    body = orjson.dumps(reply)
    usage, texts = PROVIDER.parse_chat_response(body)
    assert usage is None
    assert sorted(texts) == sorted(["Let me check.", "get_weather", '{"city":"Paris"}', "I can't help with that."])


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"not json"])
def test_parse_chat_response_rejects_non_objects(body: bytes) -> None:
    with pytest.raises(ValueError):
        PROVIDER.parse_chat_response(body)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, Usage(10, 5, 0)),
        ({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": None}, Usage(10, 5, 0)),
        ({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": None}}, Usage(10, 5)),
        ({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 8}}, Usage(10, 5, 8)),
        ({"prompt_tokens": None, "completion_tokens": None}, Usage(0, 0, 0)),
        ({}, Usage(0, 0, 0)),
        ({"prompt_tokens": 3, "prompt_tokens_details": "junk"}, Usage(3, 0, 0)),
    ],
)
def test_usage_from_openai(usage: dict[str, Any], expected: Usage) -> None:
    assert usage_from_openai(usage) == expected


def test_usage_round_trip_through_openai_shape() -> None:
    usage = Usage(1234, 567, 89)
    shaped = usage_to_openai(usage)
    assert shaped["total_tokens"] == 1234 + 567
    assert usage_from_openai(shaped) == usage


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}',
            "Rate limit reached",
        ),
        (b'{"error":"model not loaded"}', "model not loaded"),
        (b'{"message":"Bad request from vLLM","object":"error"}', "Bad request from vLLM"),
        (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"),
        (b"  upstream exploded \n", "upstream exploded"),
        (b"", "no error message"),
        (b"[1]", "[1]"),
    ],
)
def test_error_message(body: bytes, message: str) -> None:
    assert upstream_error_message(body) == message


def test_error_message_truncates_long_text() -> None:
    assert len(upstream_error_message(b"x" * 10_000)) == 500


# ------------------------------------------------------------------------------------------------ secrets


@pytest.mark.parametrize(
    ("text", "secrets", "gone", "kept"),
    [
        (
            "Incorrect API key provided: sk-proj-abc123DEF456ghi789. You can find your API key at ...",
            (),
            ["sk-proj-abc123DEF456ghi789"],
            ["Incorrect API key provided: ", "You can find your API key"],
        ),
        ("Incorrect API key provided: sk-proj-********************abcd.", (), ["abcd", "****"], ["Incorrect"]),
        ("bad key sk-ant-api03-AbCdEf_GhIjKl-MnOp", (), ["sk-ant-api03", "AbCdEf"], ["bad key"]),
        ("API key not valid: AIzaSyA1234567890abcdefghijklmnopqrstu", (), ["AIzaSyA1234567890"], ["not valid"]),
        (
            "token my-upstream-secret-123 rejected",
            ("my-upstream-secret-123",),
            ["my-upstream-secret-123"],
            ["rejected"],
        ),
        ("url https://x/?key=opaque0key0value", ("opaque0key0value", ""), ["opaque0key0value"], ["https://x/?key="]),
    ],
)
def test_scrub_secrets_removes_keys(text: str, secrets: tuple[str, ...], gone: list[str], kept: list[str]) -> None:
    scrubbed = scrub_secrets(text, secrets)
    for piece in gone:
        assert piece not in scrubbed
    for piece in kept:
        assert piece in scrubbed
    assert "[redacted]" in scrubbed


@pytest.mark.parametrize(
    "text",
    ["The model `gpt-4o` does not exist", "risk-assessment and task-manager are fine", "sk-abc (too short)", ""],
)
def test_scrub_secrets_leaves_ordinary_text(text: str) -> None:
    assert scrub_secrets(text, ("",)) == text


def test_upstream_auth_error_becomes_502_without_the_channel_key() -> None:
    channel = Channel(CHANNEL, PROVIDER)
    body = orjson.dumps({"error": {"message": f"Incorrect API key provided: {CHANNEL.api_key}"}})
    error = relayed_error(401, body, {}, channel)
    assert error.status == 502
    assert CHANNEL.api_key not in error.message
    assert error.code == "upstream_auth_failed"
    limited = relayed_error(429, b'{"error": {"message": "slow down"}}', {}, channel)
    assert (limited.status, limited.type, limited.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    broken = relayed_error(500, b"boom", {}, channel)
    assert (broken.status, broken.type, broken.code) == (500, "upstream_error", "upstream_500")


def test_relayed_429_keeps_the_upstream_type_code_and_retry_headers() -> None:
    channel = Channel(CHANNEL, PROVIDER)
    body = orjson.dumps({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
    headers = {"Retry-After": "7", "retry-after-ms": "6500", "x-ratelimit-remaining-requests": "0", "Server": "x"}
    error = relayed_error(429, body, headers, channel)
    assert (error.type, error.code) == ("requests", "rate_limit_exceeded")
    assert dict(error.headers or []) == {
        b"retry-after": b"7",
        b"retry-after-ms": b"6500",
        b"x-ratelimit-remaining-requests": b"0",
    }


@pytest.mark.parametrize(
    "error",
    [
        RelayError(400, "bad"),
        bad_request("bad field", "messages"),
        model_not_found("nope"),
        insufficient_quota("no money"),
        upstream_unreachable("ConnectionRefused"),
        upstream_timeout(),
    ],
)
def test_openai_error_body_shape(error: RelayError) -> None:
    status, raw = openai_error(error)
    body = json.loads(raw)
    assert status == error.status
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] == error.message == str(error)
    assert body["error"]["param"] == error.param
    assert body["error"]["code"] == error.code


def test_specific_error_fields() -> None:
    missing = model_not_found("gpt-9")
    assert (missing.status, missing.param, missing.code) == (404, "model", "model_not_found")
    assert "gpt-9" in missing.message
    quota = insufficient_quota("x")
    assert (quota.status, quota.type, quota.code) == (429, "insufficient_quota", "insufficient_quota")
    assert bad_request("x", "n").status == 400


# ------------------------------------------------------------------------------------ parse_chat_request

GOOD_MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"[]", None),
        (b'"just a string"', None),
        (b"42", None),
        (orjson.dumps({"messages": GOOD_MESSAGES}), "model"),
        (orjson.dumps({"model": "", "messages": GOOD_MESSAGES}), "model"),
        (orjson.dumps({"model": 4, "messages": GOOD_MESSAGES}), "model"),
        (orjson.dumps({"model": "gpt-4o"}), "messages"),
        (orjson.dumps({"model": "gpt-4o", "messages": []}), "messages"),
        (orjson.dumps({"model": "gpt-4o", "messages": "hi"}), "messages"),
        (orjson.dumps({"model": "gpt-4o", "messages": ["hi"]}), "messages[0]"),
        (orjson.dumps({"model": "gpt-4o", "messages": [{"content": "no role"}]}), "messages[0].role"),
        (orjson.dumps({"model": "gpt-4o", "messages": [*GOOD_MESSAGES, {"role": "bot"}]}), "messages[2].role"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "stream": "true"}), "stream"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "stream": 1}), "stream"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "stream_options": "x"}), "stream_options"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "max_tokens": 0}), "max_tokens"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "max_tokens": -5}), "max_tokens"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "max_tokens": "100"}), "max_tokens"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "max_tokens": True}), "max_tokens"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "max_tokens": 1.5}), "max_tokens"),
        (
            orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "max_completion_tokens": 0}),
            "max_completion_tokens",
        ),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "n": 0}), "n"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "n": "2"}), "n"),
        (orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, "n": False}), "n"),
    ],
)
def test_parse_chat_request_400s(raw: bytes, param: str | None) -> None:
    with pytest.raises(RelayError) as caught:
        parse_chat_request(raw)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"", b"{not json", b'{"model": "gpt-4o",}'])
def test_parse_chat_request_invalid_json(raw: bytes) -> None:
    with pytest.raises(RelayError) as caught:
        parse_chat_request(raw)
    assert (caught.value.status, caught.value.code) == (400, "invalid_json")


@pytest.mark.parametrize(
    ("fields", "stream", "include_usage"),
    [
        ({}, False, False),
        ({"stream": None}, False, False),
        ({"stream": False, "stream_options": {"include_usage": True}}, False, False),
        ({"stream": True}, True, False),
        ({"stream": True, "stream_options": None}, True, False),
        ({"stream": True, "stream_options": {}}, True, False),
        ({"stream": True, "stream_options": {"include_usage": False}}, True, False),
        ({"stream": True, "stream_options": {"include_usage": "true"}}, True, False),
        ({"stream": True, "stream_options": {"include_usage": 1}}, True, False),
        ({"stream": True, "stream_options": {"include_usage": True}}, True, True),
    ],
)
def test_include_usage_only_when_streaming_and_asked(fields: dict[str, Any], stream: bool, include_usage: bool) -> None:
    raw = orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, **fields})
    request = parse_chat_request(raw)
    assert request.stream is stream
    assert request.include_usage is include_usage


@pytest.mark.parametrize(
    ("fields", "max_output", "choices"),
    [
        ({}, None, 1),
        ({"max_tokens": 100}, 100, 1),
        ({"max_completion_tokens": 80}, 80, 1),
        ({"max_completion_tokens": 80, "max_tokens": 100}, 80, 1),
        ({"max_tokens": None, "n": None}, None, 1),
        ({"n": 3, "max_tokens": 5}, 5, 3),
    ],
)
def test_parse_chat_request_limits(fields: dict[str, Any], max_output: int | None, choices: int) -> None:
    raw = orjson.dumps({"model": "gpt-4o", "messages": GOOD_MESSAGES, **fields})
    request = parse_chat_request(raw)
    assert request.max_output_tokens == max_output
    assert request.choices == choices
    assert request.raw is raw
    assert request.model == "gpt-4o"
    assert request.source_format == "openai"


@pytest.mark.parametrize("role", ["system", "developer", "user", "assistant", "tool", "function"])
def test_every_openai_role_is_accepted(role: str) -> None:
    assert parse_chat_request(orjson.dumps({"model": "m", "messages": [{"role": role, "content": "x"}]})).model == "m"


def test_a_request_from_another_client_format_sends_its_canonical_body_not_its_bytes() -> None:
    # What a translating surface (an Anthropic client reaching an OpenAI channel) hands the adaptor:
    # the client's own bytes, and their translation in OpenAI's shape.
    canonical = {"model": "gpt-4o", "messages": USER, "max_tokens": 64, "stream": True}
    request = ChatRequest("anthropic", b'{"anthropic": "bytes"}', canonical, "gpt-4o", True, False, 64, 1)
    upstream = PROVIDER.chat_request(CHANNEL, request, "gpt-4o", None, 4096)
    sent = json.loads(upstream.body)
    assert sent == {**canonical, "stream_options": {"include_usage": True}}


@pytest.mark.parametrize(
    ("prompt", "fields", "choices"),
    [
        ("one prompt", {}, 1),
        (["first", "second", "third"], {}, 3),  # a batch: each prompt gets its own completion
        ([[1, 2], [3]], {"n": 2}, 4),
        ([1, 2, 3], {"best_of": 3, "n": 2}, 3),  # token ids of one prompt; best_of candidates are all generated
        (["a", "b"], {"best_of": 2}, 4),
    ],
)
def test_a_completion_batch_reserves_for_every_prompt(prompt: object, fields: dict, choices: int) -> None:
    job = CompletionJob(b"{}", {"model": "gpt-3.5-turbo-instruct", "prompt": prompt, "max_tokens": 10, **fields})
    assert job.budget().choices == choices
