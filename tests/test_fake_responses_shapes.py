"""The fake upstream's Responses API (`POST /v1/responses`) against the openai SDK's own types: every reply
and every streamed event validates as OpenAI's wire format, usage is predictable word by word, and the
SDK's helpers (parse, the stream accumulator) work on it. Talks to the fake directly (no gateway)."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from tests.conftest import Reply, call
from tests.fakes.openai_upstream import (
    ENCRYPTED_REASONING,
    JSON_REPLY,
    TOOL_CALL_TOKENS,
    UPSTREAM_SECRET,
    FakeOpenAI,
)

AUTH = {"Authorization": f"Bearer {UPSTREAM_SECRET}"}
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
ECHO_FIELDS = {
    "id",
    "object",
    "created_at",
    "status",
    "background",
    "completed_at",
    "error",
    "incomplete_details",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "model",
    "output",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "usage",
    "user",
    "metadata",
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
TIME = {
    "type": "function",
    "name": "get_time",
    "parameters": {
        "type": "object",
        "properties": {"zone": {"type": "string"}, "offset": {"type": "integer"}},
        "required": ["zone", "offset"],
        "additionalProperties": False,
    },
}
LONG_INPUT = " ".join(f"w{i}" for i in range(20))  # "You said: w0 ... w19" is 22 words


@pytest.fixture(scope="module")
def sdk(upstream: FakeOpenAI) -> OpenAI:
    return OpenAI(api_key=UPSTREAM_SECRET, base_url=upstream.base_url, max_retries=0, timeout=30)


def post(upstream: FakeOpenAI, body: object, headers: dict[str, str] | None = None) -> Reply:
    return call("POST", f"{upstream.base_url}/responses", body, AUTH if headers is None else headers)


def words(*texts: str) -> int:
    return sum(len(t.split()) for t in texts)


def created(upstream: FakeOpenAI, body: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed reply over plain HTTP, validated strictly as the SDK's Response."""
    reply = post(upstream, body)
    assert reply.status == 200, reply.body
    Response.model_validate(reply.json())
    return reply.json()


def sse(raw: bytes) -> list[dict[str, Any]]:
    """The events of a Responses stream, checking the framing: `event: <type>` then `data: <json>`, no [DONE]."""
    events = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        head, data = block.split(b"\n")
        assert data != b"data: [DONE]"
        assert head.startswith(b"event: ") and data.startswith(b"data: "), block
        event = json.loads(data[len(b"data: ") :])
        assert head[len(b"event: ") :].decode() == event["type"]
        events.append(event)
    return events


def streamed(upstream: FakeOpenAI, body: dict[str, Any]) -> list[dict[str, Any]]:
    reply = post(upstream, {**body, "stream": True})
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/event-stream")
    return sse(reply.body)


def assert_error(reply: Reply, status: int, param: str | None, code: str | None) -> str:
    assert reply.status == status, reply.body
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code), error
    return error["message"]


# ---- plain replies ------------------------------------------------------------------------------------------


def test_text_reply_shape_echo_and_usage(upstream: FakeOpenAI) -> None:
    body = {"model": "gpt-4o", "input": "say hello to the fake", "instructions": "You are terse."}
    reply = created(upstream, body)
    assert set(reply) >= ECHO_FIELDS
    assert reply["id"].startswith("resp_") and reply["object"] == "response" and reply["status"] == "completed"
    assert reply["model"] == "gpt-4o" and reply["instructions"] == "You are terse."
    assert reply["created_at"] <= reply["completed_at"] <= time.time() + 1
    (message,) = reply["output"]
    assert message["type"] == "message" and message["role"] == "assistant" and message["status"] == "completed"
    assert message["id"].startswith("msg_")
    assert message["content"] == [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "You said: say hello to the fake"}
    ]
    assert reply["usage"] == {
        "input_tokens": 8,  # the words of instructions and input
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 7,  # the words of the reply
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    defaults = {k: reply[k] for k in ("temperature", "top_p", "tool_choice", "tools", "truncation", "store")}
    assert defaults == {
        "temperature": 1.0,
        "top_p": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "truncation": "disabled",
        "store": True,
    }
    assert reply["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    assert reply["parallel_tool_calls"] is True and reply["previous_response_id"] is None
    assert reply["incomplete_details"] is None and reply["error"] is None and reply["metadata"] == {}
    (received,) = [r for r in upstream.requests_with("say hello to the fake") if r.path == "/v1/responses"]
    assert received.json == body and received.headers["Authorization"] == AUTH["Authorization"]


def test_settings_are_echoed(sdk: OpenAI) -> None:
    reply = sdk.responses.create(
        model="gpt-4.1",
        input="echo my settings",
        temperature=0.5,
        top_p=0.9,
        metadata={"ticket": "42"},
        user="user-7",
        truncation="auto",
        max_output_tokens=100,
        parallel_tool_calls=False,
        reasoning={"effort": "low", "summary": "auto"},
        text={"verbosity": "low"},
        tool_choice="none",
        store=True,
        service_tier="flex",
        include=["message.output_text.logprobs"],
    )
    assert (reply.temperature, reply.top_p, reply.user, reply.truncation) == (0.5, 0.9, "user-7", "auto")
    assert reply.metadata == {"ticket": "42"} and reply.max_output_tokens == 100
    assert reply.parallel_tool_calls is False and reply.tool_choice == "none" and reply.service_tier == "flex"
    assert reply.reasoning.effort == "low" and reply.reasoning.summary == "auto"
    assert reply.text.verbosity == "low" and reply.output_text == "You said: echo my settings"


def test_input_items_count_every_text(sdk: OpenAI) -> None:
    items = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "first question here"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "first answer"}]},
        {"type": "reasoning", "id": "rs_given", "summary": [{"type": "summary_text", "text": "two words"}]},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look at this"},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
            ],
        },
    ]
    reply = sdk.responses.create(model="gpt-4o", input=items, instructions="one two three")
    assert reply.output_text == "You said: look at this (1 images)"  # the last user message, like chat
    assert reply.usage.input_tokens == words("one two three", "be brief", "first question here") + words(
        "first answer", "two words", "look at this"
    )
    assert reply.usage.output_tokens == 7  # You said: look at this (1 images)


# ---- tools --------------------------------------------------------------------------------------------------


def test_function_calls_round_trip_by_replay_and_by_previous_response_id(sdk: OpenAI) -> None:
    first = sdk.responses.create(model="gpt-4o", input="#fake:tools=3 weather and time", tools=[WEATHER, TIME])
    calls = first.output
    assert [c.type for c in calls] == ["function_call"] * 3
    assert [c.name for c in calls] == ["get_weather", "get_time", "get_weather"]  # the declared tools, in turn
    weather, clock = {"city": "Paris"}, {"zone": "Paris", "offset": 1}  # offset: the call's index
    assert [json.loads(c.arguments) for c in calls] == [weather, clock, weather]
    assert len({c.call_id for c in calls}) == 3 and all(c.id.startswith("fc_") for c in calls)
    assert all(c.status == "completed" for c in calls)
    assert first.usage.output_tokens == 3 * TOOL_CALL_TOKENS
    assert first.usage.input_tokens == 4
    assert [t.name for t in first.tools] == ["get_weather", "get_time"]

    outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": "sunny 20C"} for c in calls]
    replayed = sdk.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "#fake:tools=3 weather and time"},
            *[c.model_dump(exclude_none=True) for c in calls],
            *outputs,
        ],
        tools=[WEATHER, TIME],
    )
    chained = sdk.responses.create(model="gpt-4o", previous_response_id=first.id, input=outputs, tools=[WEATHER, TIME])
    for reply in (replayed, chained):
        assert reply.output_text == "You said: weather and time"  # with the results the model answers in text
        history = words("#fake:tools=3 weather and time", *(c.arguments for c in calls))
        assert reply.usage.input_tokens == history + 3 * words("sunny 20C")


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"parallel_tool_calls": False}, ["get_weather"]),
        ({"tool_choice": "none"}, []),
        ({"tool_choice": {"type": "function", "name": "get_time"}}, ["get_time", "get_time"]),
        ({"tools": []}, []),  # no function to call: the model answers in text
    ],
)
def test_tool_choice_and_parallel_calls_shape_the_calls(sdk: OpenAI, extra: dict, names: list[str]) -> None:
    body = {"model": "gpt-4o", "input": "#fake:tools=2 go", "tools": [WEATHER, TIME], **extra}
    reply = sdk.responses.create(**body)
    assert [o.name for o in reply.output if o.type == "function_call"] == names
    if not names:
        assert reply.output_text == "You said: go"


def test_required_tool_choice_calls_without_a_directive(sdk: OpenAI) -> None:
    reply = sdk.responses.create(model="gpt-4o", input="anything", tools=[TIME], tool_choice="required")
    (only,) = reply.output
    assert only.type == "function_call" and json.loads(only.arguments) == {"zone": "Paris", "offset": 0}


def test_function_call_output_needs_its_call(upstream: FakeOpenAI) -> None:
    body = {"model": "gpt-4o", "input": [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]}
    message = assert_error(post(upstream, body), 400, "input", None)
    assert message == "No tool call found for function call output with call_id call_nope."


def test_web_search_call_with_a_web_search_tool(upstream: FakeOpenAI) -> None:
    body = {
        "model": "gpt-4o",
        "input": "#fake:websearch latest news",
        "tools": [{"type": "web_search_preview"}],
        "include": ["web_search_call.action.sources"],
    }
    reply = created(upstream, body)
    search, message = reply["output"]
    assert search["type"] == "web_search_call" and search["status"] == "completed" and search["id"].startswith("ws_")
    assert search["action"]["type"] == "search" and search["action"]["query"] == "latest news"
    assert search["action"]["sources"][0]["type"] == "url"
    assert message["content"][0]["text"] == "You said: latest news"
    assert reply["tools"] == [{"type": "web_search_preview", "search_context_size": "medium"}]
    assert reply["usage"]["output_tokens"] == 4

    without_tool = created(upstream, {"model": "gpt-4o", "input": "#fake:websearch latest news"})
    assert [o["type"] for o in without_tool["output"]] == ["message"]


# ---- structured output, reasoning, truncation ---------------------------------------------------------------


class Forecast(BaseModel):
    city: str
    degrees: int
    sunny: bool
    hours: list[float]


def test_json_schema_replies_fill_the_schema_and_parse(sdk: OpenAI, upstream: FakeOpenAI) -> None:
    parsed = sdk.responses.parse(model="gpt-4o", input="forecast please", text_format=Forecast)
    assert parsed.output_parsed == Forecast(city="Paris", degrees=0, sunny=True, hours=[0.5])
    assert parsed.text.format.type == "json_schema" and parsed.text.format.name == "Forecast"
    assert parsed.usage.output_tokens == len(parsed.output_text.split())

    text = {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object", "properties": {}}}}
    assert created(upstream, {"model": "m", "input": "hi", "text": text})["output"][0]["content"][0]["text"] == "{}"


def test_json_object_and_the_json_directive(upstream: FakeOpenAI) -> None:
    json_object = {"format": {"type": "json_object"}}
    reply = created(upstream, {"model": "gpt-4o", "input": "answer in JSON", "text": json_object})
    assert reply["output"][0]["content"][0]["text"] == JSON_REPLY and reply["usage"]["output_tokens"] == 2
    message = assert_error(
        post(upstream, {"model": "gpt-4o", "input": "no j-word", "text": json_object}), 400, "input", None
    )
    assert "must contain the word 'json'" in message
    reply = created(upstream, {"model": "gpt-4o", "input": "#fake:json give data"})
    assert json.loads(reply["output"][0]["content"][0]["text"]) == {"answer": 42}


def test_reasoning_items_and_tokens(upstream: FakeOpenAI) -> None:
    body = {
        "model": "o4-mini",
        "input": "#fake:reasoning=5 think",
        "reasoning": {"effort": "high"},
        "include": ["reasoning.encrypted_content"],
    }
    reply = created(upstream, body)
    reasoning, message = reply["output"]
    assert reasoning == {
        "id": reasoning["id"],
        "type": "reasoning",
        "summary": [],
        "encrypted_content": ENCRYPTED_REASONING,
    }
    assert reasoning["id"].startswith("rs_") and message["content"][0]["text"] == "You said: think"
    usage = reply["usage"]
    assert usage["output_tokens_details"] == {"reasoning_tokens": 5}
    assert usage["output_tokens"] == 5 + 3 and usage["total_tokens"] == usage["input_tokens"] + 8
    assert reply["reasoning"] == {"effort": "high", "summary": None}
    plain = created(upstream, {**body, "include": []})
    assert "encrypted_content" not in plain["output"][0]


@pytest.mark.parametrize(
    ("directive", "text_words", "reasoning_tokens", "types"),
    [
        ("", 16, 0, ["message"]),
        ("#fake:reasoning=10 ", 6, 10, ["reasoning", "message"]),
        ("#fake:reasoning=30 ", 0, 16, ["reasoning"]),  # the thinking used the whole budget
    ],
)
def test_max_output_tokens_truncates_to_incomplete(
    upstream: FakeOpenAI, directive: str, text_words: int, reasoning_tokens: int, types: list[str]
) -> None:
    reply = created(upstream, {"model": "gpt-4o", "input": directive + LONG_INPUT, "max_output_tokens": 16})
    assert reply["status"] == "incomplete" and reply["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [o["type"] for o in reply["output"]] == types
    if text_words:
        message = reply["output"][-1]
        assert message["status"] == "incomplete"
        assert message["content"][0]["text"] == " ".join(["You", "said:", *LONG_INPUT.split()][:text_words])
    usage = reply["usage"]
    assert usage["output_tokens"] == 16 and usage["output_tokens_details"]["reasoning_tokens"] == reasoning_tokens
    assert usage["input_tokens"] == words(directive, LONG_INPUT)


def test_max_output_tokens_has_a_minimum_of_16(upstream: FakeOpenAI) -> None:
    reply = post(upstream, {"model": "gpt-4o", "input": "hi", "max_output_tokens": 15})
    message = assert_error(reply, 400, "max_output_tokens", "integer_below_min_value")
    assert (
        message
        == "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 15 instead."
    )
    assert created(upstream, {"model": "gpt-4o", "input": "hi", "max_output_tokens": 16})["status"] == "completed"


# ---- stored responses ---------------------------------------------------------------------------------------


def test_previous_response_id_chains_count_the_stored_conversation(sdk: OpenAI, upstream: FakeOpenAI) -> None:
    first = sdk.responses.create(model="gpt-4o", input="alpha beta gamma", instructions="not carried over")
    assert first.usage.input_tokens == 6
    second = sdk.responses.create(model="gpt-4o", input="delta epsilon", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.instructions is None
    assert second.output_text == "You said: delta epsilon"
    assert second.usage.input_tokens == words("alpha beta gamma", "You said: alpha beta gamma", "delta epsilon")
    third = sdk.responses.create(model="gpt-4o", input="zeta", previous_response_id=second.id)
    assert third.usage.input_tokens == second.usage.input_tokens + words("You said: delta epsilon", "zeta")

    stored = upstream.stored_responses[second.id]
    assert stored.response["id"] == second.id
    assert [item.get("role") for item in stored.conversation] == ["user", "assistant", "user", "assistant"]

    # An item of a stored response, by reference.
    referenced = sdk.responses.create(
        model="gpt-4o", input=[{"type": "item_reference", "id": first.output[0].id}, {"role": "user", "content": "ok"}]
    )
    assert referenced.usage.input_tokens == words("You said: alpha beta gamma", "ok")


def test_unknown_or_unstored_previous_response_is_404(sdk: OpenAI, upstream: FakeOpenAI) -> None:
    reply = post(upstream, {"model": "gpt-4o", "input": "hi", "previous_response_id": "resp_unknown"})
    assert reply.status == 404
    assert reply.json() == {
        "error": {
            "message": "Previous response with id 'resp_unknown' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
    }
    unstored = sdk.responses.create(model="gpt-4o", input="forget me", store=False)
    assert unstored.store is False and unstored.id not in upstream.stored_responses
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.responses.create(model="gpt-4o", input="hi", previous_response_id=unstored.id)
    assert raised.value.code == "previous_response_not_found"
    reply = post(upstream, {"model": "gpt-4o", "input": [{"type": "item_reference", "id": "msg_nope"}]})
    assert assert_error(reply, 404, "input", None) == "Item with id 'msg_nope' not found."


# ---- refusals -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "param", "code", "message"),
    [
        ({"frequency_penalty": 1}, "frequency_penalty", "unknown_parameter", "Unknown parameter: 'frequency_penalty'."),
        ({"model": None}, "model", "missing_required_parameter", "Missing required parameter: 'model'."),
        (
            {"input": {"text": "x"}},
            "input",
            "invalid_type",
            "Invalid type for 'input': expected one of a string or an array of input items, but got an object instead.",
        ),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role", "invalid_value", None),
        (
            {"input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
            "input[0].content[0]",
            "invalid_value",
            "Invalid value: 'input_text'. Supported values are: 'output_text' and 'refusal'.",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
            "input[0].content[0]",
            "invalid_value",
            None,
        ),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
            "missing_required_parameter",
            None,
        ),
        ({"input": [{"type": "banana"}]}, "input[0].type", "invalid_value", None),
        ({"tools": [{"type": "telepathy"}]}, "tools[0].type", "invalid_value", None),
        ({"tools": [{"type": "function"}]}, "tools[0].name", "missing_required_parameter", None),
        (
            {"text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
            "missing_required_parameter",
            None,
        ),
        (
            {"text": {"format": {"type": "json_schema", "name": "x"}}},
            "text.format.schema",
            "missing_required_parameter",
            None,
        ),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type", "invalid_value", None),
        ({"temperature": 3}, "temperature", "decimal_above_max_value", None),
        ({"top_p": -0.5}, "top_p", "decimal_below_min_value", None),
        ({"temperature": "hot"}, "temperature", "invalid_type", None),
        ({"max_output_tokens": "many"}, "max_output_tokens", "invalid_type", None),
        ({"tool_choice": "sometimes"}, "tool_choice", "invalid_value", None),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "invalid_value", None),
        ({"truncation": "middle"}, "truncation", "invalid_value", None),
        ({"include": ["everything"]}, "include[0]", "invalid_value", None),
        (
            {"store": "yes"},
            "store",
            "invalid_type",
            "Invalid type for 'store': expected a boolean, but got a string instead.",
        ),
        ({"metadata": {"n": 1}}, "metadata.n", "invalid_type", None),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties", None),
    ],
)
def test_bad_requests_are_refused_like_openai(
    upstream: FakeOpenAI, change: dict, param: str, code: str, message: str | None
) -> None:
    body = {k: v for k, v in {"model": "gpt-4o", "input": "hi", **change}.items() if v is not None}
    got = assert_error(post(upstream, body), 400, param, code)
    if message is not None:
        assert got == message


def test_unknown_tool_type_lists_the_supported_ones(sdk: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.responses.create(model="gpt-4o", input="hi", tools=[{"type": "telepathy"}])  # type: ignore[list-item]
    assert raised.value.param == "tools[0].type" and raised.value.code == "invalid_value"
    assert raised.value.message.startswith("Error code: 400")
    assert "Invalid value: 'telepathy'. Supported values are: 'function', 'file_search'" in raised.value.message
    assert "'web_search_preview'" in raised.value.message


def test_the_upstream_key_is_required(upstream: FakeOpenAI) -> None:
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
        reply = post(upstream, {"model": "gpt-4o", "input": "auth-marker-responses"}, headers)
        assert reply.status == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    received = [r for r in upstream.requests_with("auth-marker-responses")]
    assert [r.path for r in received] == ["/v1/responses"] * 2
    with pytest.raises(openai.AuthenticationError):
        OpenAI(api_key="sk-wrong", base_url=upstream.base_url, max_retries=0).responses.create(model="m", input="x")


def test_error_sleep_cached_and_nousage_directives(upstream: FakeOpenAI) -> None:
    reply = post(upstream, {"model": "gpt-4o", "input": "#fake:error=429 slow down"})
    assert reply.status == 429 and reply.json()["error"]["code"] == "rate_limit_exceeded"
    assert post(upstream, {"model": "gpt-4o", "input": "#fake:error=503"}).status == 503
    started = time.monotonic()
    created(upstream, {"model": "gpt-4o", "input": "#fake:sleep=0.3 wait"})
    assert time.monotonic() - started >= 0.3
    usage = created(upstream, {"model": "gpt-4o", "input": "#fake:cached=4 a b c d e"})["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == 4 and usage["input_tokens"] == 6
    assert created(upstream, {"model": "gpt-4o", "input": "#fake:nousage quiet"})["usage"] is None


# ---- streaming ----------------------------------------------------------------------------------------------

STREAMS = {
    "text": {"input": "stream these five words please", "instructions": "be quick"},
    "tools": {"input": "#fake:tools=2 call them", "tools": [WEATHER, TIME]},
    "reasoning": {"input": "#fake:reasoning=4 ponder this", "include": ["reasoning.encrypted_content"]},
    "websearch": {"input": "#fake:websearch find it", "tools": [{"type": "web_search_preview"}]},
    "json_schema": {
        "input": "structured",
        "text": {"format": {"type": "json_schema", "name": "w", "schema": WEATHER["parameters"], "strict": True}},
    },
    "incomplete": {"input": LONG_INPUT, "max_output_tokens": 16},
}


@pytest.mark.parametrize("case", list(STREAMS))
def test_stream_events_validate_and_rebuild_the_response(upstream: FakeOpenAI, case: str) -> None:
    body = {"model": "gpt-4o", **STREAMS[case]}
    events = streamed(upstream, body)
    for event in events:
        EVENTS.validate_python(event)  # every event is one of the SDK's typed stream events
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    last = events[-1]
    assert last["type"] == ("response.incomplete" if case == "incomplete" else "response.completed")
    final = last["response"]
    assert all(e["response"]["id"] == final["id"] for e in events if "response" in e)
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[0]["response"]["usage"] is None

    # Items open and close in order, every event of an item carries its id and output_index, and the deltas
    # add up to the finished item.
    added = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.added"}
    done = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.done"}
    assert list(added) == list(done) == list(range(len(final["output"])))
    assert [done[i] for i in sorted(done)] == final["output"]
    assert all(added[i]["id"] == done[i]["id"] and added[i]["type"] == done[i]["type"] for i in added)
    for e in events:
        if "item_id" in e:
            assert added[e["output_index"]]["id"] == e["item_id"]
    for index, item in done.items():
        if item["type"] == "message":
            deltas = [
                e["delta"] for e in events if e["type"] == "response.output_text.delta" and e["output_index"] == index
            ]
            assert len(deltas) > 1 or len(item["content"][0]["text"].split()) <= 1
            assert "".join(deltas) == item["content"][0]["text"]
        if item["type"] == "function_call":
            deltas = [
                e["delta"]
                for e in events
                if e["type"] == "response.function_call_arguments.delta" and e["output_index"] == index
            ]
            assert "".join(deltas) == item["arguments"] and added[index]["arguments"] == ""

    # The same request unstreamed gives the same output and usage (ids aside).
    plain = created(upstream, body)
    strip = lambda items: [{k: v for k, v in i.items() if k not in ("id", "call_id")} for i in items]  # noqa: E731
    assert strip(plain["output"]) == strip(final["output"]) and plain["usage"] == final["usage"]
    assert plain["status"] == final["status"]


def test_stream_event_sequence_for_text(upstream: FakeOpenAI) -> None:
    events = streamed(upstream, {"model": "gpt-4o", "input": "one two"})
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,  # You / said: / one / two
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == [
        "You",
        " said:",
        " one",
        " two",
    ]


def test_stream_with_the_sdk_accumulator(sdk: OpenAI, upstream: FakeOpenAI) -> None:
    seen = []
    with sdk.responses.stream(model="gpt-4o", input="accumulate me", instructions="x y") as stream:
        for event in stream:
            seen.append(event.type)
        final = stream.get_final_response()
    assert seen[0] == "response.created" and seen[-1] == "response.completed"
    assert final.output_text == "You said: accumulate me" and final.status == "completed"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 4)
    assert final.id in upstream.stored_responses  # a streamed response can be chained on at once
    chained = sdk.responses.create(model="gpt-4o", input="next", previous_response_id=final.id)
    assert chained.usage.input_tokens == words("accumulate me", "You said: accumulate me", "next")

    with sdk.responses.stream(model="gpt-4o", input="#fake:tools=2 go", tools=[WEATHER]) as stream:
        calls = stream.get_final_response().output
    assert [(c.type, c.name, json.loads(c.arguments)) for c in calls] == [
        ("function_call", "get_weather", {"city": "Paris"})
    ] * 2

    with sdk.responses.stream(model="gpt-4o", input="forecast", text_format=Forecast) as stream:
        assert stream.get_final_response().output_parsed == Forecast(city="Paris", degrees=0, sunny=True, hours=[0.5])

    # Like OpenAI's, an incomplete response ends with response.incomplete, which the accumulator does not take
    # as the end of a completed response.
    with sdk.responses.stream(model="gpt-4o", input=LONG_INPUT, max_output_tokens=16) as stream:
        types = [event.type for event in stream]
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    assert types[-1] == "response.incomplete"


def test_cut_stream_drops_after_a_few_events_and_stores_nothing(upstream: FakeOpenAI) -> None:
    body = {"model": "gpt-4o", "input": "#fake:cut cut me off please", "stream": True}
    connection = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=10)
    connection.request("POST", "/v1/responses", json.dumps(body), {**AUTH, "Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    received = b""
    with pytest.raises(http.client.IncompleteRead):  # the chunked body never ends
        while piece := response.read1(65536):
            received += piece
    connection.close()
    events = sse(received)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert events[0]["response"]["id"] not in upstream.stored_responses
