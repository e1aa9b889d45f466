"""The Gemini codec as pure functions, both directions, table-driven: one test per DESIGN.md Gemini lesson and
per mapping rule. What the codec emits for Gemini clients is parsed by the google-genai SDK itself (through an
in-memory HTTP transport, no network), and validated with its pydantic types, which refuse unknown fields."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from llmrelay.formats.base import upstream_error_message
from llmrelay.formats.gemini import (
    ChatToGeminiStream,
    GeminiPassthroughTap,
    GeminiToChatStream,
    chat_to_gemini,
    chat_to_gemini_reply,
    clean_schema,
    gemini_error,
    gemini_reply_to_chat,
    gemini_reply_usage,
    gemini_stream_error,
    gemini_to_chat,
    image_urls_to_fetch,
    usage_from_gemini,
    usage_to_gemini,
)
from llmrelay.metering.pricing import Usage
from llmrelay.relay.errors import RelayError, bad_request, insufficient_quota
from llmrelay.relay.streaming import JsonArrayTap, TranslatingTap

MODEL = "gemini-2.5-flash"
PNG = "iVBORw0KGgo="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


# ------------------------------------------------------------------------------------------------- helpers


def sdk_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> genai.Client:
    """A google-genai client whose HTTP calls are answered in memory by `handler`."""
    options = types.HttpOptions(
        base_url="http://gateway.test",
        httpx_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key="test-key", http_options=options)


def sdk_reply(body: bytes, status: int = 200) -> types.GenerateContentResponse:
    """What `models.generate_content` makes of a reply body."""
    client = sdk_client(
        lambda request: httpx2.Response(status, content=body, headers={"content-type": "application/json"})
    )
    return client.models.generate_content(model=MODEL, contents="hi")


def sdk_stream(body: bytes) -> list[types.GenerateContentResponse]:
    """What `models.generate_content_stream` makes of an SSE body."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.params.get("alt") == "sse"
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return list(sdk_client(handler).models.generate_content_stream(model=MODEL, contents="hi"))


def strict(payload: Any) -> types.GenerateContentResponse:
    """Validation by the SDK's own type with camelCase aliases; unknown fields are refused (extra=forbid)."""
    return types.GenerateContentResponse.model_validate(payload)


def sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def candidate(parts: list[dict[str, Any]], finish: str | None = None, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish is not None:
        out["finishReason"] = finish
    if index is not None:
        out["index"] = index
    return out


def reply(*candidates: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"candidates": list(candidates), "responseId": "resp-1", "modelVersion": "gemini-2.5-flash-001", **extra}


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def rejects(call: Callable[[], Any], param: str | None = None) -> RelayError:
    with pytest.raises(RelayError) as caught:
        call()
    assert caught.value.status == 400
    if param is not None:
        assert caught.value.param == param, caught.value.message
    return caught.value


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def model_turn(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def native(*contents: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"contents": list(contents), **fields}


# -------------------------------------------------------------------------------- requests: Gemini → chat


def test_native_conversation_roles_and_system_instruction() -> None:
    body = native(
        {"parts": [{"text": "Hi"}]},  # no role: Gemini's default is user
        model_turn({"text": "Hello"}, {"text": " there"}),
        user({"text": "Bye"}),
        systemInstruction={"parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
    )
    assert gemini_to_chat(body, "gpt-x", False) == {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "Be brief.\nBe kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello there"},
            {"role": "user", "content": "Bye"},
        ],
    }


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("Plain string.", [{"role": "system", "content": "Plain string."}]),
        ({"role": "user", "parts": [{"text": "As content."}]}, [{"role": "system", "content": "As content."}]),
        ({"parts": [{"text": ""}]}, []),
    ],
)
def test_native_system_instruction_forms(system: Any, expected: list[dict[str, Any]]) -> None:
    chat = gemini_to_chat(native(user({"text": "x"}), systemInstruction=system), "m", False)
    assert chat["messages"][:-1] == expected


def test_native_snake_case_fields_are_accepted() -> None:
    """Google's curl examples write the protobuf names (system_instruction, inline_data, mime_type, ...)."""
    body = {
        "system_instruction": {"parts": [{"text": "S"}]},
        "contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/jpeg", "data": "QUJD"}}]}],
        "generation_config": {"max_output_tokens": 7, "stop_sequences": ["END"]},
    }
    chat = gemini_to_chat(body, "m", False)
    assert chat["messages"][0] == {"role": "system", "content": "S"}
    assert chat["messages"][1]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}
    ]
    assert chat["max_tokens"] == 7
    assert chat["stop"] == ["END"]


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ({"text": "look"}, {"type": "text", "text": "look"}),
        (
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ),
        (
            {"fileData": {"fileUri": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ),
        (
            {"fileData": {"fileUri": "https://example.com/cat", "mimeType": "image/webp"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat"}},
        ),
    ],
)
def test_native_user_parts(part: dict[str, Any], expected: dict[str, Any]) -> None:
    chat = gemini_to_chat(native(user({"text": "first"}, part)), "m", False)
    assert chat["messages"] == [{"role": "user", "content": [{"type": "text", "text": "first"}, expected]}]


def test_native_thought_parts_are_dropped() -> None:
    body = native(
        user({"text": "q"}),
        model_turn({"text": "secret reasoning", "thought": True}, {"text": "answer", "thoughtSignature": "c2ln"}),
        model_turn({"text": "only thinking", "thought": True}),
    )
    messages = gemini_to_chat(body, "m", False)["messages"]
    assert messages == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "answer"}]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}, "contents.0.parts.0.inlineData.mimeType"),
        ({"inlineData": {"mimeType": "audio/wav", "data": "UklG"}}, "contents.0.parts.0.inlineData.mimeType"),
        ({"inlineData": {"mimeType": "image/png"}}, "contents.0.parts.0.inlineData.data"),
        (
            {"fileData": {"fileUri": "gs://b/doc.pdf", "mimeType": "application/pdf"}},
            "contents.0.parts.0.fileData.mimeType",
        ),
        ({"fileData": {}}, "contents.0.parts.0.fileData.fileUri"),
        ({"executableCode": {"language": "PYTHON", "code": "1"}}, "contents.0.parts.0"),
        ({"codeExecutionResult": {"outcome": "OUTCOME_OK"}}, "contents.0.parts.0"),
        ({"functionCall": {"name": "f", "args": {}}}, "contents.0.parts.0"),
        ({"videoMetadata": {}}, "contents.0.parts.0"),
        ({"text": 5}, "contents.0.parts.0.text"),
    ],
)
def test_native_unsupported_parts_are_400(part: dict[str, Any], param: str) -> None:
    rejects(lambda: gemini_to_chat(native(user(part)), "m", False), param)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "contents"),
        ({"contents": []}, "contents"),
        ({"contents": {"role": "user"}}, "contents"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents.0.role"),
        ({"contents": [{"role": "user", "parts": []}]}, "contents.0.parts"),
        ({"contents": [{"role": "user"}]}, "contents.0.parts"),
        ({"contents": ["hello"]}, "contents.0"),
        ({"contents": [user({"text": "x"})], "systemInstruction": {"parts": [{"inlineData": {}}]}}, None),
        ({"contents": [user({"text": "x"})], "generationConfig": []}, "generationConfig"),
    ],
)
def test_native_malformed_bodies_are_400(body: dict[str, Any], param: str | None) -> None:
    rejects(lambda: gemini_to_chat(body, "m", False), param)


def test_native_body_that_is_not_an_object_is_400() -> None:
    rejects(lambda: gemini_to_chat([1, 2], "m", False))  # type: ignore[arg-type]


# ----------------------------------------------------------------------- function calls and their responses


def test_native_function_calls_get_deterministic_ids_and_responses_find_them_by_name() -> None:
    body = native(
        user({"text": "Weather in Paris and Rome?"}),
        model_turn(
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
        ),
        user(
            {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp": 25}}},
            {"text": "Thanks"},
        ),
    )
    messages = gemini_to_chat(body, "m", False)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "call_1_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        ],
    }
    # The earliest unanswered call of the name takes each response; tool messages come before the user's text.
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "call_1_0", "content": '{"temp":20}'},
        {"role": "tool", "tool_call_id": "call_1_1", "content": '{"temp":25}'},
        {"role": "user", "content": "Thanks"},
    ]


def test_native_function_responses_match_calls_by_id() -> None:
    body = native(
        user({"text": "go"}),
        model_turn(
            {"text": "Calling."},
            {"functionCall": {"id": "a1", "name": "lookup", "args": {"q": 1}}},
            {"functionCall": {"id": "b2", "name": "lookup", "args": {"q": 2}}},
        ),
        user(  # answered out of order: the ids decide
            {"functionResponse": {"id": "b2", "name": "lookup", "response": {"r": 2}}},
            {"functionResponse": {"id": "a1", "name": "lookup", "response": {"r": 1}}},
        ),
    )
    messages = gemini_to_chat(body, "m", False)["messages"]
    assert messages[1]["content"] == "Calling."
    assert [call["id"] for call in messages[1]["tool_calls"]] == ["a1", "b2"]
    assert [(m["tool_call_id"], m["content"]) for m in messages[2:]] == [("b2", '{"r":2}'), ("a1", '{"r":1}')]


def test_native_function_calls_across_turns_keep_distinct_ids() -> None:
    body = native(
        user({"text": "go"}),
        model_turn({"functionCall": {"name": "f"}}),
        user({"functionResponse": {"name": "f", "response": {"n": 1}}}),
        model_turn({"functionCall": {"name": "f", "args": {"again": True}}}),
        user({"functionResponse": {"name": "f", "response": {"n": 2}}}),
    )
    messages = gemini_to_chat(body, "m", False)["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_1_0"
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert messages[2]["tool_call_id"] == "call_1_0"
    assert messages[3]["tool_calls"][0]["id"] == "call_3_0"
    assert messages[4]["tool_call_id"] == "call_3_0"


@pytest.mark.parametrize(
    "contents",
    [
        [user({"functionResponse": {"name": "never_called", "response": {}}})],
        [  # one call, two responses: the second has no call left to answer
            user({"text": "go"}),
            model_turn({"functionCall": {"name": "f", "args": {}}}),
            user(
                {"functionResponse": {"name": "f", "response": {}}}, {"functionResponse": {"name": "f", "response": {}}}
            ),
        ],
        [
            user({"text": "go"}),
            model_turn({"functionCall": {"name": "f", "args": []}}),
        ],
        [
            user({"text": "go"}),
            model_turn({"functionCall": {"name": "f", "args": {}}}),
            user({"functionResponse": {"name": "f", "response": "not an object"}}),
        ],
        [
            user({"text": "go"}),
            model_turn({"functionCall": {"name": "", "args": {}}}),
        ],
    ],
)
def test_native_function_call_errors_are_400(contents: list[dict[str, Any]]) -> None:
    rejects(lambda: gemini_to_chat({"contents": contents}, "m", False))


def test_native_deeply_nested_function_response_is_400_not_a_crash() -> None:
    deep: Any = {}
    for _ in range(400):
        deep = {"d": deep}
    body = native(
        user({"text": "go"}),
        model_turn({"functionCall": {"name": "f"}}),
        user({"functionResponse": {"name": "f", "response": deep}}),
    )
    rejects(lambda: gemini_to_chat(body, "m", False), "contents.2.parts.0.functionResponse.response")


# ------------------------------------------------------------------------------------------ generationConfig


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"temperature": 0.3}, {"temperature": 0.3}),
        ({"topP": 0.9}, {"top_p": 0.9}),
        ({"maxOutputTokens": 256}, {"max_tokens": 256}),
        ({"stopSequences": ["a", "b"]}, {"stop": ["a", "b"]}),
        ({"candidateCount": 3}, {"n": 3}),
        ({"seed": 42}, {"seed": 42}),
        ({"presencePenalty": 0.5}, {"presence_penalty": 0.5}),
        ({"frequencyPenalty": -0.5}, {"frequency_penalty": -0.5}),
        ({"topK": 40}, {}),  # OpenAI has no top_k
        ({"thinkingConfig": {"thinkingBudget": 1024}}, {}),
        ({"responseMimeType": "text/plain"}, {}),
        ({"responseMimeType": "application/json"}, {"response_format": {"type": "json_object"}}),
    ],
)
def test_native_generation_config(config: dict[str, Any], expected: dict[str, Any]) -> None:
    chat = gemini_to_chat(native(user({"text": "x"}), generationConfig=config), "m", False)
    assert {k: v for k, v in chat.items() if k not in ("model", "messages")} == expected


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ({"temperature": "hot"}, "generationConfig.temperature"),
        ({"temperature": True}, "generationConfig.temperature"),
        ({"maxOutputTokens": 0}, "generationConfig.maxOutputTokens"),
        ({"maxOutputTokens": 1.5}, "generationConfig.maxOutputTokens"),
        ({"candidateCount": -1}, "generationConfig.candidateCount"),
        ({"seed": "7"}, "generationConfig.seed"),
        ({"stopSequences": "END"}, "generationConfig.stopSequences"),
        ({"stopSequences": [1]}, "generationConfig.stopSequences.0"),
        ({"responseMimeType": "text/x.enum"}, "generationConfig.responseMimeType"),
        ({"responseSchema": "object"}, "generationConfig.responseSchema"),
    ],
)
def test_native_generation_config_errors_name_the_field(config: dict[str, Any], param: str) -> None:
    rejects(lambda: gemini_to_chat(native(user({"text": "x"}), generationConfig=config), "m", False), param)


def test_native_json_mode_with_gemini_schema_becomes_json_schema() -> None:
    """Gemini's Schema (upper-case types, nullable, propertyOrdering) is turned into JSON Schema."""
    schema = {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING", "description": "Who.", "example": "Ada"},
            "age": {"type": "INTEGER", "nullable": True, "minimum": 0},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}, "maxItems": "3"},
        },
        "required": ["name"],
        "propertyOrdering": ["name", "age", "tags"],
    }
    config = {"responseMimeType": "application/json", "responseSchema": schema}
    chat = gemini_to_chat(native(user({"text": "x"}), generationConfig=config), "m", False)
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "response",
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "Who.", "examples": ["Ada"]},
                    "age": {"type": ["integer", "null"], "minimum": 0},
                    "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 3},
                },
                "required": ["name"],
            },
        },
    }


def test_native_response_json_schema_is_passed_as_json_schema() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "number"}}, "additionalProperties": False}
    config = {"responseMimeType": "application/json", "responseJsonSchema": schema}
    chat = gemini_to_chat(native(user({"text": "x"}), generationConfig=config), "m", False)
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


# -------------------------------------------------------------------------------------- tools and toolConfig


def test_native_function_declarations_become_function_tools() -> None:
    tools = [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather.",
                    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
                },
                {"name": "now"},
                {"name": "raw", "parametersJsonSchema": {"type": "object", "additionalProperties": {"type": "string"}}},
            ]
        }
    ]
    chat = gemini_to_chat(native(user({"text": "x"}), tools=tools), "m", False)
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        },
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
        {
            "type": "function",
            "function": {"name": "raw", "parameters": {"type": "object", "additionalProperties": {"type": "string"}}},
        },
    ]
    assert "tool_choice" not in chat


@pytest.mark.parametrize(
    ("tool", "named"),
    [
        ({"googleSearch": {}}, "googleSearch"),
        ({"codeExecution": {}}, "codeExecution"),
        ({"urlContext": {}}, "urlContext"),
        ({"google_search_retrieval": {}}, "google_search_retrieval"),
        ({"functionDeclarations": [{"name": "f"}], "googleSearch": {}}, "googleSearch"),
    ],
)
def test_native_server_tools_are_400_naming_them(tool: dict[str, Any], named: str) -> None:
    error = rejects(lambda: gemini_to_chat(native(user({"text": "x"}), tools=[tool]), "m", False), "tools.0")
    assert named in error.message


DECLARED = [{"functionDeclarations": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}]


@pytest.mark.parametrize(
    ("calling", "choice", "tool_names"),
    [
        ({"mode": "AUTO"}, "auto", ["a", "b", "c"]),
        ({"mode": "ANY"}, "required", ["a", "b", "c"]),
        ({"mode": "NONE"}, "none", ["a", "b", "c"]),
        ({"mode": "any"}, "required", ["a", "b", "c"]),
        (
            {"mode": "ANY", "allowedFunctionNames": ["b"]},
            {"type": "function", "function": {"name": "b"}},
            ["a", "b", "c"],
        ),
        ({"mode": "ANY", "allowedFunctionNames": ["a", "c"]}, "required", ["a", "c"]),
        ({"mode": "AUTO", "allowedFunctionNames": ["a"]}, "auto", ["a", "b", "c"]),
    ],
)
def test_native_tool_config(calling: dict[str, Any], choice: Any, tool_names: list[str]) -> None:
    body = native(user({"text": "x"}), tools=copy.deepcopy(DECLARED), toolConfig={"functionCallingConfig": calling})
    chat = gemini_to_chat(body, "m", False)
    assert chat["tool_choice"] == choice
    assert [tool["function"]["name"] for tool in chat["tools"]] == tool_names


@pytest.mark.parametrize(
    ("calling", "param"),
    [
        ({"mode": "SOMETIMES"}, "toolConfig.functionCallingConfig.mode"),
        ({"mode": 1}, "toolConfig.functionCallingConfig.mode"),
        ({"mode": "ANY", "allowedFunctionNames": ["zzz"]}, "toolConfig.functionCallingConfig.allowedFunctionNames"),
        ({"mode": "ANY", "allowedFunctionNames": "a"}, "toolConfig.functionCallingConfig.allowedFunctionNames"),
    ],
)
def test_native_tool_config_errors(calling: dict[str, Any], param: str) -> None:
    body = native(user({"text": "x"}), tools=copy.deepcopy(DECLARED), toolConfig={"functionCallingConfig": calling})
    rejects(lambda: gemini_to_chat(body, "m", False), param)


def test_native_dropped_fields_and_stream_flag() -> None:
    body = native(
        user({"text": "x"}),
        safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        cachedContent="cachedContents/abc",
        labels={"team": "a"},
    )
    assert gemini_to_chat(body, "gpt-x", True) == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize("where", ["parametersJsonSchema", "responseJsonSchema"])
def test_native_json_schemas_too_deep_to_encode_are_400(where: str) -> None:
    """JSON Schemas pass through as sent; orjson (which encodes the upstream body) refuses nesting past 255."""
    deep: Any = {"type": "string"}
    for _ in range(300):
        deep = {"type": "object", "properties": {"x": deep}}
    if where == "parametersJsonSchema":
        fields: dict[str, Any] = {"tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": deep}]}]}
    else:
        fields = {"generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": deep}}
    rejects(lambda: gemini_to_chat(native(user({"text": "x"}), **fields), "m", False))


def test_native_deeply_nested_schema_is_400_not_a_recursion_error() -> None:
    schema: dict[str, Any] = {"type": "STRING"}
    for _ in range(500):
        schema = {"type": "OBJECT", "properties": {"x": schema}}
    body = native(user({"text": "x"}), tools=[{"functionDeclarations": [{"name": "f", "parameters": schema}]}])
    rejects(lambda: gemini_to_chat(body, "m", False))


# ------------------------------------------------------------------------------------- hostile-input fuzzing

HOSTILE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    1e300,
    "",
    "x",
    "ANY",
    "image/png",
    [],
    [None],
    [1, "a"],
    {},
    {"parts": 5},
    {"text": None},
    {"name": 7},
    {"mode": "ANY", "allowedFunctionNames": [None]},
    {"type": ["OBJECT"]},
    {"functionCall": {"name": "f", "args": "x"}},
    {"functionResponse": {"name": "f", "response": []}},
    [[[[[[[[[[[[[]]]]]]]]]]]]],
]

FUZZ_SEED_BODY: dict[str, Any] = {
    "systemInstruction": {"parts": [{"text": "sys"}]},
    "contents": [
        {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
        {"role": "model", "parts": [{"thought": True, "text": "t"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": True}}}]},
        {"parts": [{"fileData": {"fileUri": "https://x.test/a.png", "mimeType": "image/png"}}]},
    ],
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "f",
                    "description": "d",
                    "parameters": {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}},
                },
                {"name": "g", "parametersJsonSchema": {"type": "object"}},
            ]
        }
    ],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f", "g"]}},
    "generationConfig": {
        "temperature": 1,
        "topP": 0.5,
        "maxOutputTokens": 10,
        "stopSequences": ["s"],
        "candidateCount": 2,
        "seed": 3,
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"k": {"type": "ARRAY", "items": {"type": "STRING"}}}},
    },
    "safetySettings": [],
}


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _nodes(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _nodes(sub, (*path, i))


def _mutate(body: dict[str, Any], rng: random.Random) -> Any:
    body = copy.deepcopy(body)
    paths = list(_nodes(body))
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths)
        replacement = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        if not path:
            return replacement
        target = body
        try:
            for key in path[:-1]:
                target = target[key]
            if rng.random() < 0.2 and isinstance(target, dict):
                target.pop(path[-1], None)
            else:
                target[path[-1]] = replacement
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced the way there
    return body


def test_fuzz_gemini_to_chat_only_ever_raises_400() -> None:
    assert gemini_to_chat(FUZZ_SEED_BODY, "m", True)["messages"]  # the seed itself is valid
    rng = random.Random(20240611)
    outcomes = {"ok": 0, "400": 0}
    for _ in range(4000):
        body = _mutate(FUZZ_SEED_BODY, rng)
        try:
            chat = gemini_to_chat(body, "m", rng.random() < 0.5)
        except RelayError as error:
            assert error.status == 400, error.message
            outcomes["400"] += 1
            continue
        assert isinstance(chat["messages"], list)
        orjson.dumps(chat)  # what the upstream gets must encode
        outcomes["ok"] += 1
    assert outcomes["ok"] > 100 and outcomes["400"] > 100, outcomes  # both paths were exercised


# -------------------------------------------------------------------------------- requests: chat → Gemini


def test_chat_roles_merging_and_system_instruction() -> None:
    body = {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [{"type": "text", "text": "Anyone?"}]},
            {"role": "assistant", "content": "Hello"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
            {"role": "user", "content": "Ok"},
        ],
    }
    assert chat_to_gemini(body, {}) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use metric."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}, {"text": "Anyone?"}]},
            {"role": "model", "parts": [{"text": "Hello"}, {"text": "No."}]},
            {"role": "user", "parts": [{"text": "Ok"}]},
        ],
    }


def test_chat_tool_calls_and_results_by_id() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Paris and Rome?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "c2", "content": "noon"},
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 20}'},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [WEATHER_TOOL],
    }
    request = chat_to_gemini(body, {})
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "Paris and Rome?"}]},
        {
            "role": "model",
            "parts": [  # the empty text is not sent
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [  # results in a row, and the user's next words, are one turn; names come from the calls' ids
                {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
                {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
                {"text": "And tomorrow?"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("content", "response"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("[1, 2]", {"content": "[1, 2]"}),
        ("42", {"content": "42"}),
        ("{not json", {"content": "{not json"}),
        ("", {"content": ""}),
        (None, {"content": ""}),
        ([{"type": "text", "text": '{"x"'}, {"type": "text", "text": ": 1}"}], {"x": 1}),
    ],
)
def test_chat_tool_result_content_becomes_an_object(content: Any, response: dict[str, Any]) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c", "content": content},
        ]
    }
    assert chat_to_gemini(body, {})["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "f", "response": response}}],
    }


def test_chat_repeated_tool_call_ids_use_the_latest_call() -> None:
    """Ids made up per reply (call_0_0) repeat across turns: each result belongs to the latest call."""
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "call_0_0", "type": "function", "function": {"name": "a", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "call_0_0", "content": "1"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "call_0_0", "type": "function", "function": {"name": "b", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "call_0_0", "content": "2"},
        ]
    }
    contents = chat_to_gemini(body, {})["contents"]
    assert [turn["parts"][0]["functionResponse"]["name"] for turn in contents[2::2]] == ["a", "b"]


def test_chat_legacy_function_call_and_function_message() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": '{"x": 1}'}},
            {"role": "function", "name": "f", "content": "done"},
        ]
    }
    assert chat_to_gemini(body, {})["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"content": "done"}}}]},
    ]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "tool", "tool_call_id": "nope", "content": "x"}], "messages.0.tool_call_id"),
        (
            [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{bad"}}],
                },
            ],
            "messages.1.tool_calls.0.function.arguments",
        ),
        (
            [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}],
                },
            ],
            "messages.1.tool_calls.0.function.arguments",
        ),
        ([{"role": "function", "content": "x"}], "messages.0"),
        ([{"role": "narrator", "content": "x"}], "messages.0.role"),
        ([{"role": "user", "content": [{"type": "video", "video": {}}]}], "messages.0.content.0"),
        (
            [
                {
                    "role": "assistant",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}],
                }
            ],
            None,
        ),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}]}], None),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/missing.png"}}]}],
            None,
        ),
        ([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}], "messages.0.content.0.file"),
        ([], "messages"),
    ],
)
def test_chat_malformed_messages_are_400(messages: list[Any], param: str | None) -> None:
    rejects(lambda: chat_to_gemini({"messages": messages}, {}), param)


def test_chat_images_data_uris_and_fetched_urls_are_inlined() -> None:
    url = "https://images.test/cat.jpg"
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                    {"type": "text", "text": "   "},
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
                ],
            }
        ]
    }
    assert image_urls_to_fetch(body) == [url]
    parts = chat_to_gemini(body, {url: ("image/jpeg", "/9j/")})["contents"][0]["parts"]
    assert parts == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
    ]


@pytest.mark.parametrize(
    ("body", "urls"),
    [
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://a.test/1.png"}}]},
                    {"role": "user", "content": [{"type": "image_url", "image_url": "https://a.test/2.png"}]},
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://a.test/1.png"}}]},
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}],
                    },
                    {"role": "user", "content": "https://not.an/image.png"},
                ]
            },
            ["http://a.test/1.png", "https://a.test/2.png"],
        ),
        ({"messages": "junk"}, []),
        ({"messages": [None, 5, {"content": [None, {"type": "image_url", "image_url": 5}]}]}, []),
        ("not a body", []),
    ],
)
def test_image_urls_to_fetch(body: Any, urls: list[str]) -> None:
    assert image_urls_to_fetch(body) == urls


def test_chat_empty_messages_are_dropped_and_a_lone_system_prompt_gets_a_user_turn() -> None:
    body = {"messages": [{"role": "system", "content": "Only a system prompt."}, {"role": "user", "content": ""}]}
    request = chat_to_gemini(body, {})
    assert request["systemInstruction"] == {"parts": [{"text": "Only a system prompt."}]}
    assert request["contents"] == [{"role": "user", "parts": [{"text": "."}]}]


def test_chat_tools_become_function_declarations_with_cleaned_schemas() -> None:
    search = {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"q": {"type": "string", "format": "uri"}, "limit": {"type": ["integer", "null"]}},
                "required": ["q", "ghost"],
                "additionalProperties": False,
            },
        },
    }
    no_params = {"type": "function", "function": {"name": "now", "description": "The time."}}
    empty_params = {
        "type": "function",
        "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}},
    }
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL, search, no_params, empty_params]}
    assert chat_to_gemini(body, {})["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather in a city.",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
                {
                    "name": "search",
                    "parameters": {
                        "type": "object",
                        "properties": {"q": {"type": "string"}, "limit": {"type": "integer", "nullable": True}},
                        "required": ["q"],
                    },
                },
                {"name": "now", "description": "The time."},
                {"name": "ping"},  # Gemini refuses an OBJECT with empty properties
            ]
        }
    ]


def test_chat_non_function_tools_are_400() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]}
    rejects(lambda: chat_to_gemini(body, {}), "tools.0.type")


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_chat_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL], "tool_choice": choice}
    assert chat_to_gemini(body, {})["toolConfig"] == {"functionCallingConfig": config}


def test_chat_tool_choice_without_tools_is_left_out_and_a_bad_one_is_400() -> None:
    assert "toolConfig" not in chat_to_gemini(
        {"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}, {}
    )
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL], "tool_choice": "sometimes"}
    rejects(lambda: chat_to_gemini(body, {}), "tool_choice")


@pytest.mark.parametrize(
    ("fields", "config"),
    [
        ({"temperature": 0.7}, {"temperature": 0.7}),
        ({"top_p": 0.9}, {"topP": 0.9}),
        ({"max_tokens": 100}, {"maxOutputTokens": 100}),
        ({"max_completion_tokens": 200}, {"maxOutputTokens": 200}),
        ({"max_completion_tokens": 200, "max_tokens": 100}, {"maxOutputTokens": 200}),
        ({"stop": "END"}, {"stopSequences": ["END"]}),
        ({"stop": ["a", "", "b"]}, {"stopSequences": ["a", "b"]}),
        ({"n": 2}, {"candidateCount": 2}),
        ({"seed": 5}, {"seed": 5}),
        ({"presence_penalty": 0.1, "frequency_penalty": 0.2}, {"presencePenalty": 0.1, "frequencyPenalty": 0.2}),
        ({"top_k": 32}, {"topK": 32}),
        ({"response_format": {"type": "text"}}, None),
        ({"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "schema": {
                            "type": "object",
                            "properties": {"a": {"type": "string", "default": "z"}},
                            "additionalProperties": False,
                        },
                    },
                }
            },
            {
                "responseMimeType": "application/json",
                "responseSchema": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        ),
        ({"reasoning_effort": "low"}, {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}),
        ({"reasoning_effort": "medium"}, {"thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True}}),
        ({"reasoning_effort": "high"}, {"thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}}),
        ({"reasoning_effort": "minimal"}, None),
        (
            {
                "user": "u1",
                "logit_bias": {"1": 2},
                "stream": True,
                "stream_options": {"include_usage": True},
                "store": True,
                "metadata": {"a": "b"},
                "parallel_tool_calls": False,
                "logprobs": True,
                "service_tier": "auto",
            },
            None,
        ),
    ],
)
def test_chat_generation_config(fields: dict[str, Any], config: dict[str, Any] | None) -> None:
    request = chat_to_gemini({"messages": [{"role": "user", "content": "x"}], **fields}, {})
    assert request.get("generationConfig") == config
    assert set(request) <= {"contents", "generationConfig"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": "warm"}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": "2"}, "n"),
        ({"stop": [1]}, "stop.0"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ],
)
def test_chat_generation_errors_name_the_field(fields: dict[str, Any], param: str) -> None:
    rejects(lambda: chat_to_gemini({"messages": [{"role": "user", "content": "x"}], **fields}, {}), param)


# --------------------------------------------------------------------------------------------- clean_schema


@pytest.mark.parametrize(
    ("schema", "cleaned"),
    [
        pytest.param(
            {
                "$schema": "x",
                "$id": "y",
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": False,
            },
            {"type": "object", "properties": {"a": {"type": "string"}}},
            id="schema-id-additionalProperties",
        ),
        pytest.param(
            {"type": ["string", "null"], "description": "maybe"},
            {"type": "string", "nullable": True, "description": "maybe"},
            id="type-list-with-null",
        ),
        pytest.param(
            {"type": ["string", "integer"]},
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            id="type-list-of-two",
        ),
        pytest.param({"const": "fixed"}, {"type": "string", "enum": ["fixed"]}, id="const"),
        pytest.param({"type": "integer", "const": 3}, {"type": "integer"}, id="non-string-const"),
        pytest.param({"enum": ["a", None]}, {"type": "string", "enum": ["a"], "nullable": True}, id="enum-with-null"),
        pytest.param({"type": "integer", "enum": [1, 2]}, {"type": "integer"}, id="integer-enum"),
        pytest.param(
            {"type": "string", "examples": ["x"], "default": "d", "example": "e", "title": "T"},
            {"type": "string", "example": "e", "title": "T"},
            id="examples-default",
        ),
        pytest.param({"type": "string", "format": "email"}, {"type": "string"}, id="string-format-refused"),
        pytest.param(
            {"type": "string", "format": "date-time"}, {"type": "string", "format": "date-time"}, id="date-time"
        ),
        pytest.param(
            {"type": "string", "format": "enum", "enum": ["a"]},
            {"type": "string", "format": "enum", "enum": ["a"]},
            id="enum-format",
        ),
        pytest.param({"type": "integer", "format": "int64"}, {"type": "integer", "format": "int64"}, id="int64"),
        pytest.param({"type": "number", "format": "double"}, {"type": "number", "format": "double"}, id="double"),
        pytest.param({"type": "integer", "format": "uint8"}, {"type": "integer"}, id="integer-format-refused"),
        pytest.param(
            {"type": "array", "minItems": 1, "maxItems": 3, "uniqueItems": True},
            {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string"}},
            id="array-without-items",
        ),
        pytest.param(
            {"type": "array", "items": {"description": "anything"}},
            {"type": "array", "items": {"description": "anything", "type": "string"}},
            id="array-items-without-type",
        ),
        pytest.param(
            {"type": "object", "properties": {}, "required": ["x"]},
            {"type": "object"},
            id="empty-properties-and-undeclared-required",
        ),
        pytest.param(
            {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "optional"},
            {"type": "string", "nullable": True, "description": "optional"},
            id="pydantic-optional",
        ),
        pytest.param(
            {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            id="oneOf",
        ),
        pytest.param(
            {
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "number"}}},
                ]
            },
            {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}}, "required": ["a"]},
            id="allOf-merged",
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {
                    "default": {"type": "string"},
                    "format": {"type": "string"},
                    "$ref": {"type": "integer"},
                },
            },
            {
                "type": "object",
                "properties": {
                    "default": {"type": "string"},
                    "format": {"type": "string"},
                    "$ref": {"type": "integer"},
                },
            },
            id="property-names-are-not-keywords",
        ),
        pytest.param(
            {"type": "object", "properties": {"x": {"type": "number", "exclusiveMinimum": 0, "minimum": 1, "not": {}}}},
            {"type": "object", "properties": {"x": {"type": "number", "minimum": 1}}},
            id="unsupported-keywords",
        ),
        pytest.param(
            {"type": "object", "properties": {"x": {"$ref": "https://remote.test/s.json", "description": "remote"}}},
            {"type": "object", "properties": {"x": {"description": "remote"}}},
            id="remote-ref",
        ),
    ],
)
def test_clean_schema(schema: dict[str, Any], cleaned: dict[str, Any]) -> None:
    original = copy.deepcopy(schema)
    assert clean_schema(schema) == cleaned
    assert schema == original  # the client's schema is not changed


def test_clean_schema_inlines_local_refs() -> None:
    """What pydantic emits for nested models: $defs and $refs (with a sibling description)."""
    schema = {
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "kind": {"$ref": "#/$defs/Kind"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "Kind": {"enum": ["home", "work"], "title": "Kind"},
        },
        "definitions": {"Legacy": {"type": "boolean"}},
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/Address", "description": "Where they live."},
            "flag": {"$ref": "#/definitions/Legacy"},
        },
        "required": ["home"],
    }
    assert clean_schema(schema) == {
        "type": "object",
        "properties": {
            "home": {
                "type": "object",
                "description": "Where they live.",
                "properties": {
                    "city": {"type": "string"},
                    "kind": {"type": "string", "enum": ["home", "work"], "title": "Kind"},
                },
                "required": ["city"],
            },
            "flag": {"type": "boolean"},
        },
        "required": ["home"],
    }


def _depth(schema: dict[str, Any]) -> int:
    child = schema.get("properties", {}).get("next")
    return 1 + (_depth(child) if isinstance(child, dict) else 0)


def test_clean_schema_bounds_recursive_refs() -> None:
    schema = {
        "$defs": {
            "Node": {"type": "object", "properties": {"value": {"type": "integer"}, "next": {"$ref": "#/$defs/Node"}}}
        },
        "$ref": "#/$defs/Node",
    }
    cleaned = clean_schema(schema)
    assert "$ref" not in json.dumps(cleaned) and "$defs" not in json.dumps(cleaned)
    assert 5 <= _depth(cleaned) <= 12  # inlined a few levels, then a free-form object
    root_recursion = clean_schema({"type": "object", "properties": {"self": {"$ref": "#"}, "n": {"type": "integer"}}})
    assert root_recursion["properties"]["self"]["properties"]["n"] == {"type": "integer"}


def test_clean_schema_refuses_what_would_grow_without_bound() -> None:
    defs = {
        f"L{i}": {"type": "object", "properties": {f"p{k}": {"$ref": f"#/$defs/L{i + 1}"} for k in range(10)}}
        for i in range(10)
    }
    defs["L10"] = {"type": "string"}
    rejects(lambda: clean_schema({"$defs": defs, "$ref": "#/$defs/L0"}))
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(300):
        deep = {"type": "object", "properties": {"x": deep}}
    rejects(lambda: clean_schema(deep))


# -------------------------------------------------------------------------------------------------- replies


def test_reply_text_thoughts_and_usage_with_cache_and_thinking() -> None:
    body = reply(
        candidate([{"text": "Let me think.", "thought": True}, {"text": "Hello"}, {"text": ", world"}], "STOP"),
        usageMetadata={
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "candidatesTokenCount": 7,
            "thoughtsTokenCount": 30,
            "toolUsePromptTokenCount": 5,
            "totalTokenCount": 142,
        },
    )
    completion, usage = gemini_reply_to_chat(body, "alias")
    assert usage == Usage(prompt_tokens=105, completion_tokens=37, cached_tokens=60)
    assert completion["id"] == "chatcmpl-resp-1"
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "gemini-2.5-flash-001"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello, world",
                "refusal": None,
                "reasoning_content": "Let me think.",
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert completion["usage"]["prompt_tokens_details"]["cached_tokens"] == 60


def test_reply_stop_with_function_calls_is_tool_calls() -> None:
    body = reply(
        candidate(
            [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"id": "given-id", "name": "get_time", "args": {}}},
            ],
            "STOP",
        )
    )
    completion, usage = gemini_reply_to_chat(body, "alias")
    assert usage is None
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_0_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "given-id", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        (None, "stop"),
    ],
)
def test_reply_finish_reasons(finish: str | None, expected: str) -> None:
    completion, _ = gemini_reply_to_chat(reply(candidate([{"text": "partial"}], finish)), "m")
    assert completion["choices"][0]["finish_reason"] == expected
    assert completion["choices"][0]["message"]["content"] == "partial"  # text said before a stop is kept


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "SPII"])
def test_reply_blocked_without_text_says_why(reason: str) -> None:
    body = reply(
        {"finishReason": reason, "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH"}]}
    )
    completion, _ = gemini_reply_to_chat(body, "m")
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == f"The response was blocked by Gemini's safety filters ({reason})."


def test_reply_blocked_prompt_is_one_content_filter_choice() -> None:
    body = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    completion, usage = gemini_reply_to_chat(body, "alias")
    assert completion["model"] == "alias"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The prompt was blocked by Gemini's safety filters (PROHIBITED_CONTENT).",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "content_filter",
        }
    ]
    assert usage == Usage(prompt_tokens=9)


def test_reply_several_candidates_are_choices() -> None:
    """candidateCount: Gemini leaves index 0 out (a protobuf default); each candidate's calls get its own ids."""
    body = reply(
        candidate([{"text": "one"}], "STOP"),
        candidate([{"functionCall": {"name": "f", "args": {"n": 2}}}], "STOP", index=1),
        candidate([{"text": "three"}], "MAX_TOKENS", index=2),
    )
    completion, _ = gemini_reply_to_chat(body, "m")
    choices = completion["choices"]
    assert [(c["index"], c["finish_reason"]) for c in choices] == [(0, "stop"), (1, "tool_calls"), (2, "length")]
    assert choices[0]["message"]["content"] == "one"
    assert choices[1]["message"]["tool_calls"][0]["id"] == "call_1_0"
    assert choices[2]["message"]["content"] == "three"


@pytest.mark.parametrize("body", [[], "text", 5, None])
def test_reply_that_is_not_an_object_is_a_value_error(body: Any) -> None:
    with pytest.raises(ValueError):
        gemini_reply_to_chat(body, "m")


def test_reply_without_response_id_still_has_a_completion_id() -> None:
    completion, _ = gemini_reply_to_chat({"candidates": [candidate([{"text": "x"}])]}, "alias")
    assert completion["id"].startswith("chatcmpl-") and len(completion["id"]) > len("chatcmpl-")
    assert completion["model"] == "alias"


# ------------------------------------------------------------------------------------ replies to a Gemini client


def completion_of(message: dict[str, Any], finish: str = "stop", index: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-xyz",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": index, "message": message, "logprobs": None, "finish_reason": finish}],
    }


def test_chat_reply_is_a_generate_content_response_the_sdk_reads() -> None:
    completion = completion_of(
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "They want weather.",
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
                {"id": "call_10", "type": "function", "function": {"name": "now", "arguments": ""}},
            ],
        },
        "tool_calls",
    )
    usage = Usage(prompt_tokens=50, completion_tokens=20, cached_tokens=10)
    payload = chat_to_gemini_reply(completion, usage, "my-gemini")
    assert payload == {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "They want weather.", "thought": True},
                        {"text": "Checking."},
                        {"functionCall": {"id": "call_9", "name": "get_weather", "args": {"city": "Oslo"}}},
                        {"functionCall": {"id": "call_10", "name": "now", "args": {}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 50,
            "candidatesTokenCount": 20,
            "totalTokenCount": 70,
            "cachedContentTokenCount": 10,
        },
        "modelVersion": "my-gemini",
        "responseId": "xyz",
    }
    strict(payload)
    parsed = sdk_reply(orjson.dumps(payload))
    assert parsed.text == "Checking."  # thoughts are not the answer
    assert [(call.id, call.name, call.args) for call in parsed.function_calls or []] == [
        ("call_9", "get_weather", {"city": "Oslo"}),
        ("call_10", "now", {}),
    ]
    assert parsed.candidates[0].finish_reason == types.FinishReason.STOP
    assert parsed.usage_metadata.cached_content_token_count == 10
    assert parsed.usage_metadata.total_token_count == 70
    assert parsed.model_version == "my-gemini"
    assert parsed.response_id == "xyz"


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("stop", "STOP"), ("tool_calls", "STOP"), ("length", "MAX_TOKENS"), ("content_filter", "SAFETY"), (None, "STOP")],
)
def test_chat_reply_finish_reasons(finish: str | None, expected: str) -> None:
    payload = chat_to_gemini_reply(completion_of({"role": "assistant", "content": "x"}, finish), Usage(), "m")  # type: ignore[arg-type]
    assert payload["candidates"][0]["finishReason"] == expected
    assert strict(payload).candidates[0].finish_reason == types.FinishReason(expected)


def test_chat_reply_without_cached_tokens_and_without_content() -> None:
    payload = chat_to_gemini_reply(
        completion_of({"role": "assistant", "content": None}), Usage(prompt_tokens=3, completion_tokens=1), "m"
    )
    assert payload["usageMetadata"] == {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}
    assert payload["candidates"][0]["content"]["parts"] == [{"text": ""}]
    parsed = sdk_reply(orjson.dumps(payload))
    assert not parsed.text


def test_chat_reply_with_several_choices_is_several_candidates() -> None:
    completion = completion_of({"role": "assistant", "content": "a"})
    completion["choices"].append(
        {"index": 1, "message": {"role": "assistant", "content": "b"}, "finish_reason": "length"}
    )
    payload = chat_to_gemini_reply(completion, Usage(), "m")
    parsed = strict(payload)
    assert [(c.index, c.content.parts[0].text, c.finish_reason) for c in parsed.candidates or []] == [
        (0, "a", types.FinishReason.STOP),
        (1, "b", types.FinishReason.MAX_TOKENS),
    ]


def test_reply_round_trip_gemini_to_chat_to_gemini() -> None:
    original = reply(
        candidate(
            [
                {"text": "Hmm.", "thought": True},
                {"text": "Sure."},
                {"functionCall": {"id": "k1", "name": "f", "args": {"a": [1, {"b": None}]}}},
            ],
            "STOP",
        ),
        usageMetadata={
            "promptTokenCount": 12,
            "candidatesTokenCount": 4,
            "totalTokenCount": 16,
            "cachedContentTokenCount": 2,
        },
    )
    completion, usage = gemini_reply_to_chat(original, "m")
    assert usage is not None
    again = chat_to_gemini_reply(completion, usage, "gemini-2.5-flash-001")
    assert again["candidates"] == [{**original["candidates"][0], "index": 0}]
    assert again["usageMetadata"] == original["usageMetadata"]
    assert again["responseId"] == original["responseId"]


def test_request_round_trip_chat_to_gemini_to_chat() -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {"id": "x", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "x", "content": '{"temp":3}'},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "temperature": 0.5,
        "max_tokens": 64,
        "stop": ["END"],
        "n": 2,
        "response_format": {"type": "json_object"},
    }
    back = gemini_to_chat(chat_to_gemini(chat, {}), "gpt-x", False)
    assert back["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1_0", "content": '{"temp":3}'},
    ]
    assert back["tools"] == [WEATHER_TOOL]
    assert {k: back[k] for k in ("tool_choice", "temperature", "max_tokens", "stop", "n", "response_format")} == {
        "tool_choice": "required",
        "temperature": 0.5,
        "max_tokens": 64,
        "stop": ["END"],
        "n": 2,
        "response_format": {"type": "json_object"},
    }


# ---------------------------------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("metadata", "usage"),
    [
        (
            {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
            Usage(prompt_tokens=10, completion_tokens=5),
        ),
        (
            {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 20},
            Usage(prompt_tokens=10, completion_tokens=25),
        ),
        ({"promptTokenCount": 100, "cachedContentTokenCount": 80}, Usage(prompt_tokens=100, cached_tokens=80)),
        ({"promptTokenCount": 10, "toolUsePromptTokenCount": 4}, Usage(prompt_tokens=14)),
        ({"promptTokenCount": 5, "cachedContentTokenCount": 9}, Usage(prompt_tokens=5, cached_tokens=5)),
        ({"promptTokenCount": "x", "candidatesTokenCount": -3}, Usage()),
        ({}, Usage()),
    ],
)
def test_usage_from_gemini(metadata: dict[str, Any], usage: Usage) -> None:
    assert usage_from_gemini(metadata) == usage


def test_usage_to_gemini_round_trips_prompt_including_cache() -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=25, cached_tokens=80)
    assert usage_to_gemini(usage) == {
        "promptTokenCount": 100,
        "candidatesTokenCount": 25,
        "totalTokenCount": 125,
        "cachedContentTokenCount": 80,
    }
    assert usage_from_gemini(usage_to_gemini(usage)) == usage


def test_gemini_reply_usage() -> None:
    with_usage = reply(
        candidate([{"text": "hi"}], "STOP"), usageMetadata={"promptTokenCount": 4, "candidatesTokenCount": 1}
    )
    assert gemini_reply_usage(orjson.dumps(with_usage)) == (Usage(prompt_tokens=4, completion_tokens=1), [])
    without = reply(
        candidate(
            [{"text": "deep", "thought": True}, {"text": "hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}}],
            "STOP",
        ),
        candidate([{"text": "second"}], "STOP", index=1),
    )
    assert gemini_reply_usage(orjson.dumps(without)) == (None, ["deep", "hi", "f", '{"a":1}', "second"])
    with pytest.raises(ValueError):
        gemini_reply_usage(b"[1]")


# ---------------------------------------------------------------------------------------------- stream: decode


def decode(events: list[dict[str, Any]], model: str = "alias") -> tuple[GeminiToChatStream, list[dict[str, Any]]]:
    decoder = GeminiToChatStream(model)
    chunks = [c for event in events for c in decoder.feed(sse(event))]
    return decoder, chunks


def deltas(chunks: list[dict[str, Any]], index: int = 0) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"][0]["index"] == index]


def finishes(chunks: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [
        (c["choices"][0]["index"], c["choices"][0]["finish_reason"]) for c in chunks if c["choices"][0]["finish_reason"]
    ]


def test_decoder_realistic_text_stream() -> None:
    meta = {"promptTokenCount": 8, "totalTokenCount": 8}
    events = [
        reply(candidate([{"text": "Hel"}]), usageMetadata=meta),
        reply(candidate([{"text": "lo"}]), usageMetadata={**meta, "candidatesTokenCount": 2, "totalTokenCount": 10}),
        reply(
            candidate([{"text": "!"}], "STOP"),
            usageMetadata={
                "promptTokenCount": 8,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 4,
                "totalTokenCount": 15,
            },
        ),
    ]
    decoder = GeminiToChatStream("alias")
    assert decoder.feed(sse(events[0]))[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
    assert not decoder.done  # Gemini streams have no terminator: only a finishReason ends them
    chunks = decoder.feed(sse(events[1])) + decoder.feed(sse(events[2]))
    assert decoder.done
    assert [c["choices"][0]["delta"] for c in chunks] == [{"content": "lo"}, {"content": "!"}, {}]
    assert finishes(chunks) == [(0, "stop")]
    assert decoder.usage == Usage(prompt_tokens=8, completion_tokens=7)  # the latest usageMetadata
    assert {c["id"] for c in chunks} == {"chatcmpl-resp-1"}
    assert {c["model"] for c in chunks} == {"gemini-2.5-flash-001"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert decoder.error_message is None


def test_decoder_stop_with_a_call_in_the_same_chunk_is_tool_calls() -> None:
    _, chunks = decode(
        [reply(candidate([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}], "STOP"))]
    )
    assert deltas(chunks)[0] == {
        "role": "assistant",
        "tool_calls": [
            {
                "index": 0,
                "id": "call_0_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert finishes(chunks) == [(0, "tool_calls")]


def test_decoder_stop_after_a_call_in_an_earlier_chunk_is_tool_calls() -> None:
    decoder, chunks = decode(
        [
            reply(candidate([{"text": "Let me look."}])),
            reply(candidate([{"functionCall": {"name": "a", "args": {}}}])),
            reply(candidate([{"functionCall": {"id": "own", "name": "b", "args": {"x": 1}}}])),
            reply(candidate([{"text": ""}], "STOP"), usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 9}),
        ]
    )
    calls = [call for delta in deltas(chunks) for call in delta.get("tool_calls", ())]
    assert [(c["index"], c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (0, "call_0_0", "a", "{}"),
        (1, "own", "b", '{"x":1}'),
    ]
    assert finishes(chunks) == [(0, "tool_calls")]
    assert decoder.done and decoder.usage == Usage(prompt_tokens=3, completion_tokens=9)


def test_decoder_thoughts_are_reasoning_content() -> None:
    _, chunks = decode(
        [reply(candidate([{"text": "pondering", "thought": True}])), reply(candidate([{"text": "42"}], "STOP"))]
    )
    assert deltas(chunks) == [{"role": "assistant", "reasoning_content": "pondering"}, {"content": "42"}, {}]


def test_decoder_max_tokens_is_length() -> None:
    _, chunks = decode([reply(candidate([{"text": "cut"}], "MAX_TOKENS"))])
    assert finishes(chunks) == [(0, "length")]


def test_decoder_safety_stop_without_text_says_why() -> None:
    _, chunks = decode([reply({"finishReason": "SAFETY", "index": 0})])
    assert chunks[-1]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "The response was blocked by Gemini's safety filters (SAFETY).",
    }
    assert finishes(chunks) == [(0, "content_filter")]
    _, chunks = decode([reply(candidate([{"text": "Some"}])), reply({"finishReason": "RECITATION"})])
    assert chunks[-1]["choices"][0]["delta"] == {}  # text was said: it stands
    assert finishes(chunks) == [(0, "content_filter")]


def test_decoder_blocked_prompt_ends_the_stream() -> None:
    decoder, chunks = decode([{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 6}}])
    assert decoder.done
    assert decoder.usage == Usage(prompt_tokens=6)
    assert chunks[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "The prompt was blocked by Gemini's safety filters (SAFETY).",
    }
    assert finishes(chunks) == [(0, "content_filter")]


def test_decoder_error_event_sets_error_message() -> None:
    decoder = GeminiToChatStream("m")
    assert (
        decoder.feed(sse({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}))
        == []
    )
    assert decoder.error_message == "The model is overloaded."
    assert not decoder.done


def test_decoder_several_candidates_are_choices() -> None:
    _, chunks = decode(
        [
            reply(candidate([{"text": "A"}]), candidate([{"functionCall": {"name": "f", "args": {}}}], index=1)),
            reply(candidate([{"text": "a"}], "STOP"), candidate([{"text": ""}], "STOP", index=1)),
        ]
    )
    assert deltas(chunks, 0) == [{"role": "assistant", "content": "A"}, {"content": "a"}, {}]
    assert deltas(chunks, 1)[0]["role"] == "assistant"
    assert deltas(chunks, 1)[0]["tool_calls"][0]["id"] == "call_1_0"
    assert sorted(finishes(chunks)) == [(0, "stop"), (1, "tool_calls")]


def test_decoder_an_event_may_hold_only_a_later_candidate() -> None:
    _, chunks = decode([reply(candidate([{"text": "B"}], index=1)), reply(candidate([{"text": "A"}], "STOP"))])
    assert [(c["choices"][0]["index"], c["choices"][0]["delta"]) for c in chunks] == [
        (1, {"role": "assistant", "content": "B"}),
        (0, {"role": "assistant", "content": "A"}),
        (0, {}),
    ]


@pytest.mark.parametrize(
    "event", [b"", b": keep-alive\n\n", b"data: not json\n\n", b"data: [1]\n\n", b'data: {"candidates": 5}\n\n']
)
def test_decoder_ignores_junk_events(event: bytes) -> None:
    decoder = GeminiToChatStream("m")
    assert decoder.feed(event) == []
    assert not decoder.done and decoder.usage is None and decoder.error_message is None


# ---------------------------------------------------------------------------------------------- stream: encode


class ChunkSource:
    """A stream decoder that hands on each internal chunk it is fed (as JSON bytes) unchanged."""

    usage = None
    done = False
    error_message = None

    def feed(self, event: bytes) -> list[dict[str, Any]]:
        return [orjson.loads(event)]


def encoding_tap(sse_form: bool) -> TranslatingTap | JsonArrayTap:
    """What the relay runs for a Gemini client: the encoder, and for the array form the relay's re-framing."""
    tap = TranslatingTap(ChunkSource(), ChatToGeminiStream("my-gemini"))
    return tap if sse_form else JsonArrayTap(tap)


def encode(chunks: list[dict[str, Any]], usage: Usage, sse_form: bool) -> bytes:
    tap = encoding_tap(sse_form)
    return b"".join(tap.feed(orjson.dumps(c)) or b"" for c in chunks) + tap.finish(usage)


TOOL_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "Thinking..."}),
    chunk({"content": "Let me "}),
    chunk({"content": "check."}),
    chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
    chunk(
        {
            "tool_calls": [
                {"index": 1, "id": "call_b", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ]
        }
    ),
    chunk({}, "tool_calls"),
]


def test_encoder_sse_is_read_by_the_sdk() -> None:
    usage = Usage(prompt_tokens=11, completion_tokens=6, cached_tokens=4)
    body = encode(TOOL_STREAM, usage, True)
    assert body.startswith(b"data: {") and body.endswith(b"\r\n\r\n")
    events = sdk_stream(body)
    assert "".join(e.text or "" for e in events) == "Let me check."
    calls = [call for e in events for call in e.function_calls or []]
    assert [(c.id, c.name, c.args) for c in calls] == [
        ("call_a", "get_weather", {"city": "Oslo"}),
        ("call_b", "now", {}),
    ]
    thoughts = [p.text for e in events for p in e.candidates[0].content.parts or [] if p.thought]
    assert thoughts == ["Thinking..."]
    last = events[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.prompt_token_count == 11
    assert last.usage_metadata.cached_content_token_count == 4
    assert all(e.model_version == "my-gemini" and e.response_id == "abc" for e in events)
    assert all(e.usage_metadata is None for e in events[:-1])


def test_encoder_sends_calls_when_their_choice_finishes() -> None:
    encoder = ChatToGeminiStream("m")
    assert b"functionCall" not in b"".join(encoder.feed(c) for c in TOOL_STREAM[:-1])  # arguments still arriving
    at_finish = encoder.feed(TOOL_STREAM[-1])
    assert at_finish.count(b'"functionCall"') == 2
    assert b"functionCall" not in encoder.finish(Usage())


def test_encoder_array_form_elements_are_generate_content_responses() -> None:
    body = encode(TOOL_STREAM, Usage(prompt_tokens=1, completion_tokens=2), False)
    assert body.startswith(b"[{") and body.endswith(b"}]")
    assert body.count(b",\r\n{") == len(json.loads(body)) - 1
    elements = [strict(element) for element in json.loads(body)]
    assert "".join(e.text or "" for e in elements) == "Let me check."
    assert [c.name for e in elements for c in e.function_calls or []] == ["get_weather", "now"]
    assert elements[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert elements[-1].usage_metadata.total_token_count == 3


@pytest.mark.parametrize("sse_form", [True, False])
def test_encoder_with_nothing_fed_still_ends_properly(sse_form: bool) -> None:
    body = encoding_tap(sse_form).finish(Usage(prompt_tokens=2))
    if sse_form:
        events = sdk_stream(body)
        assert len(events) == 1 and events[0].candidates[0].finish_reason == types.FinishReason.STOP
        assert events[0].usage_metadata.prompt_token_count == 2
    else:
        elements = json.loads(body)
        assert len(elements) == 1 and body.startswith(b"[") and body.endswith(b"]")
        assert strict(elements[0]).usage_metadata.prompt_token_count == 2


@pytest.mark.parametrize(
    ("finish", "expected"), [("stop", "STOP"), ("length", "MAX_TOKENS"), ("content_filter", "SAFETY")]
)
def test_encoder_finish_reasons(finish: str, expected: str) -> None:
    body = encode([chunk({"content": "x"}), chunk({}, finish)], Usage(), False)
    assert json.loads(body)[-1]["candidates"][0]["finishReason"] == expected


def test_encoder_calls_from_servers_that_reuse_index_zero_or_omit_it() -> None:
    stream = [
        chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "a", "arguments": '{"n":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "c2", "function": {"name": "b", "arguments": '{"n":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "2}"}}]}),
        chunk({"tool_calls": [{"id": "c3", "function": {"name": "c", "arguments": '{"n":'}}]}),
        chunk({"tool_calls": [{"function": {"arguments": "3}"}}]}),
    ]
    body = encode(stream, Usage(), False)  # no finish_reason: the calls go out with the final event
    calls = [
        part["functionCall"]
        for element in json.loads(body)
        for part in element["candidates"][0]["content"]["parts"]
        if "functionCall" in part
    ]
    assert calls == [
        {"id": "c1", "name": "a", "args": {"n": 1}},
        {"id": "c2", "name": "b", "args": {"n": 2}},
        {"id": "c3", "name": "c", "args": {"n": 3}},
    ]


def test_encoder_usage_only_chunks_write_nothing() -> None:
    encoder = ChatToGeminiStream("m")
    assert encoder.feed({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 1}}) == b""
    assert encoder.feed(chunk({"role": "assistant", "content": ""})) == b""


def test_encoder_several_choices_are_candidates() -> None:
    stream = [
        chunk({"content": "a"}, index=0),
        chunk({"content": "b"}, index=1),
        chunk({}, "stop", 0),
        chunk({}, "length", 1),
    ]
    elements = [strict(e) for e in json.loads(encode(stream, Usage(), False))]
    texts = {
        (c.index, p.text)
        for e in elements
        for c in e.candidates or []
        for p in (c.content.parts if c.content else [])
        if p.text
    }
    assert texts == {(0, "a"), (1, "b")}
    assert {(c.index, c.finish_reason) for c in elements[-1].candidates or []} == {
        (0, types.FinishReason.STOP),
        (1, types.FinishReason.MAX_TOKENS),
    }


def test_stream_translation_gemini_upstream_to_gemini_client_through_the_internal_shape() -> None:
    upstream = [
        reply(candidate([{"text": "Hmm", "thought": True}])),
        reply(candidate([{"text": "Calling."}])),
        reply(candidate([{"functionCall": {"name": "f", "args": {"q": "x"}}}])),
        reply(
            candidate([{"text": ""}], "STOP"),
            usageMetadata={"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
        ),
    ]
    decoder = GeminiToChatStream("m")
    encoder = ChatToGeminiStream("m")
    body = b"".join(encoder.feed(c) for event in upstream for c in decoder.feed(sse(event)))
    assert decoder.done and decoder.usage is not None
    events = sdk_stream(body + encoder.finish(decoder.usage))
    assert "".join(e.text or "" for e in events) == "Calling."
    assert [(c.name, c.args) for e in events for c in e.function_calls or []] == [("f", {"q": "x"})]
    assert events[-1].usage_metadata.total_token_count == 8


# --------------------------------------------------------------------------------------- stream: passthrough


UPSTREAM_EVENTS = [
    sse(reply(candidate([{"text": "Hi"}]), usageMetadata={"promptTokenCount": 4, "totalTokenCount": 4})),
    b": keep-alive\n\n",
    sse(reply(candidate([{"text": 'the word finishReason, quoted: "finishReason"'}]))),
    sse(reply(candidate([{"text": "finishReason"}]))),  # the key's exact bytes, in a text
    sse(
        reply(
            candidate([{"text": " there"}], "STOP"),
            usageMetadata={"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
        )
    ),
]


def test_passthrough_sse_relays_bytes_unchanged_and_reads_usage() -> None:
    tap = GeminiPassthroughTap()
    out = [tap.feed(event) for event in UPSTREAM_EVENTS[:4]]
    assert out == UPSTREAM_EVENTS[:4]
    assert b'"finishReason"' in UPSTREAM_EVENTS[3]
    assert not tap.done  # text that mentions finishReason does not end the stream
    assert tap.usage == Usage(prompt_tokens=4)
    assert tap.feed(UPSTREAM_EVENTS[4]) == UPSTREAM_EVENTS[4]
    assert tap.done
    assert tap.usage == Usage(prompt_tokens=4, completion_tokens=2)
    assert tap.error_message is None
    assert tap.finish(Usage()) == b""
    assert tap.completion_texts() == ["Hi", 'the word finishReason, quoted: "finishReason"', "finishReason", " there"]


def test_passthrough_array_form_reframes_without_decoding() -> None:
    tap = JsonArrayTap(GeminiPassthroughTap())
    body = b"".join(piece for event in UPSTREAM_EVENTS if (piece := tap.feed(event))) + tap.finish(Usage())
    assert body.startswith(b"[{") and body.endswith(b"}]") and b"data:" not in body
    elements = json.loads(body)
    assert elements == [orjson.loads(event[6:]) for event in UPSTREAM_EVENTS if event.startswith(b"data: ")]
    texts = [strict(e).text for e in elements]
    assert texts == ["Hi", 'the word finishReason, quoted: "finishReason"', "finishReason", " there"]
    assert tap.done and tap.usage == Usage(prompt_tokens=4, completion_tokens=2)


def test_passthrough_array_form_with_nothing_relayed_is_an_empty_array() -> None:
    tap = JsonArrayTap(GeminiPassthroughTap())
    assert tap.feed(b": ping\n\n") is None
    assert tap.finish(Usage()) == b"[]"
    assert tap.usage is None and not tap.done and tap.completion_texts() == []


def test_passthrough_blocked_prompt_ends_the_stream_and_multiline_data_is_joined() -> None:
    tap = JsonArrayTap(GeminiPassthroughTap())
    event = b'data: {"promptFeedback":\ndata: {"blockReason": "SAFETY"}}\n\n'
    piece = tap.feed(event)
    assert piece == b'[{"promptFeedback":\n{"blockReason": "SAFETY"}}'
    assert tap.done
    assert json.loads(piece + tap.finish(Usage())) == [{"promptFeedback": {"blockReason": "SAFETY"}}]


def test_passthrough_usage_survives_a_broken_last_usage_event() -> None:
    tap = GeminiPassthroughTap()
    tap.feed(sse({"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1}}))
    tap.feed(b'data: {"usageMetadata": {"promptTokenCount": \n\n')
    assert tap.usage == Usage(prompt_tokens=3, completion_tokens=1)


# --------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("error", "status", "name"),
    [
        (bad_request("bad"), 400, "INVALID_ARGUMENT"),
        (RelayError(401, "no key", "authentication_error"), 401, "UNAUTHENTICATED"),
        (RelayError(403, "forbidden"), 403, "PERMISSION_DENIED"),
        (RelayError(404, "no model"), 404, "NOT_FOUND"),
        (RelayError(413, "too big"), 413, "INVALID_ARGUMENT"),
        (RelayError(429, "slow down", "rate_limit_exceeded"), 429, "RESOURCE_EXHAUSTED"),
        (insufficient_quota("out of quota"), 429, "RESOURCE_EXHAUSTED"),
        (RelayError(402, "pay", code="insufficient_quota"), 429, "RESOURCE_EXHAUSTED"),
        (RelayError(499, "client went away"), 400, "INVALID_ARGUMENT"),
        (RelayError(500, "boom", "server_error"), 500, "INTERNAL"),
        (RelayError(502, "bad gateway", "upstream_error"), 502, "UNAVAILABLE"),
        (RelayError(503, "overloaded", "upstream_error"), 503, "UNAVAILABLE"),
        (RelayError(504, "timeout", "upstream_error"), 504, "DEADLINE_EXCEEDED"),
        (RelayError(422, "unprocessable"), 422, "INVALID_ARGUMENT"),
        (RelayError(507, "storage"), 507, "INTERNAL"),
    ],
)
def test_gemini_error_statuses(error: RelayError, status: int, name: str) -> None:
    code, body = gemini_error(error)
    assert code == status
    assert orjson.loads(body) == {"error": {"code": status, "message": error.message, "status": name}}


@pytest.mark.parametrize(
    ("error", "sdk_error"),
    [
        (bad_request("contents: must not be empty", "contents"), genai_errors.ClientError),
        (RelayError(429, "slow down"), genai_errors.ClientError),
        (RelayError(503, "overloaded"), genai_errors.ServerError),
    ],
)
def test_the_sdk_raises_gemini_errors_with_their_code_status_and_message(error: RelayError, sdk_error: type) -> None:
    status, body = gemini_error(error)
    with pytest.raises(sdk_error) as caught:
        sdk_reply(body, status)
    assert caught.value.code == status
    assert caught.value.status == orjson.loads(body)["error"]["status"]
    assert caught.value.message == error.message


def test_the_sdk_raises_a_mid_stream_error_event() -> None:
    encoder = ChatToGeminiStream("m")
    body = encoder.feed(chunk({"content": "partial"})) + gemini_stream_error(RelayError(502, "upstream broke"))
    seen: list[str] = []
    with pytest.raises(genai_errors.ServerError) as caught:
        client = sdk_client(
            lambda request: httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})
        )
        for event in client.models.generate_content_stream(model=MODEL, contents="hi"):
            seen.append(event.text or "")
    assert seen == ["partial"]
    assert caught.value.code == 502 and caught.value.message == "upstream broke"


def test_stream_error_is_one_sse_event_that_a_gemini_decoder_reads() -> None:
    event = gemini_stream_error(RelayError(503, "overloaded"))
    assert event.startswith(b"data: {") and event.endswith(b"}\r\n\r\n") and event.count(b"\n") == 2
    decoder = GeminiToChatStream("m")  # the relay normalises CRLF to LF before decoding
    assert decoder.feed(event.replace(b"\r\n", b"\n")) == []
    assert decoder.error_message == "overloaded"


@pytest.mark.parametrize("opened", [True, False])
def test_stream_error_element_closes_the_array(opened: bool) -> None:
    tap = encoding_tap(sse_form=False)
    body = (tap.feed(orjson.dumps(chunk({"content": "partial"}))) or b"") if opened else b""
    assert body.startswith(b"[") is opened
    body += tap.fail(gemini_stream_error(RelayError(504, "too slow")))
    elements = json.loads(body)
    assert elements[-1] == {"error": {"code": 504, "message": "too slow", "status": "DEADLINE_EXCEEDED"}}
    assert len(elements) == (2 if opened else 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}',
            "API key not valid.",
        ),
        (b'{"message": "plain"}', "plain"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "no error message"),
    ],
)
def test_gemini_error_message(body: bytes, message: str) -> None:
    assert upstream_error_message(body) == message


def test_url_safe_base64_from_google_genai_becomes_standard_in_the_data_uri() -> None:
    # google-genai encodes inlineData with URL-safe base64; Claude and data URIs need the standard alphabet.
    body = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "a-b_c=="}}]}]}
    part = gemini_to_chat(body, "m", False)["messages"][0]["content"][0]
    assert part == {"type": "image_url", "image_url": {"url": "data:image/png;base64,a+b/c=="}}
