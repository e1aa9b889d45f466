"""POST /v1/responses with the openai SDK: forwarded to an OpenAI channel, translated to Claude and Gemini
(streams included), tools round trip, structured output, images, previous_response_id chains kept by the
gateway and scoped to their key, built-in tools, bad input, and billing from the upstream's usage."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.conftest import Gateway, call, make_gateway, wait_until
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import JSON_REPLY, FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, png_bytes
from tests.test_billing import key_row, record_for

GPT, CLAUDE, GEMINI = "gpt-4o", "claude-sonnet-4-5", "gemini-2.0-flash"
# USD per 1M tokens -> nano-dollars per token (input, output).
NANO = {GPT: (2_500, 10_000), CLAUDE: (3_000, 15_000), GEMINI: (100, 400)}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["city", "n"],
        "additionalProperties": False,
    },
}


def billed(gateway: Gateway, request_id: str) -> dict[str, Any]:
    row = wait_until(lambda: record_for(gateway, request_id))  # records are written in batches
    assert row, f"no usage record for {request_id}"
    return row


def create(client: OpenAI, **fields: Any) -> tuple[openai.types.responses.Response, str]:
    raw = client.responses.with_raw_response.create(**fields)
    return raw.parse(), raw.headers["x-request-id"]


def assert_billed_as_reported(gateway: Gateway, request_id: str, model: str, usage: Any, channel: str) -> None:
    row = billed(gateway, request_id)
    assert (row["endpoint"], row["channel"], row["status"]) == ("responses", channel, "ok")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage.input_tokens, usage.output_tokens)
    price_in, price_out = NANO[model]
    assert row["cost_nano"] == price_in * usage.input_tokens + price_out * usage.output_tokens


# ---- forwarded to an OpenAI channel --------------------------------------------------------------------------


def test_an_openai_model_gets_the_request_as_sent(gateway: Gateway, client: OpenAI, upstream: FakeOpenAI) -> None:
    reply, request_id = create(
        client, model=GPT, instructions="You are terse.", input="greet marker-passthrough-channel", metadata={"a": "b"}
    )
    assert reply.status == "completed" and "greet" in reply.output_text
    assert reply.id.startswith("resp_fake")  # the upstream's own response, relayed
    sent = [r for r in upstream.state.requests if r.path == "/v1/responses" and b"marker-passthrough-channel" in r.raw][
        -1
    ]
    assert sent.json == {
        "model": GPT,
        "instructions": "You are terse.",
        "input": "greet marker-passthrough-channel",
        "metadata": {"a": "b"},
    }
    assert_billed_as_reported(gateway, request_id, GPT, reply.usage, "fake")


def test_an_openai_stream_is_relayed_event_by_event_and_billed(gateway: Gateway, client: OpenAI) -> None:
    with client.responses.stream(model=GPT, input="stream through the passthrough") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert "passthrough" in final.output_text
    # The record is written after the stream's end reached the client (its writer batches): waited for.
    assert wait_until(lambda: key_row(gateway, "test_responses_api-user")["records"] >= 1)


def test_openai_chains_and_built_in_tools_go_to_the_openai_channel(client: OpenAI) -> None:
    first, _ = create(client, model=GPT, input="alpha beta gamma")
    second, _ = create(client, model=GPT, input="delta epsilon", previous_response_id=first.id)
    assert second.usage.input_tokens == first.usage.input_tokens + first.usage.output_tokens + 2  # the fake's memory
    searched, _ = create(client, model=GPT, input="#fake:websearch news", tools=[{"type": "web_search_preview"}])
    assert searched.output[0].type == "web_search_call"


# ---- translated: Claude and Gemini ----------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "channel"), [(CLAUDE, "claude"), (GEMINI, "gemini")])
def test_a_translated_reply_is_a_response_billed_from_the_upstream_usage(
    gateway: Gateway, client: OpenAI, model: str, channel: str
) -> None:
    reply, request_id = create(client, model=model, instructions="Be brief.", input="hello translated world")
    assert reply.object == "response" and reply.status == "completed"
    assert reply.model == model and reply.instructions == "Be brief."
    assert reply.output_text and reply.output[0].type == "message"
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens > 0
    assert_billed_as_reported(gateway, request_id, model, reply.usage, channel)


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_a_translated_stream_is_the_typed_event_sequence(client: OpenAI, model: str) -> None:
    with client.responses.stream(model=model, input="stream a translated reply") as stream:
        events = list(stream)
        final = stream.get_final_response()
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events)))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == final.output_text and final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
@pytest.mark.parametrize("stream", [False, True])
def test_function_tools_round_trip_through_translation(client: OpenAI, model: str, stream: bool) -> None:
    ask = {"model": model, "input": "#fake:tools what is the weather", "tools": [WEATHER]}
    if stream:
        with client.responses.stream(**ask) as events:
            for _ in events:
                pass
            first = events.get_final_response()
    else:
        first = client.responses.create(**ask)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [call.name for call in calls] == ["get_weather"]
    assert json.loads(calls[0].arguments)["city"] == "Paris"
    answer = client.responses.create(
        model=model,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "what is the weather"},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": "get_weather",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"},
        ],
    )
    assert answer.status == "completed" and answer.output_text


def test_structured_output_through_translation(client: OpenAI) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    reply = client.responses.create(
        model=GEMINI,
        input="#fake:json the answer",
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema}},
    )
    assert json.loads(reply.output_text) == json.loads(JSON_REPLY)


def test_an_image_input_reaches_claude(client: OpenAI, claude_upstream: FakeAnthropic) -> None:
    data = base64.b64encode(png_bytes()).decode()
    reply = client.responses.create(
        model=CLAUDE,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what colour is marker-image"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{data}"},
                ],
            }
        ],
    )
    assert reply.status == "completed"
    sent = claude_upstream.requests_with("marker-image")[-1].json
    image = next(block for block in sent["messages"][0]["content"] if block["type"] == "image")
    assert image["source"] == {"type": "base64", "media_type": "image/png", "data": data}


# ---- previous_response_id on translated models ---------------------------------------------------------------


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_previous_response_id_chains_are_kept_by_the_gateway_and_scoped_to_the_key(
    gateway: Gateway, client: OpenAI, model: str, claude_upstream: FakeAnthropic, gemini_upstream: FakeGemini
) -> None:
    first, _ = create(client, model=model, input="remember the word marker-zebra")
    assert first.id.startswith("resp_")
    second, _ = create(client, model=model, input="which word marker-recall", previous_response_id=first.id)
    assert second.status == "completed"
    fake = claude_upstream if model == CLAUDE else gemini_upstream
    sent = fake.requests_with("marker-recall")[-1].raw
    assert b"marker-zebra" in sent  # the earlier turn went upstream with the new one
    assert first.output_text.encode() in sent  # ... and so did the earlier reply
    with client.responses.stream(model=model, input="third marker-third", previous_response_id=second.id) as stream:
        for _ in stream:
            pass
    assert b"marker-zebra" in fake.requests_with("marker-third")[-1].raw
    # Another key cannot read this key's responses: to it, the id does not exist.
    other = OpenAI(api_key=gateway.create_key(f"responses-other-{model}"), base_url=gateway.base_url, max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        other.responses.create(model=model, input="steal", previous_response_id=first.id)
    assert caught.value.body["code"] == "previous_response_not_found"
    assert caught.value.body["param"] == "previous_response_id"


def test_store_false_keeps_nothing(client: OpenAI) -> None:
    first = client.responses.create(model=CLAUDE, input="do not keep this", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=CLAUDE, input="again", previous_response_id=first.id)


# ---- refused before anything is billed -------------------------------------------------------------------------


def test_a_built_in_tool_on_a_translated_model_is_a_400_naming_it(gateway: Gateway, key: str, client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=CLAUDE, input="search", tools=[{"type": "web_search_preview"}])
    assert "web_search_preview" in caught.value.message
    assert caught.value.body["param"] == "tools[0]"
    row = billed(gateway, caught.value.response.headers["x-request-id"])
    assert (row["http_status"], row["cost_nano"], row["prompt_tokens"]) == (400, 0, 0)  # nothing billed
    malformed = call(
        "POST", f"{gateway.base_url}/responses", {"model": CLAUDE, "input": 5}, {"Authorization": f"Bearer {key}"}
    )
    assert malformed.status == 400 and malformed.json()["error"]["param"] == "input"


def test_a_cut_translated_stream_ends_with_an_error_event_and_bills_what_was_sent(
    gateway: Gateway, client: OpenAI
) -> None:
    with pytest.raises(openai.APIError), client.responses.stream(model=CLAUDE, input="#fake:cut a b c d") as stream:
        for _ in stream:
            pass
    rows = key_row(gateway, "test_responses_api-user")
    assert rows["used_nano"] == rows["records_cost"]


def test_a_channel_without_the_responses_api_gets_chat_completions(tmp_path: Path, upstream: FakeOpenAI) -> None:
    gw = make_gateway(tmp_path, upstream)
    gw.config_path.write_text(
        f"""
channels:
  - name: chat-only
    type: openai
    base_url: {upstream.base_url}
    api_key: ${{FAKE_UPSTREAM_KEY}}
    models: [gpt-4o-mini]
    responses: false
"""
    )
    gw.start()
    try:
        client = OpenAI(api_key=gw.create_key("chat-only"), base_url=gw.base_url, max_retries=0)
        with client.responses.stream(model="gpt-4o-mini", input="Hello! marker-chat-only") as stream:
            for _ in stream:
                pass
            final = stream.get_final_response()
        reply = client.responses.create(model="gpt-4o-mini", input="Hello! marker-chat-only-body")
    finally:
        gw.stop()
    assert "You said: Hello!" in final.output_text and "You said: Hello!" in reply.output_text
    paths = {r.path for r in upstream.state.requests if b"marker-chat-only" in r.raw}
    assert paths == {"/v1/chat/completions"}
    assert final.usage.input_tokens > 0 and reply.usage.output_tokens > 0
