"""The openai SDK reaching Gemini: OpenAI-format requests translated to generateContent on a fake Gemini
upstream (which validates what it receives as strictly as Google does), and replies, streams, usage, errors
and bills coming back as an OpenAI model's would. Images given by URL are fetched by the gateway, never from
private addresses unless the operator allows them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from llmrelay.metering.pricing import BUILTIN_PRICES
from tests.conftest import Gateway, make_gateway, wait_until
from tests.fakes.gemini_upstream import GEMINI_UPSTREAM_SECRET, JSON_REPLY, THINKING_TEXT, FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, png_bytes
from tests.test_billing import record_for

MODEL = "gemini-2.0-flash"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"]}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]


def sent_to_gemini(gemini: FakeGemini, marker: str) -> tuple[str, dict]:
    received = gemini.requests_with(marker)
    assert received, f"no upstream request carried {marker!r}"
    return received[-1].path, received[-1].json


def cost(model: str, prompt: int, completion: int, cached: int = 0) -> int:
    price = BUILTIN_PRICES[model]
    nano = (
        (prompt - cached) * Decimal(price["input"]) + cached * Decimal(price["cached_input"])
    ) + completion * Decimal(price["output"])
    return int((nano * 1000).to_integral_value())


def test_text_system_and_bill(gateway: Gateway, client: OpenAI, gemini_upstream: FakeGemini) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello gem-text-1"}],
        max_tokens=40,
        temperature=0.5,
        stop="never",
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "You said: hello gem-text-1"
    assert reply.choices[0].finish_reason == "stop"
    path, sent = sent_to_gemini(gemini_upstream, "gem-text-1")
    assert path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "hello gem-text-1"}]}]
    assert sent["generationConfig"] == {"maxOutputTokens": 40, "temperature": 0.5, "stopSequences": ["never"]}
    received = gemini_upstream.requests_with("gem-text-1")[-1]
    assert received.headers["x-goog-api-key"] == GEMINI_UPSTREAM_SECRET
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (3 + (3 + 2) + 2, 4)
    record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))
    assert record["channel"] == "gemini" and record["cost_nano"] == cost(MODEL, 10, 4)


def test_stream_with_usage_and_assistant_turns_as_model(client: OpenAI, gemini_upstream: FakeGemini) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "stream gem-stream-1"},
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: stream gem-stream-1"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    path, sent = sent_to_gemini(gemini_upstream, "gem-stream-1")
    assert path == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]


def test_data_uri_image_is_inline_data(client: OpenAI, gemini_upstream: FakeGemini) -> None:
    data = base64.b64encode(png_bytes()).decode()
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what gem-image-1"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content.endswith("(1 images)")
    parts = sent_to_gemini(gemini_upstream, "gem-image-1")[1]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": data}}


def test_an_image_url_on_a_private_address_is_refused(gateway: Gateway, gemini_upstream: FakeGemini) -> None:
    key = gateway.create_key("gem-ssrf", quota_usd="1")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    for url in (f"{gemini_upstream.base_url}/img/red.png", "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            )
        assert "private or reserved address" in raised.value.message
        assert raised.value.code == "invalid_image_url"


@pytest.fixture(scope="module")
def open_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI, gemini_upstream: FakeGemini
) -> Iterator[Gateway]:
    """A gateway whose operator allows image URLs on private addresses (the fake serves images on loopback)."""
    tmp: Path = tmp_path_factory.mktemp("open-images")
    gw = make_gateway(tmp, upstream, gemini=gemini_upstream, extra="image_fetch: {allow_private_addresses: true}")
    yield gw.start()
    gw.stop()


@pytest.mark.parametrize("path", ["/img/red.png", "/img/redirect"])
def test_an_allowed_image_url_is_fetched_and_sent_inline(open_gateway: Gateway, gemini_upstream, path) -> None:
    key = open_gateway.create_key(f"gem-fetch-{path[-3:]}", quota_usd="1")
    client = OpenAI(api_key=key, base_url=open_gateway.base_url, max_retries=0)
    marker = f"fetched gem-fetch{path.replace('/', '-')}"
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": marker},
                    {"type": "image_url", "image_url": {"url": f"{gemini_upstream.base_url}{path}"}},
                ],
            }
        ],
    )
    parts = sent_to_gemini(gemini_upstream, marker)[1]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png_bytes()).decode()}}


@pytest.mark.parametrize("stream", [False, True])
def test_two_parallel_tool_calls_with_stop_are_tool_calls(client: OpenAI, gemini_upstream, stream: bool) -> None:
    marker = f"gem-tools-{stream}"
    kwargs = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"weather #fake:tools=2 {marker}"}],
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    if stream:
        chunks = list(client.chat.completions.create(**kwargs, stream=True))
        calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        choice = client.chat.completions.create(**kwargs).choices[0]
        calls, finish, content = choice.message.tool_calls, [choice.finish_reason], choice.message.content
    # Gemini says STOP after calling functions (in a later chunk, when streamed): still tool_calls.
    assert finish == ["tool_calls"]
    assert content == "Let me check."
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris", "n": 0}, {"city": "Paris", "n": 1}]
    assert len({c.id for c in calls}) == 2 and all(c.function.name == "get_weather" for c in calls)
    sent = sent_to_gemini(gemini_upstream, marker)[1]
    declared = sent["tools"][0]["functionDeclarations"][0]["parameters"]
    assert "$schema" not in declared and "additionalProperties" not in declared
    assert declared["properties"]["unit"] == {"type": "string", "nullable": True}
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


def test_tool_results_go_back_as_function_responses(client: OpenAI, gemini_upstream: FakeGemini) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp": -3}'},
            {"role": "user", "content": "summarise gem-result-1"},
        ],
        tools=TOOLS,
    )
    assert reply.choices[0].finish_reason == "stop"
    contents = sent_to_gemini(gemini_upstream, "gem-result-1")[1]["contents"]
    assert contents[1]["parts"][0]["functionCall"] == {"name": "get_weather", "args": {"city": "Oslo"}}
    assert contents[2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {"temp": -3}}


def test_json_modes_map_to_response_mime_type_and_schema(client: OpenAI, gemini_upstream: FakeGemini) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "additionalProperties": False}
    for marker, response_format in (
        ("gem-json-object", {"type": "json_object"}),
        ("gem-json-schema", {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}),
    ):
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": marker}], response_format=response_format
        )
        assert json.loads(reply.choices[0].message.content) == json.loads(JSON_REPLY)
        config = sent_to_gemini(gemini_upstream, marker)[1]["generationConfig"]
        assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {"type": "object", "properties": {"answer": {"type": "string"}}}


@pytest.mark.parametrize(("directive", "reason"), [("safety", "SAFETY"), ("blocked", "SAFETY")])
def test_a_safety_block_is_content_filter_with_the_reason(client: OpenAI, directive: str, reason: str) -> None:
    choice = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"#fake:{directive}"}])
    choice = choice.choices[0]
    assert choice.finish_reason == "content_filter"
    assert reason in choice.message.content


def test_thinking_and_cached_tokens_in_usage(gateway: Gateway, client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "think #fake:cached=6"}],
        reasoning_effort="low",
    )
    reply = raw.parse()
    message = reply.choices[0].message.model_dump()
    assert message["reasoning_content"] == THINKING_TEXT
    thoughts = len(THINKING_TEXT.split())
    prompt = 3 + 3 + 2 + 6
    assert reply.usage.prompt_tokens == prompt and reply.usage.prompt_tokens_details.cached_tokens == 6
    assert reply.usage.completion_tokens == len(message["content"].split()) + thoughts  # thoughts bill as output
    record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))
    assert record["cost_nano"] == cost("gemini-2.5-flash", prompt, reply.usage.completion_tokens, cached=6)


def test_n_is_candidate_count(client: OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "two gem-n"}], n=2)
    assert [c.message.content for c in reply.choices] == ["You said: two gem-n", "You said: two gem-n #1"]


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, openai.BadRequestError), (429, openai.RateLimitError), (503, openai.InternalServerError)],
)
def test_upstream_errors_keep_their_status(client: OpenAI, status: int, error: type) -> None:
    with pytest.raises(error) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"#fake:error={status}"}])
    assert raised.value.status_code == status


def test_upstream_key_failure_is_502_without_the_secret(gateway: Gateway, client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:error=401"}])
    assert raised.value.status_code == 502
    assert GEMINI_UPSTREAM_SECRET not in raised.value.response.text
    # The upstream refused the gateway's key: the channel is disabled (it would be skipped by failover) until
    # an operator or the probe enables it again.
    before = gateway.enable_channel("gemini")
    assert (before["state"], before["disabled_by"]) == ("disabled", "gateway")


def test_cut_stream_raises_and_bills_what_was_sent(gateway: Gateway, client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "#fake:cut one two three"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in raw.parse():
            pass
    record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))
    assert record["status"] in ("upstream_incomplete", "upstream_disconnected") and record["cost_nano"] > 0
