"""Pure-function tests of the Responses API codec (llmrelay.formats.responses), no network.

Requests translated to the internal chat shape (and every malformed field a 400 naming it), replies and
streams encoded back, the same-format passthrough tap, and the conversation history kept for
`previous_response_id`. What the codec emits is checked with the openai SDK's own types, and the SDK itself
is driven over an in-memory transport to read replies and streams the way a client would.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseInputItemParam, ResponseStreamEvent
from pydantic import TypeAdapter

from llmrelay.formats.openai import choice_chunk
from llmrelay.formats.responses import (
    RESPONSES_CLIENT,
    ChatToResponsesStream,
    ResponsesInput,
    ResponsesStreamTap,
    chat_to_responses_reply,
    encode_responses_reply,
    input_items,
    new_response_id,
    output_items_as_input,
    response_echo,
    responses_reply_usage,
    responses_stream_error,
    responses_to_chat,
    usage_from_responses,
    usage_to_responses,
)
from llmrelay.metering.pricing import Usage
from llmrelay.relay.errors import RelayError, bad_request, insufficient_quota, upstream_timeout
from llmrelay.relay.request import ChatRequest
from tests.mutations import ABSENT, HOSTILE_VALUES, deep, mutated, paths

MODEL = "gpt-relay-test"
USAGE = Usage(prompt_tokens=40, completion_tokens=12, cached_tokens=30)
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
INPUT_ITEM: TypeAdapter[Any] = TypeAdapter(ResponseInputItemParam)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PNG = "data:image/png;base64,iVBORw0KGgo="


# ------------------------------------------------------------------------------------------------- helpers


def body_of(**fields: Any) -> dict[str, Any]:
    """A valid Responses request with `fields` set."""
    return {"model": MODEL, "input": "hi", **fields}


def chat_of(**fields: Any) -> dict[str, Any]:
    return responses_to_chat(body_of(**fields)).chat


def messages_of(items: Any, **fields: Any) -> list[dict[str, Any]]:
    return chat_of(input=items, **fields)["messages"]


def request_for(native: dict[str, Any] | None = None) -> ChatRequest:
    """The ChatRequest the surface makes of a Responses body (as the lead wires it)."""
    native = native if native is not None else body_of()
    parsed = responses_to_chat(native)
    raw = b"{}"  # what the client sent matters only to a forwarding channel
    return ChatRequest(
        "responses", raw, parsed.chat, native["model"], parsed.stream, True, parsed.max_output_tokens, 1, native=native
    )


def completion_of(message: dict[str, Any], finish_reason: str | None = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
    }


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return choice_chunk("chatcmpl-1", 1, MODEL, 0, delta, finish_reason)


def fragment(index: int | None, arguments: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    """One streamed tool-call delta, OpenAI-style (id and name only in a call's first fragment)."""
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    out: dict[str, Any] = {"function": function}
    if index is not None:
        out["index"] = index
    if call_id is not None:
        out.update(id=call_id, type="function")
    return out


def reply(message: dict[str, Any], finish_reason: str | None = "stop", native: dict[str, Any] | None = None) -> Any:
    """A completion's Response, checked to encode and to be read by the openai SDK."""
    response = chat_to_responses_reply(
        completion_of(message, finish_reason), USAGE, request_for(native), "resp_test", 1700000000
    )
    return Response.model_validate_json(orjson.dumps(response))


def encode(chunks: list[dict[str, Any]], usage: Usage = USAGE, native: dict[str, Any] | None = None) -> bytes:
    encoder = ChatToResponsesStream(request_for(native), "resp_stream", 1700000000)
    return b"".join(encoder.feed(c) for c in chunks) + encoder.finish(usage)


def parse_stream(raw: bytes) -> list[dict[str, Any]]:
    """A stream's events, each checked: framed `event: <type>` + `data:`, a valid openai SDK stream event,
    numbered 0, 1, 2, ...; items added in output_index order, and every event about an item naming the id
    it was added with."""
    events = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: "), block
        event = orjson.loads(data[6:])
        assert event["type"] == name[7:].decode()
        STREAM_EVENT.validate_python(event)
        events.append(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    item_ids: dict[int, str] = {}
    for event in events:
        if event["type"] == "response.output_item.added":
            assert event["output_index"] == len(item_ids)
            item_ids[event["output_index"]] = event["item"]["id"]
        elif "item" in event:
            assert item_ids[event["output_index"]] == event["item"]["id"]
        elif "item_id" in event:
            assert item_ids[event["output_index"]] == event["item_id"]
    return events


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def final_response(events: list[dict[str, Any]]) -> Any:
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    return Response.model_validate(events[-1]["response"])


def sdk_client(status: int, body: bytes, content_type: str = "application/json") -> openai.OpenAI:
    """An openai SDK client whose every request is answered in memory with `body`."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/responses"
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)

    transport = httpx2.MockTransport(answer)
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://relay.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


def assert_400(body: Any, param: str | None) -> RelayError:
    with pytest.raises(RelayError) as caught:
        responses_to_chat(body)
    error = caught.value
    assert error.status == 400 and error.param == param, (error.param, error.message)
    if param is not None:
        assert error.message.startswith(f"{param}: ")
    return error


# ------------------------------------------------------------------------------ requests: Responses → chat

SCHEMA_TOOL = {"type": "function", "name": "get_weather", "description": "Weather.", "parameters": SCHEMA}
CHAT_SCHEMA_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather.", "parameters": SCHEMA},
}

RICH = {
    "model": MODEL,
    "instructions": "Be brief.",
    "input": [
        {"role": "developer", "content": "Use tools."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": PNG, "detail": "low"},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "original"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Look first."}]},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_b", "name": "get_time", "arguments": "{}", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "noon"}]},
        {"role": "user", "content": "Thanks. And tomorrow?"},
    ],
    "tools": [{**SCHEMA_TOOL, "strict": True}, {"type": "function", "name": "get_time", "parameters": None}],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "text": {"format": {"type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True}, "verbosity": "low"},
    "max_output_tokens": 256,
    "temperature": 0.5,
    "top_p": 0.9,
    "reasoning": {"effort": "low", "summary": "auto"},
    "metadata": {"trace": "t-1"},
    "user": "u-1",
    "store": False,
    "truncation": "auto",
    "include": ["reasoning.encrypted_content"],
    "stream": True,
    "stream_options": {"include_obfuscation": False},
    "previous_response_id": "resp_prev",
    "background": False,
    "service_tier": "auto",  # known to the API, with no chat counterpart here: ignored
    "some_future_field": {"x": 1},  # unknown: ignored
}

RICH_CHAT = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Use tools."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [call("call_a", "get_weather", '{"city":"Paris"}'), call("call_b", "get_time", "{}")],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
        {"role": "user", "content": "Thanks. And tomorrow?"},
    ],
    "tools": [
        {"type": "function", "function": {**CHAT_SCHEMA_TOOL["function"], "strict": True}},
        {"type": "function", "function": {"name": "get_time"}},
    ],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 256,
    "reasoning_effort": "low",
    "user": "u-1",
    "verbosity": "low",
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
    },
    "stream": True,
    "stream_options": {"include_usage": True},
}


def test_responses_to_chat_whole_body() -> None:
    parsed = responses_to_chat(copy.deepcopy(RICH))
    assert parsed.chat == RICH_CHAT
    assert parsed.stream is True and parsed.max_output_tokens == 256
    assert parsed.previous_response_id == "resp_prev" and parsed.store is False and parsed.background is False
    assert parsed.builtin_tools == () and parsed.untranslatable is None


def test_string_input_is_one_user_message_and_defaults() -> None:
    parsed = responses_to_chat({"model": MODEL, "input": "Hello"})
    assert parsed.chat == {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}]}
    assert (parsed.stream, parsed.max_output_tokens, parsed.previous_response_id) == (False, None, None)
    assert parsed.store is True and parsed.background is False  # the API stores responses unless told not to


REQUEST_FIELDS = [
    pytest.param(
        {"instructions": "Be brief."},
        "messages",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        id="instructions",
    ),
    pytest.param(
        {"instructions": ""}, "messages", [{"role": "user", "content": "hi"}], id="empty-instructions-left-out"
    ),
    pytest.param({"max_output_tokens": 10.0}, "max_tokens", 10, id="max-output-tokens-whole-float"),
    pytest.param({"temperature": 0}, "temperature", 0, id="temperature"),
    pytest.param({"top_p": 0.5}, "top_p", 0.5, id="top-p"),
    pytest.param({"user": "u"}, "user", "u", id="user"),
    pytest.param({"reasoning": {"effort": "high"}}, "reasoning_effort", "high", id="reasoning-effort"),
    pytest.param({"reasoning": {"effort": None, "summary": "concise"}}, "reasoning_effort", ABSENT, id="summary-only"),
    pytest.param(
        {"text": {"format": {"type": "json_object"}}}, "response_format", {"type": "json_object"}, id="json-object"
    ),
    pytest.param({"text": {"format": {"type": "text"}}}, "response_format", ABSENT, id="text-format"),
    pytest.param(
        {"text": {"format": {"type": "json_schema", "name": "city", "description": "A city.", "schema": SCHEMA}}},
        "response_format",
        {"type": "json_schema", "json_schema": {"name": "city", "description": "A city.", "schema": SCHEMA}},
        id="json-schema",
    ),
    pytest.param({"text": {"verbosity": "high"}}, "verbosity", "high", id="verbosity"),
    pytest.param({"stream": False}, "stream", ABSENT, id="stream-false"),
    pytest.param({"stream": True}, "stream_options", {"include_usage": True}, id="stream-asks-usage"),
    pytest.param({"metadata": {"a": "b"}}, "metadata", ABSENT, id="metadata-echo-only"),
    pytest.param({"store": True}, "store", ABSENT, id="store-not-chat-store"),
    pytest.param({"parallel_tool_calls": False}, "parallel_tool_calls", ABSENT, id="parallel-without-tools"),
    pytest.param({"tool_choice": "required"}, "tool_choice", ABSENT, id="tool-choice-without-tools"),
    pytest.param({"tools": []}, "tools", ABSENT, id="empty-tools-left-out"),
]


@pytest.mark.parametrize(("fields", "key", "expected"), REQUEST_FIELDS)
def test_request_fields(fields: dict[str, Any], key: str, expected: Any) -> None:
    chat = chat_of(**fields)
    if expected is ABSENT:
        assert key not in chat
    else:
        assert chat[key] == expected


def test_message_items_with_images_and_every_role() -> None:
    items = [
        {"role": "system", "content": [{"type": "input_text", "text": "sys"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "http://x.test/a.jpg"}]},
        {"role": "assistant", "content": "plain"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}, {"type": "input_text", "text": "!"}]},
        {"role": "assistant", "content": []},  # nothing said: dropped, as an empty assistant turn means nothing
    ]
    assert messages_of(items) == [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x.test/a.jpg"}}]},
        {"role": "assistant", "content": "plain"},
        {"role": "assistant", "content": "No.!"},
    ]


def test_function_calls_merge_into_one_assistant_turn() -> None:
    items = [
        {"role": "user", "content": "weather and time?"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "reasoning", "id": "rs", "summary": []},  # between calls: dropped, the turn stays one
        {"type": "function_call", "call_id": "c2", "name": "t", "arguments": '{"tz":"UTC"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sun"},
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
        },
        {"type": "function_call", "call_id": "c3", "name": "w", "arguments": "{}"},  # a new turn after results
    ]
    assert messages_of(items) == [
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "content": None, "tool_calls": [call("c1", "w", "{}"), call("c2", "t", '{"tz":"UTC"}')]},
        {"role": "tool", "tool_call_id": "c1", "content": "sun"},
        {"role": "tool", "tool_call_id": "c2", "content": "a\nb"},
        {"role": "assistant", "content": None, "tool_calls": [call("c3", "w", "{}")]},
    ]


TOOL_CHOICES = [
    pytest.param("auto", "auto", id="auto"),
    pytest.param("none", "none", id="none"),
    pytest.param("required", "required", id="required"),
    pytest.param(
        {"type": "function", "name": "get_weather"},
        {"type": "function", "function": {"name": "get_weather"}},
        id="named-function",
    ),
    pytest.param(
        {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_weather"}]},
        {
            "type": "allowed_tools",
            "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]},
        },
        id="allowed-tools",
    ),
]


@pytest.mark.parametrize(("choice", "expected"), TOOL_CHOICES)
def test_tool_choice_forms(choice: Any, expected: Any) -> None:
    parsed = responses_to_chat(body_of(tools=[SCHEMA_TOOL], tool_choice=choice))
    assert parsed.chat["tools"] == [CHAT_SCHEMA_TOOL]
    assert parsed.chat["tool_choice"] == expected
    assert parsed.untranslatable is None


def test_function_tool_keeps_strict_only_when_set() -> None:
    tools = [{**SCHEMA_TOOL, "strict": False}, {"type": "function", "name": "bare", "description": None}]
    assert chat_of(tools=tools)["tools"] == [
        {"type": "function", "function": {**CHAT_SCHEMA_TOOL["function"], "strict": False}},
        {"type": "function", "function": {"name": "bare"}},
    ]


def test_builtin_tools_are_recorded_not_refused() -> None:
    tools = [
        {"type": "web_search"},
        SCHEMA_TOOL,
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "web_search"},
        {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.example"},
    ]
    parsed = responses_to_chat(body_of(tools=tools, tool_choice={"type": "image_generation"}))
    assert parsed.builtin_tools == ("web_search", "file_search", "mcp", "image_generation")
    assert parsed.untranslatable is not None
    message, param = parsed.untranslatable
    assert param == "tools[0]" and message.startswith("tools[0]: ") and "'web_search'" in message
    assert parsed.chat["tools"] == [CHAT_SCHEMA_TOOL] and "tool_choice" not in parsed.chat


def test_untranslatable_error_reads_well_as_the_relay_raises_it() -> None:
    """The lead raises `bad_request(f"{message} (the model ... is not served ...)", param)`."""
    message, param = responses_to_chat(body_of(tools=[{"type": "code_interpreter"}])).untranslatable or ("", "")
    error = bad_request(f"{message} (the model `claude` is not served by an upstream that has it).", param)
    assert error.param == "tools[0]"
    assert error.message == (
        "tools[0]: the built-in tool 'code_interpreter' is only available on OpenAI's Responses API "
        "(the model `claude` is not served by an upstream that has it)."
    )


OPENAI_ONLY = [
    pytest.param({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", id="item-reference"),
    pytest.param(
        {"input": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}]}, "input[0]", id="hosted-call"
    ),
    pytest.param({"input": [{"type": "future_item"}]}, "input[0]", id="unknown-item-type"),
    pytest.param(
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}]}]},
        "input[0].content[0].file_id",
        id="image-file-id",
    ),
    pytest.param(
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
        "input[0].content[0]",
        id="input-file",
    ),
    pytest.param(
        {
            "input": [
                {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image", "image_url": PNG}]}
            ]
        },
        "input[0].output",
        id="image-in-tool-output",
    ),
    pytest.param({"prompt": {"id": "pmpt_1"}}, "prompt", id="stored-prompt"),
    pytest.param({"conversation": "conv_1"}, "conversation", id="conversation"),
    pytest.param({"tool_choice": {"type": "file_search"}}, "tool_choice", id="builtin-tool-choice"),
    pytest.param(
        {"tools": [SCHEMA_TOOL], "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "mcp"}]}},
        "tool_choice.tools[0]",
        id="builtin-allowed-tool",
    ),
]


@pytest.mark.parametrize(("fields", "param"), OPENAI_ONLY)
def test_openai_only_features_are_noted_for_the_relay(fields: dict[str, Any], param: str) -> None:
    parsed = responses_to_chat(body_of(**fields))
    assert parsed.untranslatable is not None
    message, where = parsed.untranslatable
    assert where == param and message.startswith(f"{param}: ") and "OpenAI's Responses API" in message


def test_first_openai_only_feature_is_the_one_named() -> None:
    parsed = responses_to_chat(
        body_of(input=[{"type": "item_reference", "id": "x"}], tools=[{"type": "web_search"}], prompt={"id": "p"})
    )
    assert parsed.untranslatable is not None and parsed.untranslatable[1] == "input[0]"


USER_PART = "input[0].content[0]"


def user_part(part: Any) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": [part]}]}


MALFORMED = [
    pytest.param([], None, id="body-not-object"),
    pytest.param({"input": "hi"}, "model", id="model-missing"),
    pytest.param(body_of(model=5), "model", id="model-number"),
    pytest.param(body_of(model=""), "model", id="model-empty"),
    pytest.param({"model": MODEL}, "input", id="input-missing"),
    pytest.param(body_of(input=[]), "input", id="input-empty"),
    pytest.param(body_of(input=5), "input", id="input-number"),
    pytest.param(body_of(input=[5]), "input[0]", id="item-not-object"),
    pytest.param(body_of(input=[{"type": 5}]), "input[0].type", id="item-type-number"),
    pytest.param(body_of(input=[{"role": "bot", "content": "x"}]), "input[0].role", id="bad-role"),
    pytest.param(body_of(input=[{"role": ["user"], "content": "x"}]), "input[0].role", id="role-list"),
    pytest.param(body_of(input=[{"role": "user", "content": 5}]), "input[0].content", id="content-number"),
    pytest.param(body_of(input=[{"role": "user"}]), "input[0].content", id="content-missing"),
    pytest.param(body_of(**user_part(5)), USER_PART, id="part-not-object"),
    pytest.param(body_of(**user_part({"type": None})), f"{USER_PART}.type", id="part-type-null"),
    pytest.param(body_of(**user_part({"type": "input_text", "text": 5})), f"{USER_PART}.text", id="text-number"),
    pytest.param(body_of(**user_part({"type": "input_image"})), f"{USER_PART}.image_url", id="image-missing"),
    pytest.param(
        body_of(**user_part({"type": "input_image", "image_url": 5})), f"{USER_PART}.image_url", id="image-url-number"
    ),
    pytest.param(
        body_of(**user_part({"type": "input_image", "image_url": "ftp://x/a.png"})),
        f"{USER_PART}.image_url.url",
        id="image-url-scheme",
    ),
    pytest.param(
        body_of(**user_part({"type": "input_image", "image_url": "data:image/png,abc"})),
        f"{USER_PART}.image_url.url",
        id="data-uri-not-base64",
    ),
    pytest.param(
        body_of(**user_part({"type": "input_image", "image_url": PNG, "detail": 1})), f"{USER_PART}.detail", id="detail"
    ),
    pytest.param(
        body_of(**user_part({"type": "input_image", "file_id": 5})), f"{USER_PART}.file_id", id="file-id-number"
    ),
    pytest.param(
        body_of(input=[{"role": "assistant", "content": [{"type": "input_image", "image_url": PNG}]}]),
        f"{USER_PART}.type",
        id="assistant-image",
    ),
    pytest.param(
        body_of(input=[{"role": "assistant", "content": [{"type": "output_text", "text": None}]}]),
        f"{USER_PART}.text",
        id="assistant-text-null",
    ),
    pytest.param(
        body_of(input=[{"role": "assistant", "content": [{"type": "refusal"}]}]),
        f"{USER_PART}.refusal",
        id="assistant-refusal-missing",
    ),
    pytest.param(
        body_of(input=[{"type": "function_call", "name": "f", "arguments": "{}"}]), "input[0].call_id", id="call-id"
    ),
    pytest.param(
        body_of(input=[{"type": "function_call", "call_id": "c", "name": "", "arguments": "{}"}]),
        "input[0].name",
        id="call-name-empty",
    ),
    pytest.param(
        body_of(input=[{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]),
        "input[0].arguments",
        id="call-arguments-object",
    ),
    pytest.param(
        body_of(input=[{"type": "function_call_output", "output": "x"}]), "input[0].call_id", id="output-call-id"
    ),
    pytest.param(
        body_of(input=[{"type": "function_call_output", "call_id": "c", "output": 5}]),
        "input[0].output",
        id="output-number",
    ),
    pytest.param(
        body_of(input=[{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text"}]}]),
        "input[0].output[0].text",
        id="output-part-text",
    ),
    pytest.param(body_of(instructions=5), "instructions", id="instructions"),
    pytest.param(body_of(tools=5), "tools", id="tools-number"),
    pytest.param(body_of(tools=[5]), "tools[0]", id="tool-not-object"),
    pytest.param(body_of(tools=[{"name": "f"}]), "tools[0].type", id="tool-type-missing"),
    pytest.param(body_of(tools=[{"type": "function"}]), "tools[0].name", id="tool-name-missing"),
    pytest.param(
        body_of(tools=[{"type": "function", "name": "f", "description": 5}]),
        "tools[0].description",
        id="tool-description",
    ),
    pytest.param(
        body_of(tools=[{"type": "function", "name": "f", "parameters": []}]),
        "tools[0].parameters",
        id="tool-parameters",
    ),
    pytest.param(
        body_of(tools=[{"type": "function", "name": "f", "parameters": deep(300)}]),
        "tools[0].parameters",
        id="tool-parameters-too-deep",
    ),
    pytest.param(
        body_of(tools=[{"type": "function", "name": "f", "strict": "yes"}]), "tools[0].strict", id="tool-strict"
    ),
    pytest.param(body_of(tool_choice="sometimes"), "tool_choice", id="tool-choice-word"),
    pytest.param(body_of(tool_choice=5), "tool_choice", id="tool-choice-number"),
    pytest.param(body_of(tool_choice={"type": "function"}), "tool_choice.name", id="tool-choice-name"),
    pytest.param(body_of(tool_choice={"type": 5}), "tool_choice.type", id="tool-choice-type"),
    pytest.param(
        body_of(tool_choice={"type": "allowed_tools", "mode": "x", "tools": []}), "tool_choice.mode", id="allowed-mode"
    ),
    pytest.param(
        body_of(tool_choice={"type": "allowed_tools", "mode": "auto"}), "tool_choice.tools", id="allowed-tools-missing"
    ),
    pytest.param(
        body_of(tool_choice={"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function"}]}),
        "tool_choice.tools[0].name",
        id="allowed-tool-name",
    ),
    pytest.param(
        body_of(tool_choice={"type": "allowed_tools", "mode": "auto", "tools": [{"type": None}]}),
        "tool_choice.tools[0].type",
        id="allowed-tool-type",
    ),
    pytest.param(body_of(parallel_tool_calls="yes"), "parallel_tool_calls", id="parallel"),
    pytest.param(body_of(text=5), "text", id="text"),
    pytest.param(body_of(text={"format": 5}), "text.format", id="text-format"),
    pytest.param(body_of(text={"format": {"type": "xml"}}), "text.format.type", id="text-format-type"),
    pytest.param(
        body_of(text={"format": {"type": "json_schema", "schema": SCHEMA}}), "text.format.name", id="schema-name"
    ),
    pytest.param(
        body_of(text={"format": {"type": "json_schema", "name": "n"}}), "text.format.schema", id="schema-missing"
    ),
    pytest.param(
        body_of(text={"format": {"type": "json_schema", "name": "n", "schema": SCHEMA, "strict": 1}}),
        "text.format.strict",
        id="schema-strict",
    ),
    pytest.param(
        body_of(text={"format": {"type": "json_schema", "name": "n", "schema": SCHEMA, "description": []}}),
        "text.format.description",
        id="schema-description",
    ),
    pytest.param(body_of(text={"verbosity": "loud"}), "text.verbosity", id="verbosity"),
    pytest.param(body_of(max_output_tokens=0), "max_output_tokens", id="max-output-zero"),
    pytest.param(body_of(max_output_tokens=1.5), "max_output_tokens", id="max-output-fraction"),
    pytest.param(body_of(max_output_tokens="10"), "max_output_tokens", id="max-output-string"),
    pytest.param(body_of(max_output_tokens=True), "max_output_tokens", id="max-output-bool"),
    pytest.param(body_of(max_output_tokens=2**70), "max_output_tokens", id="max-output-beyond-64-bits"),
    pytest.param(body_of(temperature="hot"), "temperature", id="temperature"),
    pytest.param(body_of(temperature=2**70), "temperature", id="temperature-beyond-64-bits"),
    pytest.param(body_of(top_p=True), "top_p", id="top-p-bool"),
    pytest.param(body_of(reasoning=5), "reasoning", id="reasoning"),
    pytest.param(body_of(reasoning={"effort": "extreme"}), "reasoning.effort", id="reasoning-effort"),
    pytest.param(body_of(reasoning={"summary": 5}), "reasoning.summary", id="reasoning-summary"),
    pytest.param(body_of(metadata=[]), "metadata", id="metadata"),
    pytest.param(body_of(metadata={"k": 1}), "metadata.k", id="metadata-value"),
    pytest.param(body_of(user=5), "user", id="user"),
    pytest.param(body_of(stream="yes"), "stream", id="stream"),
    pytest.param(body_of(store=1), "store", id="store"),
    pytest.param(body_of(background="no"), "background", id="background"),
    pytest.param(body_of(previous_response_id=5), "previous_response_id", id="previous-response-id"),
    pytest.param(body_of(previous_response_id=""), "previous_response_id", id="previous-response-id-empty"),
    pytest.param(body_of(truncation="sometimes"), "truncation", id="truncation"),
    pytest.param(body_of(include="x"), "include", id="include"),
    pytest.param(body_of(include=[1]), "include[0]", id="include-item"),
    pytest.param(body_of(stream_options=5), "stream_options", id="stream-options"),
]


@pytest.mark.parametrize(("body", "param"), MALFORMED)
def test_malformed_fields_are_400s_naming_them(body: Any, param: str | None) -> None:
    assert_400(body, param)


# Hostile values put in place of every field of RICH (as the Anthropic codec's fuzz test does).


def check_any_body(body: Any) -> str:
    """What the codec makes of any body: a 400, or a translation whose reply and stream (when it can be
    translated at all) the openai SDK reads. Anything else escaping is the bug the fuzz tests look for."""
    try:
        parsed = responses_to_chat(body)
    except RelayError as error:
        assert error.status == 400 and error.message
        return "400"
    assert isinstance(parsed, ResponsesInput)
    orjson.dumps(parsed.chat)  # the chat body encodes, for any provider
    if parsed.untranslatable is not None:
        return "openai-only"
    request = ChatRequest("responses", b"", parsed.chat, parsed.chat["model"], False, True, None, 1, native=body)
    completion = completion_of({"content": "ok", "tool_calls": [call("c", "f", "{}")]}, "length")
    encoded = encode_responses_reply(completion, USAGE, request)
    assert Response.model_validate_json(encoded).output_text == "ok"
    encoder = ChatToResponsesStream(request)
    parse_stream(encoder.feed(chunk({"content": "ok"})) + encoder.error_event(upstream_timeout()))
    return "ok"


def test_fuzz_every_field_of_a_rich_request() -> None:
    """Every field of RICH replaced by hostile values (or removed): a translation or a 400, never a crash."""
    assert check_any_body(copy.deepcopy(RICH)) == "ok"
    outcomes: dict[str, int] = {}
    for path in paths(RICH):
        replacements = [*HOSTILE_VALUES, ABSENT] if isinstance(path[-1], str) else HOSTILE_VALUES
        for value in replacements:
            outcome = check_any_body(mutated(RICH, path, value))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes["400"] > 100 and outcomes["ok"] > 100 and outcomes["openai-only"] > 0


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson parses as integers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)


def _mostly(*likely: Any) -> st.SearchStrategy[Any]:
    """One of the values a field usually holds, one time in ten any JSON: with a dozen fields a body, an even
    mix would make nearly every body a 400 and leave the translation itself unexplored."""
    return st.integers(0, 9).flatmap(lambda n: JSON_VALUES if n == 0 else st.sampled_from(likely))


def _item(kind: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"type": _mostly(kind), **fields})


PARTS = st.one_of(
    _item("input_text", text=_mostly("t", "")),
    _item("input_image", image_url=_mostly(PNG, "https://x.test/a.png", "ftp://x"), detail=_mostly("low", "original")),
    _item("input_image", file_id=_mostly("file-1")),
    _item("input_file", file_id=_mostly("file-1")),
    _item("output_text", text=_mostly("said")),
    _item("refusal", refusal=_mostly("no")),
)
CONTENT = st.text(max_size=5) | st.lists(PARTS, max_size=3)
ITEMS = st.one_of(
    st.fixed_dictionaries({"role": _mostly("user", "system", "developer", "assistant"), "content": CONTENT}),
    _item("message", role=_mostly("user", "assistant"), content=CONTENT),
    _item("function_call", call_id=_mostly("c1", "c2"), name=_mostly("f"), arguments=_mostly("{}", '{"a":1}')),
    _item("function_call_output", call_id=_mostly("c1", "c2"), output=CONTENT),
    _item("reasoning", id=_mostly("rs_1"), summary=_mostly([])),
    _item("item_reference", id=_mostly("msg_1")),
    st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
)
TOOLS = st.one_of(
    _item("function", name=_mostly("f", "g"), parameters=_mostly(SCHEMA, None), strict=_mostly(True, None)),
    _item("web_search"),
)
BODIES = st.fixed_dictionaries(
    {"model": _mostly(MODEL), "input": _mostly("hi") | st.lists(ITEMS, min_size=1, max_size=5)},
    optional={
        "instructions": _mostly("Be brief."),
        "tools": st.lists(TOOLS, max_size=3),
        "tool_choice": _mostly(
            "auto",
            "required",
            {"type": "function", "name": "f"},
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "g"}]},
        ),
        "parallel_tool_calls": _mostly(False),
        "text": _mostly(
            {"format": {"type": "json_object"}},
            {"format": {"type": "json_schema", "name": "n", "schema": SCHEMA}, "verbosity": "low"},
        ),
        "reasoning": _mostly({"effort": "low"}, {"effort": "none", "summary": "auto"}),
        "max_output_tokens": _mostly(64, 10.0),
        "temperature": _mostly(0.2, 2),
        "top_p": _mostly(0.5),
        "metadata": _mostly({"k": "v"}),
        "user": _mostly("u"),
        "stream": _mostly(True, False),
        "store": _mostly(False),
        "truncation": _mostly("auto"),
        "previous_response_id": _mostly("resp_1"),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=JSON_VALUES)
def test_fuzz_any_json_value_is_a_translation_or_a_400(body: Any) -> None:
    check_any_body(body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES)
def test_fuzz_request_shaped_bodies(body: dict[str, Any]) -> None:
    check_any_body(body)


# ----------------------------------------------------------------------------------- replies: chat → Responses


def test_reply_text() -> None:
    response = reply({"content": "Hello there"})
    assert response.id == "resp_test" and response.object == "response" and response.created_at == 1700000000
    assert response.status == "completed" and response.model == MODEL and response.completed_at is not None
    assert response.output_text == "Hello there"
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_")
    assert [(part.type, part.text, part.annotations) for part in message.content] == [
        ("output_text", "Hello there", [])
    ]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (40, 12, 52)
    assert response.usage.input_tokens_details.cached_tokens == 30
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.error is None and response.incomplete_details is None


def test_reply_sends_no_output_text_field() -> None:
    """`output_text` is the SDK's convenience property, not a field of the API's Response."""
    response = chat_to_responses_reply(completion_of({"content": "x"}), USAGE, request_for(), "resp_1", 1)
    assert "output_text" not in response


def test_reply_tool_calls() -> None:
    calls = [call("call_a", "get_weather", '{"city":"Paris"}'), call("call_b", "get_time", "{}")]
    response = reply({"content": None, "tool_calls": calls}, "tool_calls")
    assert response.status == "completed" and response.output_text == ""
    assert [(i.type, i.call_id, i.name, i.arguments, i.status) for i in response.output] == [
        ("function_call", "call_a", "get_weather", '{"city":"Paris"}', "completed"),
        ("function_call", "call_b", "get_time", "{}", "completed"),
    ]
    assert all(item.id and item.id.startswith("fc_") for item in response.output)
    assert len({item.id for item in response.output}) == 2


def test_reply_text_then_tool_call_and_odd_calls() -> None:
    message = {
        "content": "Looking.",
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}],  # no id, object args
        "function_call": {"name": "legacy", "arguments": "{}"},
    }
    response = reply(message, "tool_calls")
    assert [item.type for item in response.output] == ["message", "function_call", "function_call"]
    first, second = response.output[1], response.output[2]
    assert first.name == "f" and first.arguments == '{"x":1}' and first.call_id.startswith("call_")
    assert second.name == "legacy" and second.call_id != first.call_id


def test_reply_refusal() -> None:
    response = reply({"content": None, "refusal": "I can't help with that."})
    (message,) = response.output
    assert [(part.type, getattr(part, "refusal", None)) for part in message.content] == [
        ("refusal", "I can't help with that.")
    ]
    assert response.output_text == ""


@pytest.mark.parametrize(
    ("finish_reason", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_reply_cut_short_is_incomplete(finish_reason: str, reason: str) -> None:
    response = reply({"content": "Once upon a"}, finish_reason)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == reason
    assert response.output[0].status == "incomplete" and response.completed_at is None
    assert response.output_text == "Once upon a"


def test_reply_reasoning_comes_first() -> None:
    response = reply({"content": "42", "reasoning_content": "Think."})
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.content is not None and reasoning.content[0].text == "Think." and reasoning.summary == []
    assert response.output_text == "42"


def test_reply_with_nothing_is_an_empty_message() -> None:
    response = reply({"content": None})
    assert [item.type for item in response.output] == ["message"] and response.output_text == ""


def test_reply_content_parts_from_an_upstream_are_joined() -> None:
    response = reply({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})
    assert response.output_text == "ab"


def test_reply_echoes_the_request() -> None:
    native = copy.deepcopy(RICH)
    response = reply({"content": '{"city":"Paris"}'}, native=native)
    assert response.instructions == "Be brief."
    assert response.tool_choice == "required" and response.parallel_tool_calls is False
    assert (response.temperature, response.top_p, response.max_output_tokens) == (0.5, 0.9, 256)
    assert response.metadata == {"trace": "t-1"} and response.user == "u-1" and response.store is False
    assert response.truncation == "auto" and response.previous_response_id == "resp_prev"
    assert response.reasoning is not None and (response.reasoning.effort, response.reasoning.summary) == ("low", "auto")
    assert response.text is not None and response.text.format is not None and response.text.format.type == "json_schema"
    assert response.text.verbosity == "low"
    tools = [(tool.type, tool.name, tool.strict, tool.parameters) for tool in response.tools]  # type: ignore[union-attr]
    assert tools == [("function", "get_weather", True, SCHEMA), ("function", "get_time", None, None)]


def test_reply_echo_defaults() -> None:
    echo = response_echo({"model": MODEL, "input": "hi"})
    assert echo == {
        "instructions": None,
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "max_output_tokens": None,
        "metadata": {},
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "truncation": "disabled",
        "user": None,
        "background": False,
    }


def test_echo_repeats_only_known_keys() -> None:
    """Whatever else a client put in a tool, choice or format is no part of the reply (nor could a deep value
    there always be encoded)."""
    native = body_of(
        tools=[{**SCHEMA_TOOL, "junk": deep(300)}],
        tool_choice={"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f", "x": 1}]},
        text={"format": {"type": "json_object", "junk": 1}, "junk": 2},
        reasoning={"effort": "low", "junk": 3},
    )
    echo = response_echo(native)
    assert echo["tools"] == [
        {"type": "function", "name": "get_weather", "description": "Weather.", "parameters": SCHEMA, "strict": None}
    ]
    assert echo["tool_choice"] == {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": "f"}],
    }
    assert echo["text"] == {"format": {"type": "json_object"}}
    assert echo["reasoning"] == {"effort": "low", "summary": None}
    Response.model_validate_json(encode_responses_reply(completion_of({"content": "x"}), USAGE, request_for(native)))


def test_sdk_reads_a_translated_reply() -> None:
    completion = completion_of({"content": "Hi there", "tool_calls": [call("call_a", "f", '{"x": 1}')]}, "tool_calls")
    client = sdk_client(200, RESPONSES_CLIENT.encode_reply(completion, USAGE, request_for()))
    response = client.responses.create(model=MODEL, input="hi")
    assert response.output_text == "Hi there" and response.id.startswith("resp_")
    assert response.output[1].type == "function_call" and response.output[1].arguments == '{"x": 1}'
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 30


def test_new_response_ids_are_unique_and_prefixed() -> None:
    ids = {new_response_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(i.startswith("resp_") and len(i) == 53 for i in ids)


# --------------------------------------------------------------------------------------------------- usage


def test_usage_to_and_from_responses() -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=20, cached_tokens=60, cache_write_tokens=10)
    encoded = usage_to_responses(usage)
    assert encoded == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 10},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 120,
    }
    assert usage_from_responses(encoded) == usage


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"input_tokens": 9, "output_tokens": 3, "input_tokens_details": {"cached_tokens": 4}}, Usage(9, 3, 4)),
        ({"input_tokens": 9, "output_tokens": 3}, Usage(9, 3)),  # servers that leave the details out
        ({"input_tokens": "9", "output_tokens": None, "input_tokens_details": 5}, Usage()),  # read leniently
    ],
)
def test_usage_from_responses(usage: dict[str, Any], expected: Usage) -> None:
    assert usage_from_responses(usage) == expected


# ------------------------------------------------------------------------------------ streams: chat → Responses

HEAD = ["response.created", "response.in_progress"]
TEXT_ITEM = ["response.output_item.added", "response.content_part.added"]
TEXT_DONE = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
CALL_DONE = ["response.function_call_arguments.done", "response.output_item.done"]


def test_stream_text_only() -> None:
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"})]
    events = parse_stream(encode([*chunks, chunk({}, "stop")]))
    assert types_of(events) == [
        *HEAD,
        *TEXT_ITEM,
        "response.output_text.delta",
        "response.output_text.delta",
        *TEXT_DONE,
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[0]["response"]["usage"] is None
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["Hel", "lo"]
    done = events[-4]
    assert done["text"] == "Hello" and done["output_index"] == 0 and done["content_index"] == 0
    assert events[-2]["item"]["status"] == "completed" and events[-2]["item"]["content"][0]["text"] == "Hello"
    response = final_response(events)
    assert response.status == "completed" and response.output_text == "Hello" and response.id == "resp_stream"
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (40, 12)


def test_stream_two_tool_calls() -> None:
    chunks = [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [fragment(0, "", "call_a", "get_weather")]}),
        chunk({"tool_calls": [fragment(0, '{"city":')]}),
        chunk({"tool_calls": [fragment(0, '"Paris"}')]}),
        chunk({"tool_calls": [fragment(1, "{}", "call_b", "get_time")]}),
        chunk({}, "tool_calls"),
    ]
    events = parse_stream(encode(chunks))
    assert types_of(events) == [
        *HEAD,
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        *CALL_DONE,
        "response.output_item.added",
        "response.function_call_arguments.delta",
        *CALL_DONE,
        "response.completed",
    ]
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["call_id"], e["item"]["name"], e["item"]["arguments"]) for e in added] == [
        (0, "call_a", "get_weather", ""),
        (1, "call_b", "get_time", ""),
    ]
    assert [e["arguments"] for e in events if e["type"] == "response.function_call_arguments.done"] == [
        '{"city":"Paris"}',
        "{}",
    ]
    response = final_response(events)
    assert [(i.call_id, i.arguments, i.status) for i in response.output] == [
        ("call_a", '{"city":"Paris"}', "completed"),
        ("call_b", "{}", "completed"),
    ]


def test_stream_text_then_tool_call_then_text() -> None:
    chunks = [
        chunk({"content": "Let me look."}),
        chunk({"tool_calls": [fragment(0, '{"q":1}', "call_a", "search")]}),
        chunk({"content": "Done."}),  # text after a call: a new message item
        chunk({}, "stop"),
    ]
    events = parse_stream(encode(chunks))
    assert types_of(events) == [
        *HEAD,
        *TEXT_ITEM,
        "response.output_text.delta",
        *TEXT_DONE,
        "response.output_item.added",
        "response.function_call_arguments.delta",
        *CALL_DONE,
        *TEXT_ITEM,
        "response.output_text.delta",
        *TEXT_DONE,
        "response.completed",
    ]
    response = final_response(events)
    assert [item.type for item in response.output] == ["message", "function_call", "message"]
    assert response.output_text == "Let me look.Done."
    assert len({item.id for item in response.output}) == 3


def test_stream_reasoning_refusal_and_text_parts() -> None:
    chunks = [
        chunk({"reasoning_content": "Hmm"}),
        chunk({"content": "Partly"}),
        chunk({"refusal": " no"}),
        chunk({}, "stop"),
    ]
    events = parse_stream(encode(chunks))
    assert types_of(events) == [
        *HEAD,
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        *TEXT_ITEM,
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    refusal_done = next(e for e in events if e["type"] == "response.refusal.done")
    assert refusal_done["content_index"] == 1 and refusal_done["refusal"] == " no"
    response = final_response(events)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert [part.type for part in response.output[1].content] == ["output_text", "refusal"]


def test_stream_length_is_incomplete() -> None:
    events = parse_stream(encode([chunk({"content": "Once upon a"}), chunk({}, "length")]))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-2]["item"]["status"] == "incomplete"
    response = final_response(events)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens" and response.usage is not None


def test_stream_without_finish_reason_or_chunks_still_completes() -> None:
    events = parse_stream(encode([]))
    assert types_of(events) == [*HEAD, *TEXT_ITEM, *TEXT_DONE, "response.completed"]
    assert final_response(events).output_text == ""
    events = parse_stream(encode([chunk({"content": "x"})]))  # the finish reason never came: closed at the end
    assert events[-1]["type"] == "response.completed" and final_response(events).output_text == "x"


def test_stream_tool_calls_without_index_or_reusing_one() -> None:
    chunks = [
        chunk({"tool_calls": [{"id": "call_a", "function": {"name": "f", "arguments": "{"}}]}),  # no index
        chunk({"tool_calls": [{"function": {"arguments": "}"}}]}),  # the same call, by position
        chunk({"tool_calls": [fragment(0, "{}", "call_b", "g")]}),
        chunk({"tool_calls": [fragment(0, "{}", "call_c", "h")]}),  # index 0 again, a new id: a new call
        chunk({}, "tool_calls"),
    ]
    response = final_response(parse_stream(encode(chunks)))
    assert [(i.call_id, i.name, i.arguments) for i in response.output] == [
        ("call_a", "f", "{}"),
        ("call_b", "g", "{}"),
        ("call_c", "h", "{}"),
    ]


def test_stream_usage_only_chunk_is_ignored_and_usage_comes_at_the_end() -> None:
    usage_chunk = {"id": "x", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 1}}
    events = parse_stream(encode([chunk({"content": "a"}), chunk({}, "stop"), usage_chunk], Usage(7, 3)))
    assert (
        events[-1]["response"]["usage"]["input_tokens"] == 7 and events[-1]["response"]["usage"]["output_tokens"] == 3
    )


def test_stream_and_reply_of_one_completion_agree() -> None:
    message = {"content": "Hi", "reasoning_content": "r", "tool_calls": [call("call_a", "f", "{}")]}
    whole = chat_to_responses_reply(completion_of(message, "tool_calls"), USAGE, request_for(), "resp_same", 5)
    chunks = [
        chunk({"reasoning_content": "r"}),
        chunk({"content": "Hi"}),
        chunk({"tool_calls": [fragment(0, "{}", "call_a", "f")]}),
        chunk({}, "tool_calls"),
    ]
    encoder = ChatToResponsesStream(request_for(), "resp_same", 5)
    b"".join(encoder.feed(c) for c in chunks) + encoder.finish(USAGE)
    assert encoder.response is not None
    assert {**encoder.response, "completed_at": 0} == {**whole, "completed_at": 0}


def test_stream_echoes_the_request_from_the_first_event() -> None:
    events = parse_stream(encode([chunk({"content": "x"})], native=copy.deepcopy(RICH)))
    for event in (events[0], events[-1]):
        assert event["response"]["instructions"] == "Be brief." and event["response"]["store"] is False
        assert event["response"]["tools"][0]["name"] == "get_weather"


def test_stream_on_done_gets_the_final_response() -> None:
    seen: list[dict[str, Any]] = []
    encoder = ChatToResponsesStream(request_for(), on_done=seen.append)
    encoder.feed(chunk({"content": "x"}))
    encoder.finish(USAGE)
    assert seen == [encoder.response] and seen[0]["id"] == encoder.response_id
    assert seen[0]["id"].startswith("resp_") and seen[0]["output"][0]["id"].startswith("msg_")


def test_sdk_assembles_an_encoded_stream() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Par"}),
        chunk({"content": "is"}),
        chunk({"tool_calls": [fragment(0, '{"city":', "call_a", "get_weather")]}),
        chunk({"tool_calls": [fragment(0, '"Paris"}')]}),
        chunk({}, "tool_calls"),
    ]
    client = sdk_client(200, encode(chunks), "text/event-stream")
    with client.responses.stream(model=MODEL, input="hi") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        response = stream.get_final_response()
    assert deltas == ["Par", "is"]
    assert response.output_text == "Paris"
    call_item = response.output[1]
    assert call_item.type == "function_call" and call_item.arguments == '{"city":"Paris"}'
    assert response.usage is not None and response.usage.total_tokens == 52


def test_sdk_iterates_raw_events() -> None:
    client = sdk_client(200, encode([chunk({"content": "ok"}), chunk({}, "stop")]), "text/event-stream")
    events = list(client.responses.create(model=MODEL, input="hi", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))


# --------------------------------------------------------------------------------------------------- errors


def test_error_event_continues_the_sequence_and_fails_the_response() -> None:
    encoder = ChatToResponsesStream(request_for(), "resp_err", 1)
    raw = encoder.feed(chunk({"content": "partial"})) + encoder.error_event(upstream_timeout())
    events = parse_stream(raw)
    assert types_of(events)[-2:] == ["error", "response.failed"]
    error = events[-2]
    assert error["message"] == "The upstream service did not answer in time." and error["code"] == "upstream_timeout"
    assert error["error"]["type"] == "upstream_error"  # nested too: the openai SDK raises on that form
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    assert failed.output[0].type == "message"  # what was streamed before the failure


def test_error_event_before_anything_was_streamed() -> None:
    events = parse_stream(ChatToResponsesStream(request_for()).error_event(insufficient_quota("Out of quota.")))
    assert types_of(events) == [*HEAD, "error", "response.failed"]
    assert events[-1]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "Out of quota."}


def test_stateless_stream_error_is_a_valid_error_event() -> None:
    raw = responses_stream_error(bad_request("too long", "input"))
    assert raw.startswith(b"event: error\ndata: ") and raw.endswith(b"\n\n")
    event = STREAM_EVENT.validate_json(raw.split(b"data: ", 1)[1])
    assert event.type == "error" and event.message == "too long" and event.param == "input"
    assert event.code == "invalid_request_error" and event.sequence_number == 0


def test_sdk_raises_a_mid_stream_error() -> None:
    encoder = ChatToResponsesStream(request_for())
    raw = encoder.feed(chunk({"content": "partial"})) + encoder.error_event(upstream_timeout())
    client = sdk_client(200, raw, "text/event-stream")
    with (
        pytest.raises(openai.APIError, match="did not answer in time"),
        client.responses.stream(model=MODEL, input="hi") as stream,
    ):
        stream.get_final_response()


def test_errors_before_a_stream_are_openai_shaped() -> None:
    status, body = RESPONSES_CLIENT.render_error(bad_request("input: must hold at least one message", "input"))
    assert status == 400
    client = sdk_client(status, body)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi")
    assert caught.value.param == "input" and "at least one message" in caught.value.message


def test_client_format_record() -> None:
    assert (RESPONSES_CLIENT.name, RESPONSES_CLIENT.endpoint) == ("responses", "responses")
    assert RESPONSES_CLIENT.stream_error is responses_stream_error
    encoder = RESPONSES_CLIENT.stream_encoder(request_for())
    assert isinstance(encoder, ChatToResponsesStream)
    raw = encoder.feed(chunk({"content": "x"})) + encoder.finish(USAGE)
    assert final_response(parse_stream(raw)).output_text == "x"
    body = RESPONSES_CLIENT.encode_reply(completion_of({"content": "x"}), USAGE, request_for())
    assert isinstance(body, bytes) and Response.model_validate_json(body).output_text == "x"


# ------------------------------------------------------------------------------------ same-format passthrough


def upstream_response(status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Response as OpenAI streams it."""
    return {
        "id": "resp_upstream",
        "object": "response",
        "created_at": 1751642570,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": "gpt-4.1-2025-04-14",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


UPSTREAM_TEXT = 'The event "response.completed" comes last.'
UPSTREAM_MESSAGE = {
    "id": "msg_up",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": UPSTREAM_TEXT}],
}
UPSTREAM_CALL = {
    "id": "fc_up",
    "type": "function_call",
    "status": "completed",
    "arguments": '{"city":"Paris"}',
    "call_id": "call_up",
    "name": "get_weather",
}
UPSTREAM_USAGE = {
    "input_tokens": 50,
    "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
    "output_tokens": 30,
    "output_tokens_details": {"reasoning_tokens": 10},
    "total_tokens": 80,
}
WHERE_TEXT = {"item_id": "msg_up", "output_index": 1, "content_index": 0}
WHERE_CALL = {"item_id": "fc_up", "output_index": 2}


def upstream_stream(end: dict[str, Any]) -> list[dict[str, Any]]:
    """A real-shaped Responses stream (reasoning, text, a function call), ended by `end`, numbered."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": upstream_response("in_progress", [])},
        {"type": "response.in_progress", "response": upstream_response("in_progress", [])},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_up", "type": "reasoning", "summary": []},
        },
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {"id": "rs_up", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA"},
        },
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {**UPSTREAM_MESSAGE, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            **WHERE_TEXT,
            "part": {"type": "output_text", "annotations": [], "text": ""},
        },
        {
            "type": "response.output_text.delta",
            **WHERE_TEXT,
            "delta": UPSTREAM_TEXT[:20],
            "logprobs": [],
            "obfuscation": "ab",
        },
        {
            "type": "response.output_text.delta",
            **WHERE_TEXT,
            "delta": UPSTREAM_TEXT[20:],
            "logprobs": [],
            "obfuscation": "c",
        },
        {"type": "response.output_text.done", **WHERE_TEXT, "text": UPSTREAM_TEXT, "logprobs": []},
        {"type": "response.content_part.done", **WHERE_TEXT, "part": UPSTREAM_MESSAGE["content"][0]},
        {"type": "response.output_item.done", "output_index": 1, "item": UPSTREAM_MESSAGE},
        {
            "type": "response.output_item.added",
            "output_index": 2,
            "item": {**UPSTREAM_CALL, "status": "in_progress", "arguments": ""},
        },
        {"type": "response.function_call_arguments.delta", **WHERE_CALL, "delta": '{"city":'},
        {"type": "response.function_call_arguments.delta", **WHERE_CALL, "delta": '"Paris"}'},
        {"type": "response.function_call_arguments.done", **WHERE_CALL, "arguments": UPSTREAM_CALL["arguments"]},
        {"type": "response.output_item.done", "output_index": 2, "item": UPSTREAM_CALL},
        end,
    ]
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


COMPLETED = {
    "type": "response.completed",
    "response": upstream_response("completed", [UPSTREAM_MESSAGE, UPSTREAM_CALL], UPSTREAM_USAGE),
}
UPSTREAM_TEXTS = [UPSTREAM_TEXT[:20], UPSTREAM_TEXT[20:], "get_weather", '{"city":', '"Paris"}']


def sse(event: dict[str, Any], named: bool) -> bytes:
    head = b"event: " + event["type"].encode() + b"\n" if named else b""
    return head + b"data: " + orjson.dumps(event) + b"\n\n"


def test_upstream_fixture_is_valid_openai_events() -> None:
    for event in upstream_stream(COMPLETED):
        STREAM_EVENT.validate_python(event)


@pytest.mark.parametrize("named", [True, False], ids=["event-lines", "data-only"])
def test_tap_relays_bytes_and_reads_usage(named: bool) -> None:
    tap = ResponsesStreamTap()
    for event in upstream_stream(COMPLETED):
        raw = sse(event, named)
        assert tap.feed(raw) is raw
        assert tap.done is (event["type"] == "response.completed")
    assert tap.usage == Usage(prompt_tokens=50, completion_tokens=30, cached_tokens=20)
    assert tap.error_message is None
    assert tap.completion_texts() == UPSTREAM_TEXTS
    assert tap.finish(Usage(1, 1)) == b""


def test_tap_incomplete_is_done_with_usage() -> None:
    response = upstream_response("incomplete", [UPSTREAM_MESSAGE], UPSTREAM_USAGE)
    response["incomplete_details"] = {"reason": "max_output_tokens"}
    tap = ResponsesStreamTap()
    for event in upstream_stream({"type": "response.incomplete", "response": response}):
        tap.feed(sse(event, True))
    assert tap.done and tap.usage is not None and tap.usage.completion_tokens == 30


@pytest.mark.parametrize("named", [True, False], ids=["event-lines", "data-only"])
def test_tap_failed_response_is_an_error_not_done(named: bool) -> None:
    response = upstream_response("failed", [], None)
    response["error"] = {"code": "server_error", "message": "The model crashed."}
    tap = ResponsesStreamTap()
    for event in upstream_stream({"type": "response.failed", "response": response}):
        tap.feed(sse(event, named))
    assert not tap.done and tap.error_message == "The model crashed." and tap.usage is None
    assert tap.completion_texts() == UPSTREAM_TEXTS  # what was streamed, for counting


@pytest.mark.parametrize(
    "error",
    [
        {"type": "error", "code": "server_error", "message": "Boom.", "param": None},
        {"type": "error", "error": {"type": "server_error", "code": "x", "message": "Boom.", "param": None}},
    ],
    ids=["flat", "nested"],
)
def test_tap_error_event(error: dict[str, Any]) -> None:
    tap = ResponsesStreamTap()
    for event in [*upstream_stream(error)[:5], {**error, "sequence_number": 5}]:
        tap.feed(sse(event, True))
    assert not tap.done and tap.error_message == "Boom."


def test_tap_error_event_numbers_after_the_upstream() -> None:
    tap = ResponsesStreamTap()
    for event in upstream_stream(COMPLETED)[:7]:
        tap.feed(sse(event, True))
    raw = tap.error_event(upstream_timeout())
    event = STREAM_EVENT.validate_json(raw.split(b"data: ", 1)[1])
    assert event.type == "error" and event.sequence_number == 7
    assert ResponsesStreamTap().error_event(upstream_timeout()).count(b'"sequence_number":0') == 1


def test_tap_cut_stream_is_not_done() -> None:
    tap = ResponsesStreamTap()
    for event in upstream_stream(COMPLETED)[:8]:
        tap.feed(sse(event, True))
    assert not tap.done and tap.usage is None and tap.error_message is None
    assert tap.completion_texts() == UPSTREAM_TEXTS[:2]


def test_tap_parses_only_ending_events(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.formats import responses as codec

    parsed: list[bytes] = []
    real = codec.sse_json
    monkeypatch.setattr(codec, "sse_json", lambda event: parsed.append(event) or real(event))
    tap = ResponsesStreamTap()
    for event in upstream_stream(COMPLETED):
        tap.feed(sse(event, True))
    assert len(parsed) == 1 and b"response.completed" in parsed[0]


def test_reply_usage_of_a_response_body() -> None:
    body = orjson.dumps(upstream_response("completed", [UPSTREAM_MESSAGE, UPSTREAM_CALL], UPSTREAM_USAGE))
    assert responses_reply_usage(body) == (Usage(50, 30, 20), [])
    without = orjson.dumps(upstream_response("completed", [UPSTREAM_MESSAGE, UPSTREAM_CALL, 5], None))
    assert responses_reply_usage(without) == (None, [UPSTREAM_TEXT, "get_weather", '{"city":"Paris"}'])
    with pytest.raises(ValueError):
        responses_reply_usage(b"[]")
    with pytest.raises(ValueError):
        responses_reply_usage(b"not json")


# ---------------------------------------------------------------------------- conversation history (stored)


def test_input_items() -> None:
    assert input_items({"input": "hi"}) == [{"type": "message", "role": "user", "content": "hi"}]
    items = [{"role": "user", "content": "a"}, {"type": "function_call_output", "call_id": "c", "output": "x"}]
    assert input_items({"input": [*items, 5]}) == items
    assert input_items({}) == []
    for item in input_items({"input": "hi"}):
        INPUT_ITEM.validate_python(item)


def test_output_items_as_input() -> None:
    output = [
        {"id": "rs_1", "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "r"}]},
        {**UPSTREAM_MESSAGE, "content": [*UPSTREAM_MESSAGE["content"], {"type": "refusal", "refusal": "no"}]},
        {**UPSTREAM_CALL, "extra": 1},
        {"id": "msg_empty", "type": "message", "role": "assistant", "status": "completed", "content": []},
        {"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}},
    ]
    assert output_items_as_input(output) == [
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_up",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": UPSTREAM_TEXT, "annotations": []},
                {"type": "refusal", "refusal": "no"},
            ],
        },
        UPSTREAM_CALL,
        output[4],
    ]
    for item in output_items_as_input(output)[:2]:
        validated = INPUT_ITEM.validate_python(item)
        list(validated.get("content", ()))  # the SDK checks content parts lazily


def test_a_stored_conversation_replays_as_the_next_request() -> None:
    """Turn 1 translated and answered with a call; the relay keeps input + output; turn 2 names it."""
    first = body_of(input="Weather in Paris?", instructions="Be brief.")
    message = {"content": "Checking.", "tool_calls": [call("call_a", "get_weather", '{"city":"Paris"}')]}
    response = chat_to_responses_reply(completion_of(message, "tool_calls"), USAGE, request_for(first), "resp_1", 1)
    stored = input_items(first) + output_items_as_input(response["output"])
    following = [{"type": "function_call_output", "call_id": "call_a", "output": "sunny"}]
    parsed = responses_to_chat(body_of(input=stored + following, previous_response_id="resp_1"))
    assert parsed.previous_response_id == "resp_1" and parsed.untranslatable is None
    assert parsed.chat["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [call("call_a", "get_weather", '{"city":"Paris"}')],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    ]
    for item in stored:
        INPUT_ITEM.validate_python(item)
