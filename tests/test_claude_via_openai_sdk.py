"""The openai SDK reaching Claude: OpenAI-format requests translated to Anthropic's Messages API on a fake
Anthropic upstream (which validates what it receives as strictly as the real API), and the replies, streams,
usage, errors and bills coming back exactly as an OpenAI model's would."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import openai
import pytest
from openai import OpenAI

from llmrelay.metering.pricing import BUILTIN_PRICES
from tests.conftest import Gateway, wait_until
from tests.fakes.anthropic_upstream import ANTHROPIC_UPSTREAM_SECRET, FakeAnthropic
from tests.fakes.openai_upstream import png_bytes
from tests.test_billing import key_row, record_for

MODEL = "claude-sonnet-4-5"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def sent_to_claude(claude: FakeAnthropic, marker: str) -> dict:
    """The body the gateway sent upstream for the request whose text holds `marker`."""
    received = claude.requests_with(marker)
    assert received, f"no upstream request carried {marker!r}"
    assert received[-1].path == "/v1/messages"
    return received[-1].json


def expected_cost(model: str, prompt: int, completion: int, cached: int = 0, written: int = 0) -> int:
    price = BUILTIN_PRICES[model]
    nano = (
        (prompt - cached - written) * Decimal(price["input"])
        + cached * Decimal(price["cached_input"])
        + written * Decimal(price["cache_write"])
        + completion * Decimal(price["output"])
    ) * 1000
    return int(nano.to_integral_value())


def test_text_reply_usage_and_bill_are_an_openai_models(gateway: Gateway, client: OpenAI, claude_upstream) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there claude-text-1"},
        ],
        max_tokens=50,
    )
    reply = raw.parse()
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "You said: hello there claude-text-1"
    assert reply.choices[0].finish_reason == "stop"
    sent = sent_to_claude(claude_upstream, "claude-text-1")
    assert sent["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["max_tokens"] == 50
    assert sent["model"] == MODEL
    # input: 3 + (3 + 3 words) + 2 system words; output: 5 words
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 5)
    record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))
    assert record["channel"] == "claude"
    assert record["endpoint"] == "chat.completions"
    assert record["cost_nano"] == expected_cost(MODEL, 11, 5)


def test_missing_max_tokens_sends_the_models_documented_limit(client: OpenAI, claude_upstream) -> None:
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "no limit claude-max-1"}])
    assert sent_to_claude(claude_upstream, "claude-max-1")["max_tokens"] == BUILTIN_PRICES[MODEL]["max_output_tokens"]


def test_same_role_turns_merge_and_developer_joins_system(client: OpenAI, claude_upstream) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "developer", "content": "Rule one."},
            {"role": "user", "content": "first part"},
            {"role": "user", "content": [{"type": "text", "text": "second part claude-merge-1"}]},
            {"role": "system", "content": "Rule two."},
        ],
        max_tokens=20,
    )
    assert reply.choices[0].message.content.startswith("You said:")
    sent = sent_to_claude(claude_upstream, "claude-merge-1")
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert [b["text"] for b in sent["messages"][0]["content"]] == ["first part", "second part claude-merge-1"]
    assert [b["text"] for b in sent["system"]] == ["Rule one.", "Rule two."]


def test_image_parts_become_base64_and_url_sources(client: OpenAI, claude_upstream) -> None:
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this claude-image-1"},
                    {"type": "image_url", "image_url": {"url": data_uri}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                ],
            }
        ],
        max_tokens=30,
    )
    assert reply.choices[0].message.content.endswith("(2 images)")
    blocks = sent_to_claude(claude_upstream, "claude-image-1")["messages"][0]["content"]
    assert blocks[1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(png_bytes()).decode(),
    }
    assert blocks[2]["source"] == {"type": "url", "url": "https://example.com/cat.png"}


def test_two_parallel_tool_calls_non_stream(client: OpenAI, claude_upstream) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "weather? #fake:tools=2 claude-tools-1"}],
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=True,
        max_tokens=100,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert [c.id for c in calls] == ["toolu_fake_0", "toolu_fake_1"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris", "n": 0}, {"city": "Paris", "n": 1}]
    sent = sent_to_claude(claude_upstream, "claude-tools-1")
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]


def test_two_parallel_tool_calls_stream_count_calls_not_blocks(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "weather? #fake:tools=2 claude-tools-2"}],
        tools=TOOLS,
        max_tokens=100,
        stream=True,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    arguments: dict[int, str] = {}
    ids: dict[int, str] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.id:
                ids[call.index] = call.id
            arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
    # Anthropic's block indexes are 1 and 2 (a text block comes first); OpenAI's tool-call indexes are 0 and 1.
    assert ids == {0: "toolu_fake_0", 1: "toolu_fake_1"}
    assert {i: json.loads(a) for i, a in arguments.items()} == {
        0: {"city": "Paris", "n": 0},
        1: {"city": "Paris", "n": 1},
    }
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_tool_results_go_back_as_tool_result_blocks(client: OpenAI, claude_upstream) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "toolu_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "toolu_b", "content": "rainy"},
            {"role": "user", "content": "summarise claude-toolresult-1"},
        ],
        tools=TOOLS,
        max_tokens=50,
    )
    assert reply.choices[0].finish_reason == "stop"
    sent = sent_to_claude(claude_upstream, "claude-toolresult-1")
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    results = sent["messages"][2]["content"]
    assert [(b["type"], b.get("tool_use_id")) for b in results] == [
        ("tool_result", "toolu_a"),
        ("tool_result", "toolu_b"),
        ("text", None),
    ]
    assert sent["messages"][1]["content"][0]["input"] == {"city": "Paris"}


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {"type": "object", "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}}},
            },
        },
    ],
)
def test_json_mode_is_a_forced_tool_whose_input_is_the_content(
    client: OpenAI, claude_upstream, response_format
) -> None:
    marker = f"claude-json-{response_format['type']}"
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"answer in JSON {marker}"}],
        response_format=response_format,
        max_tokens=50,
    )
    assert json.loads(reply.choices[0].message.content) == {"answer": "yes", "n": 1}
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None
    sent = sent_to_claude(claude_upstream, marker)
    assert sent["tool_choice"]["type"] == "tool"
    if response_format["type"] == "json_schema":
        assert sent["tools"][0]["input_schema"] == response_format["json_schema"]["schema"]


def test_json_mode_streams_its_content(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "json stream claude-json-stream"}],
        response_format={"type": "json_object"},
        max_tokens=50,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"answer": "yes", "n": 1}
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)


def test_extended_thinking_comes_back_as_reasoning_content(client: OpenAI, claude_upstream) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "think claude-think-1"}],
        reasoning_effort="low",
        max_tokens=4000,
    )
    message = reply.choices[0].message.model_dump()
    assert message["reasoning_content"] == "Let me think about this."
    assert message["thinking_blocks"][0]["signature"] == "sig-fake-123"
    assert message["content"] == "You said: think claude-think-1"
    assert sent_to_claude(claude_upstream, "claude-think-1")["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    # The signed thinking goes back as the first block of the assistant turn.
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "think"},
            {"role": "assistant", "content": message["content"], "thinking_blocks": message["thinking_blocks"]},
            {"role": "user", "content": "again claude-think-2"},
        ],
        reasoning_effort="low",
        max_tokens=4000,
    )
    assistant = sent_to_claude(claude_upstream, "claude-think-2")["messages"][1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": "Let me think about this.", "signature": "sig-fake-123"}


def test_thinking_streams_as_reasoning_content(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "think claude-think-stream"}],
        reasoning_effort="low",
        max_tokens=4000,
        stream=True,
    )
    chunks = [c.choices[0].delta.model_dump() for c in stream if c.choices]
    assert "".join(d.get("reasoning_content") or "" for d in chunks) == "Let me think about this."
    assert "".join(d.get("content") or "" for d in chunks) == "You said: think claude-think-stream"


def test_stream_with_include_usage_ends_with_usage(gateway: Gateway, client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "stream me #fake:chunks=3 claude-stream-1"}],
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: stream me claude-stream-1"
    )
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (3 + 3 + 4, 5)  # the directive is a word too
    record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))
    assert record["cost_nano"] == expected_cost(MODEL, 10, 5)
    assert record["stream"] is True or record["stream"] == 1


def test_stream_without_include_usage_has_no_usage_chunk(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "plain claude-stream-2"}], max_tokens=50, stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_cache_tokens_count_in_prompt_tokens_and_bill_at_their_own_prices(gateway: Gateway, client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "cached #fake:cache_read=100 #fake:cache_write=40"}],
        max_tokens=50,
    )
    usage = raw.parse().usage
    # input_tokens 3 + (3 + 3 words) = 9, plus 100 read from and 40 written to the cache
    assert usage.prompt_tokens == 149
    assert usage.prompt_tokens_details.cached_tokens == 100
    assert usage.prompt_tokens_details.cache_write_tokens == 40
    record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))
    assert (record["prompt_tokens"], record["cached_tokens"], record["cache_write_tokens"]) == (149, 100, 40)
    assert record["cost_nano"] == expected_cost(MODEL, 149, usage.completion_tokens, cached=100, written=40)


def test_stop_temperature_and_user_are_mapped(client: OpenAI, claude_upstream) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "one two three claude-stop-1"}],
        stop=["three"],
        temperature=1.6,
        top_p=0.9,
        user="user-42",
        max_tokens=50,
    )
    assert reply.choices[0].message.content == "You said: one two"
    assert reply.choices[0].finish_reason == "stop"
    sent = sent_to_claude(claude_upstream, "claude-stop-1")
    assert sent["stop_sequences"] == ["three"]
    assert sent["temperature"] == 1  # OpenAI's range is 0-2, Claude's 0-1
    assert sent["metadata"] == {"user_id": "user-42"}


def test_max_tokens_cut_is_finish_reason_length(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a b c d e f g"}], max_tokens=3
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(400, openai.BadRequestError), (429, openai.RateLimitError), (500, openai.InternalServerError)],
)
def test_upstream_errors_reach_the_sdk_with_their_status(client: OpenAI, status: int, error_class: type) -> None:
    with pytest.raises(error_class) as raised:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"#fake:error={status}"}], max_tokens=10
        )
    assert raised.value.status_code == status
    assert set(raised.value.body) >= {"message", "type", "code"}


def test_upstream_credential_failure_is_502_without_the_secret(gateway: Gateway, client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:error=401"}])
    assert raised.value.status_code == 502
    assert ANTHROPIC_UPSTREAM_SECRET not in raised.value.response.text
    # The upstream refused the gateway's key: the channel is disabled (it would be skipped by failover) until
    # an operator or the probe enables it again.
    before = gateway.enable_channel("claude")
    assert (before["state"], before["disabled_by"]) == ("disabled", "gateway")


def test_cut_and_errored_streams_raise_and_bill_what_was_sent(gateway: Gateway, client: OpenAI) -> None:
    for directive in ("#fake:cut", "#fake:midstream_error"):
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"{directive} words here"}], max_tokens=50, stream=True
        )
        with pytest.raises(openai.APIError):
            for _ in raw.parse():
                pass
        record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))  # noqa: B023
        assert record["status"] in ("upstream_incomplete", "upstream_error", "upstream_disconnected")
        assert record["prompt_tokens"] > 0 and record["cost_nano"] > 0


def test_n_above_one_is_a_clear_400_and_nothing_is_billed(gateway: Gateway) -> None:
    key = gateway.create_key("claude-n-check", quota_usd="1")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=2)
    assert raised.value.body["param"] == "n"
    assert key_row(gateway, "claude-n-check")["used_nano"] == 0
