"""The anthropic SDK through the gateway's /v1/messages: forwarded untouched to a Claude channel, and
translated both ways for an OpenAI model; Anthropic-shaped errors from the gateway itself; exact bills."""

from __future__ import annotations

import base64
import json

import anthropic
import pytest
from anthropic import Anthropic

from tests.conftest import Gateway, call, wait_until
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI, png_bytes
from tests.test_billing import key_row, record_for
from tests.test_claude_via_openai_sdk import expected_cost

CLAUDE = "claude-sonnet-4-5"
TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def claude(gateway: Gateway, key: str) -> Anthropic:
    return Anthropic(api_key=key, base_url=gateway.url, max_retries=0, timeout=30)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# ------------------------------------------------------------------------------------ to a Claude channel


def test_passthrough_forwards_the_clients_bytes(gateway: Gateway, key: str, claude_upstream: FakeAnthropic) -> None:
    raw = json.dumps(
        {"model": CLAUDE, "max_tokens": 40, "messages": user("exact bytes  anth-pass-1"), "top_k": 5}, indent=1
    ).encode()
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "anthropic-beta": "some-beta-2025"}
    reply = call("POST", f"{gateway.url}/v1/messages", raw=raw, headers={**headers, "Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    message = anthropic.types.Message.model_validate(reply.json())
    assert message.content[0].text == "You said: exact bytes anth-pass-1"
    received = claude_upstream.requests_with("anth-pass-1")[-1]
    assert received.raw == raw  # not re-encoded: indentation and top_k kept
    assert received.headers["anthropic-beta"] == "some-beta-2025"
    assert received.headers["x-api-key"] != key  # the channel's own key went upstream


def test_mapped_model_is_the_only_change(claude: Anthropic, claude_upstream: FakeAnthropic) -> None:
    message = claude.messages.create(model="claude-alias", max_tokens=30, messages=user("alias anth-pass-2"))
    assert message.content[0].text == "You said: alias anth-pass-2"
    assert claude_upstream.requests_with("anth-pass-2")[-1].json["model"] == CLAUDE


def test_stream_is_relayed_event_by_event_and_billed(gateway: Gateway, claude: Anthropic) -> None:
    with claude.messages.stream(
        model=CLAUDE, max_tokens=50, messages=user("stream this anth-stream-1 #fake:cache_read=20")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert text == "You said: stream this anth-stream-1"
    assert final.usage.cache_read_input_tokens == 20
    record = wait_until(lambda: record_for(gateway, request_id))
    prompt = final.usage.input_tokens + 20
    assert (record["prompt_tokens"], record["cached_tokens"]) == (prompt, 20)
    assert record["completion_tokens"] == final.usage.output_tokens
    assert record["endpoint"] == "messages"
    assert record["cost_nano"] == expected_cost(CLAUDE, prompt, final.usage.output_tokens, cached=20)


def test_tools_and_thinking_pass_through_streamed(claude: Anthropic) -> None:
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[TOOL],
        messages=user("weather #fake:tools=2"),
    ) as stream:
        final = stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].signature == "sig-fake-123"
    assert [block.input for block in final.content[2:]] == [{"city": "Paris", "n": 0}, {"city": "Paris", "n": 1}]
    assert final.stop_reason == "tool_use"


def test_bearer_authorization_is_accepted_too(gateway: Gateway, key: str) -> None:
    client = Anthropic(auth_token=key, base_url=gateway.url, max_retries=0)
    assert client.messages.create(model=CLAUDE, max_tokens=10, messages=user("bearer")).content[0].text


def test_count_tokens_asks_the_claude_channel(claude: Anthropic) -> None:
    counted = claude.messages.count_tokens(model=CLAUDE, system="be brief", messages=user("one two three"))
    assert counted.input_tokens == 3 + (3 + 3) + 2  # the fake's count: the upstream's own


def test_upstream_errors_keep_anthropics_shape(claude: Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as raised:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=user("#fake:error=429"))
    assert raised.value.body["type"] == "error"
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=user("#fake:error=529"))
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"


def test_mid_stream_error_and_cut_stream_raise_in_the_sdk(claude: Anthropic) -> None:
    for directive in ("#fake:midstream_error", "#fake:cut"):
        with (
            pytest.raises(anthropic.APIError),
            claude.messages.stream(model=CLAUDE, max_tokens=50, messages=user(f"{directive} a b c")) as stream,
        ):
            for _ in stream:
                pass


# ------------------------------------------------------------------------ to an OpenAI model, translated


def test_openai_model_non_stream_is_an_anthropic_message(
    gateway: Gateway, claude: Anthropic, upstream: FakeOpenAI
) -> None:
    raw = claude.messages.with_raw_response.create(
        model="gpt-4o",
        max_tokens=50,
        system="Be brief.",
        messages=user("hello gpt anth-gpt-1"),
        stop_sequences=["never"],
        metadata={"user_id": "u-1"},
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == "You said: hello gpt anth-gpt-1"
    assert message.stop_reason == "end_turn"
    sent = upstream.requests_with("anth-gpt-1")[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (sent["max_tokens"], sent["stop"], sent["user"]) == (50, ["never"], "u-1")
    # the OpenAI fake: prompt 3 + (3+2) system + (3+3) user = 14, completion 5
    assert (message.usage.input_tokens, message.usage.output_tokens) == (14, 5)
    record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))
    assert record["channel"] == "fake" and record["endpoint"] == "messages"
    assert record["cost_nano"] == 14 * 2500 + 5 * 10000


def test_openai_model_stream_rebuilds_in_the_sdk(claude: Anthropic) -> None:
    with claude.messages.stream(model="gpt-4o", max_tokens=50, messages=user("stream gpt #fake:chunks=3")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: stream gpt"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 3 + 3 + 3 and final.usage.output_tokens == 4


@pytest.mark.parametrize("stream", [False, True])
def test_openai_model_two_parallel_tool_calls_become_tool_use_blocks(claude: Anthropic, stream: bool) -> None:
    kwargs = {"model": "gpt-4o", "max_tokens": 100, "tools": [TOOL], "messages": user("weather #fake:tools=2")}
    if stream:
        with claude.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = claude.messages.create(**kwargs)
    uses = [block for block in message.content if block.type == "tool_use"]
    assert [use.id for use in uses] == ["call_fake_0", "call_fake_1"]
    assert all(use.name == "get_weather" and isinstance(use.input, dict) and use.input for use in uses)
    assert message.stop_reason == "tool_use"


def test_openai_model_gets_tool_results_and_images_in_its_own_shape(claude: Anthropic, upstream: FakeOpenAI) -> None:
    image = base64.b64encode(png_bytes()).decode()
    claude.messages.create(
        model="gpt-4o",
        max_tokens=50,
        tools=[TOOL],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "cold"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
                    {"type": "text", "text": "and this? anth-gpt-tools"},
                ],
            },
        ],
    )
    sent = upstream.requests_with("anth-gpt-tools")[-1].json
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool", "user"]
    assert sent["messages"][1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "cold"}
    assert sent["messages"][3]["content"][0]["image_url"]["url"] == f"data:image/png;base64,{image}"
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    assert sent["tools"][0]["function"]["parameters"] == TOOL["input_schema"]


def test_openai_model_cut_stream_raises(claude: Anthropic) -> None:
    with (
        pytest.raises(anthropic.APIError),
        claude.messages.stream(model="gpt-4o", max_tokens=50, messages=user("#fake:cut a b c")) as stream,
    ):
        for _ in stream:
            pass


def test_count_tokens_for_an_openai_model_is_counted_offline(claude: Anthropic) -> None:
    counted = claude.messages.count_tokens(model="gpt-4o", messages=user("hello world"))
    assert counted.input_tokens == 3 + 3 + 2 + 1  # framing, "user" and two o200k tokens


# ------------------------------------------------------------------------------- the gateway's own errors


def test_gateway_errors_are_anthropic_shaped(gateway: Gateway) -> None:
    bad = Anthropic(api_key="sk-not-a-key-000000000", base_url=gateway.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as raised:
        bad.messages.create(model=CLAUDE, max_tokens=10, messages=user("hi"))
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": raised.value.body["error"]["message"]},
    }
    key = gateway.create_key("anth-errors", quota_usd="1")
    client = Anthropic(api_key=key, base_url=gateway.url, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=10, messages=user("hi"))
    assert missing.value.body["error"]["type"] == "not_found_error"
    for body in (
        {"model": CLAUDE, "messages": user("no max_tokens")},
        {"model": CLAUDE, "max_tokens": 5, "messages": "x"},
    ):
        reply = call("POST", f"{gateway.url}/v1/messages", body, {"x-api-key": key, "anthropic-version": "2023-06-01"})
        assert reply.status == 400
        assert reply.json()["type"] == "error" and reply.json()["error"]["type"] == "invalid_request_error"
    assert key_row(gateway, "anth-errors")["used_nano"] == 0


def test_no_quota_is_a_billing_error(gateway: Gateway) -> None:
    key = gateway.create_key("anth-poor", quota_usd="0.000001")
    client = Anthropic(api_key=key, base_url=gateway.url, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model=CLAUDE, max_tokens=1000, messages=user("expensive"))
    assert raised.value.status_code == 402
    assert raised.value.body["error"]["type"] == "billing_error"


def test_models_list_and_retrieve_in_anthropics_shape(claude: Anthropic) -> None:
    ids = [model.id for model in claude.models.list()]
    assert CLAUDE in ids and "gpt-4o" in ids
    assert claude.models.retrieve(CLAUDE).type == "model"
    with pytest.raises(anthropic.NotFoundError) as raised:
        claude.models.retrieve("no-such-model")
    assert raised.value.body["error"]["type"] == "not_found_error"
