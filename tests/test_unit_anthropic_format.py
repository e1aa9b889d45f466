"""Pure-function tests of the Anthropic codec (llmrelay.formats.anthropic), no network.

Requests both ways, replies both ways, streams (decoded, encoded, passed through) and errors, table-driven,
one case per wire-format lesson; what the codec emits is checked with the anthropic and openai SDKs' own
types, and the anthropic SDK itself is driven over an in-memory transport to read replies, streams and
errors the way a client would.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from llmrelay.formats import anthropic as codec
from llmrelay.formats.anthropic import (
    ANTHROPIC_VERSION,
    JSON_TOOL,
    AnthropicPassthroughTap,
    AnthropicToChatStream,
    ChatToAnthropicStream,
    anthropic_error,
    anthropic_reply_to_chat,
    anthropic_reply_usage,
    anthropic_stream_error,
    anthropic_to_chat,
    chat_to_anthropic,
    chat_to_anthropic_reply,
    usage_from_anthropic,
    usage_to_anthropic,
    uses_json_tool,
)
from llmrelay.formats.base import upstream_error_message
from llmrelay.formats.openai import usage_to_openai
from llmrelay.metering.pricing import Usage
from llmrelay.relay.errors import RelayError, bad_request, insufficient_quota, upstream_timeout, upstream_unreachable
from tests.mutations import ABSENT, HOSTILE_VALUES, deep, mutated, paths

MODEL = "claude-relay-test"
USER = {"role": "user", "content": "hi"}
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)
CACHE = {"type": "ephemeral"}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def native(**fields: Any) -> dict[str, Any]:
    """A valid native Messages request with `fields` set."""
    return {"model": MODEL, "max_tokens": 256, "messages": [USER], **fields}


def without(key: str) -> dict[str, Any]:
    body = native()
    del body[key]
    return body


def chat_body(messages: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": messages if messages is not None else [USER], **fields}


def to_anthropic(messages: list[Any] | None = None, max_tokens: int = 20000, **fields: Any) -> dict[str, Any]:
    return chat_to_anthropic(chat_body(messages, **fields), MODEL, max_tokens)


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_use(call_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def function_tool(name: str, parameters: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, **extra}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


# ------------------------------------------------------------------------------- requests: Anthropic → chat

ASSISTANT_CALL = {
    "role": "assistant",
    "content": [
        {"type": "thinking", "thinking": "Weather needs a tool.", "signature": "sig-1"},
        text("Let me look."),
        tool_use("toolu_1", "get_weather", {"city": "Paris", "units": ["c"]}),
    ],
}
CHAT_ASSISTANT_CALL = {
    "role": "assistant",
    "content": "Let me look.",
    "tool_calls": [call("toolu_1", "get_weather", '{"city":"Paris","units":["c"]}')],
}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}

ANTHROPIC_TO_CHAT = [
    pytest.param(
        {"system": "Be brief."}, "messages", [{"role": "system", "content": "Be brief."}, USER], id="system-str"
    ),
    pytest.param(
        {"system": [text("You are Claude Code."), text("Use tools.", cache_control=CACHE)]},
        "messages",
        [{"role": "system", "content": "You are Claude Code.\n\nUse tools."}, USER],
        id="system-text-blocks",
    ),
    pytest.param({"system": ""}, "messages", [USER], id="empty-system-left-out"),
    pytest.param(
        {"messages": [user(text("look"), {"type": "image", "source": PNG})]},
        "messages",
        [
            {
                "role": "user",
                "content": [
                    text("look"),
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ],
        id="image-base64-to-data-uri",
    ),
    pytest.param(
        {"messages": [user({"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}})]},
        "messages",
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],
        id="image-url-source",
    ),
    pytest.param(
        {"messages": [user(text("long document", cache_control=CACHE), text("question"))]},
        "messages",
        [{"role": "user", "content": [text("long document", cache_control=CACHE), text("question")]}],
        id="cache-control-kept",
    ),
    pytest.param(
        {
            "messages": [
                USER,
                ASSISTANT_CALL,
                user(text("and?"), {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}),
            ]
        },
        "messages",
        [
            USER,
            CHAT_ASSISTANT_CALL,
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "user", "content": [text("and?")]},
        ],
        id="tool-result-before-rest-of-user-turn",
    ),
    pytest.param(
        {
            "messages": [
                USER,
                assistant(tool_use("a", "f", {}), tool_use("b", "g", {"x": 1})),
                user(
                    {"type": "tool_result", "tool_use_id": "a", "content": "one"},
                    {"type": "tool_result", "tool_use_id": "b", "content": "two"},
                ),
            ]
        },
        "messages",
        [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [call("a", "f", "{}"), call("b", "g", '{"x":1}')]},
            {"role": "tool", "tool_call_id": "a", "content": "one"},
            {"role": "tool", "tool_call_id": "b", "content": "two"},
        ],
        id="only-tool-results-no-empty-user-message",
    ),
    pytest.param(
        {
            "messages": [
                user(
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [text("line 1"), {"type": "image", "source": PNG}, text("line 2")],
                    }
                )
            ]
        },
        "messages",
        [{"role": "tool", "tool_call_id": "t", "content": "line 1\nline 2"}],
        id="tool-result-blocks-joined-image-dropped",
    ),
    pytest.param(
        {"messages": [user({"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True})]},
        "messages",
        [{"role": "tool", "tool_call_id": "t", "content": "Error: boom"}],
        id="tool-result-is-error",
    ),
    pytest.param(
        {"messages": [user({"type": "tool_result", "tool_use_id": "t"})]},
        "messages",
        [{"role": "tool", "tool_call_id": "t", "content": ""}],
        id="tool-result-without-content",
    ),
    pytest.param(
        {"messages": [USER, assistant(text("Hel"), text("lo"))]},
        "messages",
        [USER, {"role": "assistant", "content": "Hello"}],
        id="assistant-texts-joined",
    ),
    pytest.param(
        {"messages": [USER, {"role": "assistant", "content": "Sure."}]},
        "messages",
        [USER, {"role": "assistant", "content": "Sure."}],
        id="assistant-str",
    ),
    pytest.param(
        {"messages": [USER, assistant({"type": "redacted_thinking", "data": "xyz"}), USER]},
        "messages",
        [USER, USER],
        id="assistant-only-thinking-dropped",
    ),
    pytest.param(
        {"tools": [{"name": "get_weather", "description": "Weather now", "input_schema": SCHEMA}]},
        "tools",
        [function_tool("get_weather", SCHEMA, description="Weather now")],
        id="tools",
    ),
    pytest.param(
        {"tools": [{"type": "custom", "name": "f", "input_schema": {"type": "object"}}]},
        "tools",
        [function_tool("f", {"type": "object"})],
        id="custom-tool-no-description",
    ),
    pytest.param({"tools": []}, "tools", ABSENT, id="empty-tools-left-out"),
    pytest.param({"stop_sequences": ["END", "\n\nHuman:"]}, "stop", ["END", "\n\nHuman:"], id="stop-sequences"),
    pytest.param({"temperature": 0.2}, "temperature", 0.2, id="temperature"),
    pytest.param({"top_p": 0.9}, "top_p", 0.9, id="top-p"),
    pytest.param({"top_k": 40}, "top_k", ABSENT, id="top-k-dropped"),
    pytest.param({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking", ABSENT, id="thinking-dropped"),
    pytest.param({"metadata": {"user_id": "u-42"}}, "user", "u-42", id="metadata-user-id"),
    pytest.param({"metadata": {}}, "user", ABSENT, id="metadata-without-user"),
    pytest.param({"stream": True}, "stream_options", {"include_usage": True}, id="stream-asks-usage"),
    pytest.param({"stream": False}, "stream", ABSENT, id="no-stream"),
    pytest.param({}, "max_tokens", 256, id="max-tokens"),
    pytest.param({}, "model", MODEL, id="model"),
]


@pytest.mark.parametrize(("fields", "key", "expected"), ANTHROPIC_TO_CHAT)
def test_anthropic_to_chat(fields: dict[str, Any], key: str, expected: Any) -> None:
    assert anthropic_to_chat(native(**fields)).get(key, ABSENT) == expected


TOOLS = [{"name": "f", "input_schema": {"type": "object"}}]


@pytest.mark.parametrize(
    ("tool_choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", ABSENT),
        ({"type": "any"}, "required", ABSENT),
        ({"type": "none"}, "none", ABSENT),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, ABSENT),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any", "disable_parallel_tool_use": False}, "required", ABSENT),
    ],
)
def test_anthropic_tool_choice(tool_choice: dict[str, Any], expected: Any, parallel: Any) -> None:
    chat = anthropic_to_chat(native(tools=TOOLS, tool_choice=tool_choice))
    assert chat["tool_choice"] == expected
    assert chat.get("parallel_tool_calls", ABSENT) == parallel


def test_anthropic_tool_choice_without_tools_is_left_out() -> None:
    """OpenAI refuses tool_choice and parallel_tool_calls when no tools are given."""
    chat = anthropic_to_chat(native(tool_choice={"type": "any", "disable_parallel_tool_use": True}))
    assert "tool_choice" not in chat and "parallel_tool_calls" not in chat and "tools" not in chat


def test_anthropic_to_chat_whole_body() -> None:
    body = native(
        system="sys",
        messages=[USER, ASSISTANT_CALL, user({"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"})],
        tools=[{"name": "get_weather", "input_schema": SCHEMA}],
        tool_choice={"type": "auto"},
        stop_sequences=["X"],
        temperature=0.5,
        top_k=5,
        metadata={"user_id": "u"},
        stream=True,
        thinking={"type": "enabled", "budget_tokens": 1024},
        service_tier="auto",
    )
    assert anthropic_to_chat(body) == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "sys"},
            USER,
            CHAT_ASSISTANT_CALL,
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        ],
        "max_tokens": 256,
        "tool_choice": "auto",
        "tools": [function_tool("get_weather", SCHEMA)],
        "stop": ["X"],
        "temperature": 0.5,
        "user": "u",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def _msg(*blocks: Any, role: str = "user") -> dict[str, Any]:
    return native(messages=[{"role": role, "content": list(blocks)}])


def _result(**fields: Any) -> dict[str, Any]:
    return _msg({"type": "tool_result", "tool_use_id": "t", **fields})


def _use(**fields: Any) -> dict[str, Any]:
    return _msg({"type": "tool_use", "id": "t", "name": "f", "input": {}, **fields}, role="assistant")


# Every one of these is malformed; each must be a 400 naming the field, never another exception.
MALFORMED: list[tuple[Any, str | None]] = [
    (None, None),
    ([], None),
    ("body", None),
    (without("model"), "model"),
    (native(model=""), "model"),
    (native(model=7), "model"),
    (without("max_tokens"), "max_tokens"),
    (native(max_tokens=0), "max_tokens"),
    (native(max_tokens=-5), "max_tokens"),
    (native(max_tokens=True), "max_tokens"),
    (native(max_tokens="256"), "max_tokens"),
    (native(max_tokens=2.5), "max_tokens"),
    (without("messages"), "messages"),
    (native(messages=[]), "messages"),
    (native(messages={}), "messages"),
    (native(messages="hi"), "messages"),
    (native(messages=[None]), "messages.0"),
    (native(messages=[[USER]]), "messages.0"),
    (native(messages=[{"role": "system", "content": "x"}]), "messages.0.role"),
    (native(messages=[{"role": ["user"], "content": "x"}]), "messages.0.role"),
    (native(messages=[{"content": "x"}]), "messages.0.role"),
    (native(messages=[USER, {"role": "user"}]), "messages.1.content"),
    (native(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
    (native(messages=[{"role": "user", "content": {"type": "text", "text": "x"}}]), "messages.0.content"),
    (_msg(5), "messages.0.content.0"),
    (_msg({"text": "x"}), "messages.0.content.0.type"),
    (_msg({"type": ["text"]}), "messages.0.content.0.type"),
    (_msg({"type": {"t": 1}}), "messages.0.content.0.type"),
    (_msg({"type": "text"}), "messages.0.content.0.text"),
    (_msg({"type": "text", "text": {"t": 1}}), "messages.0.content.0.text"),
    (_msg({"type": "image"}), "messages.0.content.0.source"),
    (_msg({"type": "image", "source": "x"}), "messages.0.content.0.source"),
    (_msg({"type": "image", "source": {"type": "file", "file_id": "f"}}), "messages.0.content.0.source.type"),
    (
        _msg({"type": "image", "source": {"type": "base64", "media_type": "image/png"}}),
        "messages.0.content.0.source.data",
    ),
    (_msg({"type": "image", "source": {**PNG, "data": ""}}), "messages.0.content.0.source.data"),
    (_msg({"type": "image", "source": {**PNG, "media_type": 5}}), "messages.0.content.0.source.media_type"),
    (_msg({"type": "image", "source": {"type": "url"}}), "messages.0.content.0.source.url"),
    (_msg({"type": "document", "source": {"type": "text", "data": "x"}}), "messages.0.content.0"),
    (_msg({"type": "search_result"}), "messages.0.content.0.type"),
    (_msg({"type": "thinking", "thinking": "x", "signature": "s"}), "messages.0.content.0.type"),
    (_msg({"type": "tool_result"}), "messages.0.content.0.tool_use_id"),
    (_msg({"type": "tool_result", "tool_use_id": 5}), "messages.0.content.0.tool_use_id"),
    (_result(content=5), "messages.0.content.0.content"),
    (_result(content={"type": "text"}), "messages.0.content.0.content"),
    (_result(content=[5]), "messages.0.content.0.content.0"),
    (_result(content=[{"type": "document"}]), "messages.0.content.0.content.0"),
    (_result(content=[{"type": "text", "text": None}]), "messages.0.content.0.content.0.text"),
    (_result(is_error="yes"), "messages.0.content.0.is_error"),
    (_use(input="{}"), "messages.0.content.0.input"),
    (_use(input=None), "messages.0.content.0.input"),
    (_use(name=""), "messages.0.content.0.name"),
    (_use(id=None), "messages.0.content.0.id"),
    (_use(input={"n": 2**70}), "messages.0.content.0.input"),
    (_use(input={"deep": deep(300)}), "messages.0.content.0.input"),
    (
        _msg({"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}, role="assistant"),
        "messages.0.content.0.type",
    ),
    (_msg({"type": "image", "source": PNG}, role="assistant"), "messages.0.content.0.type"),
    (_msg({"type": "text", "text": 1}, role="assistant"), "messages.0.content.0.text"),
    (native(system=5), "system"),
    (native(system={"type": "text", "text": "x"}), "system"),
    (native(system=[5]), "system.0"),
    (native(system=[{"type": "image"}]), "system.0.type"),
    (native(system=[{"type": "text"}]), "system.0.text"),
    (native(tools={}), "tools"),
    (native(tools="f"), "tools"),
    (native(tools=[5]), "tools.0"),
    (native(tools=[{"name": "f"}]), "tools.0.input_schema"),
    (native(tools=[{"name": "f", "input_schema": []}]), "tools.0.input_schema"),
    (native(tools=[{"name": "", "input_schema": {}}]), "tools.0.name"),
    (native(tools=[{"input_schema": {}}]), "tools.0.name"),
    (native(tools=[{"name": "f", "description": 5, "input_schema": {}}]), "tools.0.description"),
    (native(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0"),
    (native(tools=[{"type": ["custom"], "name": "f", "input_schema": {}}]), "tools.0"),
    (native(tool_choice="auto"), "tool_choice"),
    (native(tool_choice={"type": "bogus"}), "tool_choice.type"),
    (native(tool_choice={"type": {"a": 1}}), "tool_choice.type"),
    (native(tool_choice={"type": "tool"}), "tool_choice.name"),
    (native(tool_choice={"type": "auto", "disable_parallel_tool_use": "no"}), "tool_choice.disable_parallel_tool_use"),
    (native(stop_sequences="END"), "stop_sequences"),
    (native(stop_sequences=[5]), "stop_sequences.0"),
    (native(temperature="hot"), "temperature"),
    (native(temperature=True), "temperature"),
    (native(top_p=[]), "top_p"),
    (native(metadata="u"), "metadata"),
    (native(metadata={"user_id": 5}), "metadata.user_id"),
    (native(stream="yes"), "stream"),
]


@pytest.mark.parametrize(("body", "param"), MALFORMED)
def test_anthropic_to_chat_refuses_malformed_bodies(body: Any, param: str | None) -> None:
    with pytest.raises(RelayError) as caught:
        anthropic_to_chat(body)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_request_error"
    assert caught.value.param == param


def test_document_and_server_tool_errors_say_why() -> None:
    with pytest.raises(RelayError, match="document blocks are not supported"):
        anthropic_to_chat(_msg({"type": "document", "source": {"type": "text", "data": "x"}}))
    with pytest.raises(RelayError, match="web_search"):
        anthropic_to_chat(native(tools=[{"type": "web_search_20250305", "name": "web_search"}]))


RICH_NATIVE = native(
    system=[text("sys", cache_control=CACHE)],
    messages=[
        user(text("look", cache_control=CACHE), {"type": "image", "source": PNG}),
        ASSISTANT_CALL,
        user(
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [text("18C")], "is_error": False},
            text("thanks"),
        ),
    ],
    tools=[{"name": "get_weather", "description": "d", "input_schema": SCHEMA}],
    tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    stop_sequences=["END"],
    temperature=0.5,
    top_p=0.9,
    metadata={"user_id": "u"},
    stream=True,
)


def test_anthropic_to_chat_fuzz_only_ever_raises_400() -> None:
    """Every field of a rich request replaced by hostile values (or removed): a translation or a 400."""
    assert isinstance(anthropic_to_chat(RICH_NATIVE), dict)
    outcomes = {"ok": 0, "400": 0}
    surprises = []
    for path in paths(RICH_NATIVE):
        replacements = [*HOSTILE_VALUES, ABSENT] if isinstance(path[-1], str) else HOSTILE_VALUES
        for value in replacements:
            try:
                anthropic_to_chat(mutated(RICH_NATIVE, path, value))
                outcomes["ok"] += 1
            except RelayError as error:
                if error.status != 400:
                    surprises.append((path, value, error))
                outcomes["400"] += 1
            except Exception as error:  # anything else escaping is the bug this test exists to find
                surprises.append((path, repr(value)[:40], error))
    assert surprises == []
    assert outcomes["400"] > 300 and outcomes["ok"] > 50  # the fuzz really reached both outcomes


# ------------------------------------------------------------------------------- requests: chat → Anthropic

TOOL_CALLS = [call("call_a", "get_weather", '{"city": "Paris"}'), call("call_b", "get_time", "")]
THINKING_BLOCKS = [
    {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCkYIARgCIkD"},
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
]

CHAT_MESSAGES_TO_ANTHROPIC = [
    pytest.param([USER], [user(text("hi"))], id="user-str"),
    pytest.param(
        [USER, {"role": "user", "content": "again"}], [user(text("hi"), text("again"))], id="consecutive-users-merged"
    ),
    pytest.param(
        [
            USER,
            {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS},
            {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_b", "content": [text("12:00")]},
            {"role": "user", "content": "thanks"},
        ],
        [
            user(text("hi")),
            assistant(tool_use("call_a", "get_weather", {"city": "Paris"}), tool_use("call_b", "get_time", {})),
            user(
                {"type": "tool_result", "tool_use_id": "call_a", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "12:00"},
                text("thanks"),
            ),
        ],
        id="tool-results-and-next-user-merged",
    ),
    pytest.param(
        [
            USER,
            {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS[:1]},
            {"role": "user", "content": "note"},
            {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        ],
        [
            user(text("hi")),
            assistant(tool_use("call_a", "get_weather", {"city": "Paris"})),
            user({"type": "tool_result", "tool_use_id": "call_a", "content": "18C"}, text("note")),
        ],
        id="tool-results-first-in-merged-turn",
    ),
    pytest.param(
        [{"role": "assistant", "content": "Hello! How can I help?"}, USER],
        [user(text(".")), assistant(text("Hello! How can I help?")), user(text("hi"))],
        id="first-assistant-gets-placeholder-user",
    ),
    pytest.param([{"role": "system", "content": "only"}], [user(text("."))], id="only-system-gets-placeholder-user"),
    pytest.param(
        [
            USER,
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "  \n"},
            {"role": "user", "content": [text(""), text("b")]},
            {"role": "assistant", "content": None},
        ],
        [user(text("hi"), text("b"))],
        id="empty-texts-and-messages-dropped",
    ),
    pytest.param(
        [
            {
                "role": "user",
                "content": [
                    text("what is this?"),
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}, "cache_control": CACHE},
                    {"type": "image_url", "image_url": "http://x.test/dog.png"},
                ],
            }
        ],
        [
            user(
                text("what is this?"),
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}, "cache_control": CACHE},
                {"type": "image", "source": {"type": "url", "url": "http://x.test/dog.png"}},
            )
        ],
        id="images",
    ),
    pytest.param(
        [{"role": "user", "content": [text("big doc", cache_control=CACHE)]}],
        [user(text("big doc", cache_control=CACHE))],
        id="cache-control-carried",
    ),
    pytest.param(
        [USER, {"role": "assistant", "content": "Sure.", "tool_calls": TOOL_CALLS}],
        [
            user(text("hi")),
            assistant(
                text("Sure."), tool_use("call_a", "get_weather", {"city": "Paris"}), tool_use("call_b", "get_time", {})
            ),
        ],
        id="tool-calls-to-tool-use",
    ),
    pytest.param(
        [
            USER,
            {
                "role": "assistant",
                "content": "Paris.",
                "thinking_blocks": THINKING_BLOCKS,
                "tool_calls": TOOL_CALLS[:1],
            },
        ],
        [
            user(text("hi")),
            assistant(*THINKING_BLOCKS, text("Paris."), tool_use("call_a", "get_weather", {"city": "Paris"})),
        ],
        id="thinking-blocks-first",
    ),
    pytest.param(
        [
            USER,
            {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": '{"a": 1}'}},
            {"role": "function", "name": "f", "content": "42"},
        ],
        [
            user(text("hi")),
            assistant(tool_use("call_legacy_1", "f", {"a": 1})),
            user({"type": "tool_result", "tool_use_id": "call_legacy_1", "content": "42"}),
        ],
        id="legacy-function-messages",
    ),
    pytest.param(
        [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [call("call.1:x", "f", "{}")]},
            {"role": "tool", "tool_call_id": "call.1:x", "content": "ok"},
        ],
        [
            user(text("hi")),
            assistant(tool_use("call_1_x", "f", {})),
            user({"type": "tool_result", "tool_use_id": "call_1_x", "content": "ok"}),
        ],
        id="tool-ids-made-valid-for-anthropic",
    ),
    pytest.param(
        [USER, {"role": "assistant", "content": "The answer is "}],
        [user(text("hi")), assistant(text("The answer is"))],
        id="final-assistant-prefill-trailing-space-stripped",
    ),
    pytest.param(
        [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [call("c", "shot", "{}")]},
            {
                "role": "tool",
                "tool_call_id": "c",
                "content": [text("the screen"), {"type": "image_url", "image_url": {"url": "https://x.test/s.png"}}],
            },
        ],
        [
            user(text("hi")),
            assistant(tool_use("c", "shot", {})),
            user(
                {
                    "type": "tool_result",
                    "tool_use_id": "c",
                    "content": [
                        text("the screen"),
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/s.png"}},
                    ],
                }
            ),
        ],
        id="tool-result-with-image-keeps-blocks",
    ),
]


@pytest.mark.parametrize(("messages", "expected"), CHAT_MESSAGES_TO_ANTHROPIC)
def test_chat_messages_to_anthropic(messages: list[Any], expected: list[Any]) -> None:
    assert to_anthropic(messages)["messages"] == expected


def test_system_and_developer_messages_anywhere_become_system_blocks() -> None:
    request = to_anthropic(
        [
            {"role": "system", "content": "S1"},
            USER,
            {"role": "developer", "content": [text("D1", cache_control=CACHE), text("")]},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": None},
        ]
    )
    assert request["system"] == [text("S1"), text("D1", cache_control=CACHE)]
    assert request["messages"] == [user(text("hi")), assistant(text("ok"))]
    assert "system" not in to_anthropic([USER])


CHAT_FIELDS_TO_ANTHROPIC = [
    pytest.param({}, "max_tokens", 20000, id="max-tokens-as-given"),
    pytest.param({}, "model", MODEL, id="upstream-model"),
    pytest.param(
        {"tools": [function_tool("get_weather", SCHEMA, description="Weather now")]},
        "tools",
        [{"name": "get_weather", "description": "Weather now", "input_schema": SCHEMA}],
        id="function-tools",
    ),
    pytest.param(
        {"tools": [function_tool("ping")]},
        "tools",
        [{"name": "ping", "input_schema": {"type": "object", "properties": {}}}],
        id="tool-without-parameters",
    ),
    pytest.param(
        {"tools": [function_tool("f", {"properties": {}})]},
        "tools",
        [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
        id="tool-schema-without-type",
    ),
    pytest.param({"tools": [function_tool("f")], "tool_choice": "auto"}, "tool_choice", {"type": "auto"}, id="auto"),
    pytest.param(
        {"tools": [function_tool("f")], "tool_choice": "required"}, "tool_choice", {"type": "any"}, id="required-any"
    ),
    pytest.param({"tools": [function_tool("f")], "tool_choice": "none"}, "tool_choice", {"type": "none"}, id="none"),
    pytest.param(
        {"tools": [function_tool("f")], "tool_choice": {"type": "function", "function": {"name": "f"}}},
        "tool_choice",
        {"type": "tool", "name": "f"},
        id="named-tool",
    ),
    pytest.param(
        {"tools": [function_tool("f")], "parallel_tool_calls": False},
        "tool_choice",
        {"type": "auto", "disable_parallel_tool_use": True},
        id="no-parallel-calls-auto",
    ),
    pytest.param(
        {"tools": [function_tool("f")], "tool_choice": "required", "parallel_tool_calls": False},
        "tool_choice",
        {"type": "any", "disable_parallel_tool_use": True},
        id="no-parallel-calls-required",
    ),
    pytest.param(
        {"tools": [function_tool("f")], "tool_choice": "none", "parallel_tool_calls": False},
        "tool_choice",
        {"type": "none"},
        id="no-parallel-flag-on-none",
    ),
    pytest.param(
        {"tools": [function_tool("f")], "parallel_tool_calls": True}, "tool_choice", ABSENT, id="parallel-default"
    ),
    pytest.param({"tool_choice": "required"}, "tool_choice", ABSENT, id="tool-choice-dropped-without-tools"),
    pytest.param({"tools": []}, "tools", ABSENT, id="empty-tools"),
    pytest.param({"stop": "END"}, "stop_sequences", ["END"], id="stop-str"),
    pytest.param({"stop": ["A", "B"]}, "stop_sequences", ["A", "B"], id="stop-list"),
    pytest.param({"stop": [" ", ""]}, "stop_sequences", ABSENT, id="blank-stops-dropped"),
    pytest.param({"stop": None}, "stop_sequences", ABSENT, id="stop-null"),
    pytest.param({"temperature": 1.7}, "temperature", 1, id="temperature-clamped-to-1"),
    pytest.param({"temperature": 0.3}, "temperature", 0.3, id="temperature-kept"),
    pytest.param({"temperature": -0.5}, "temperature", 0, id="temperature-clamped-to-0"),
    pytest.param({"top_p": 0.9}, "top_p", 0.9, id="top-p"),
    pytest.param({"top_k": 20}, "top_k", 20, id="top-k-from-extra-body"),
    pytest.param({"user": "u-7"}, "metadata", {"user_id": "u-7"}, id="user-to-metadata"),
    pytest.param({"metadata": {"a": "b"}}, "metadata", ABSENT, id="openai-metadata-dropped"),
    pytest.param({"n": 1}, "max_tokens", 20000, id="n-1-accepted"),
    pytest.param({"stream": True}, "stream", True, id="stream"),
    pytest.param({"stream": False}, "stream", ABSENT, id="no-stream"),
    pytest.param({"reasoning_effort": "low"}, "thinking", {"type": "enabled", "budget_tokens": 1024}, id="effort-low"),
    pytest.param(
        {"reasoning_effort": "medium"}, "thinking", {"type": "enabled", "budget_tokens": 4096}, id="effort-medium"
    ),
    pytest.param({"reasoning_effort": "minimal"}, "thinking", ABSENT, id="effort-minimal-no-thinking"),
    pytest.param(
        {"thinking": {"type": "enabled", "budget_tokens": 2000}},
        "thinking",
        {"type": "enabled", "budget_tokens": 2000},
        id="client-thinking-passes",
    ),
    pytest.param(
        {"thinking": {"type": "enabled", "budget_tokens": 2000}, "reasoning_effort": "high"},
        "thinking",
        {"type": "enabled", "budget_tokens": 2000},
        id="client-thinking-wins-over-effort",
    ),
    pytest.param(
        {"reasoning_effort": "low", "temperature": 0.2}, "temperature", ABSENT, id="thinking-drops-temperature"
    ),
    pytest.param({"reasoning_effort": "low", "top_p": 0.5}, "top_p", ABSENT, id="thinking-drops-top-p"),
    pytest.param({"reasoning_effort": "low", "top_k": 5}, "top_k", ABSENT, id="thinking-drops-top-k"),
    pytest.param(
        {"thinking": {"type": "disabled"}, "temperature": 0.2},
        "temperature",
        0.2,
        id="disabled-thinking-keeps-temperature",
    ),
]


@pytest.mark.parametrize(("fields", "key", "expected"), CHAT_FIELDS_TO_ANTHROPIC)
def test_chat_fields_to_anthropic(fields: dict[str, Any], key: str, expected: Any) -> None:
    assert to_anthropic(**fields).get(key, ABSENT) == expected


@pytest.mark.parametrize(
    ("effort", "max_tokens", "budget"),
    [("high", 32000, 16384), ("high", 3000, 2999), ("medium", 4097, 4096), ("low", 1025, 1024), ("low", 1024, None)],
)
def test_thinking_budget_stays_below_max_tokens(effort: str, max_tokens: int, budget: int | None) -> None:
    thinking = to_anthropic(max_tokens=max_tokens, reasoning_effort=effort).get("thinking")
    assert thinking == ({"type": "enabled", "budget_tokens": budget} if budget else None)


def test_openai_only_fields_are_dropped() -> None:
    request = to_anthropic(
        frequency_penalty=0.5,
        presence_penalty=0.5,
        seed=7,
        logit_bias={"1": 2},
        logprobs=True,
        top_logprobs=2,
        stream_options={"include_usage": True},
        store=True,
        metadata={"k": "v"},
        service_tier="auto",
        modalities=["text"],
        max_completion_tokens=50,
        prediction={"type": "content", "content": "x"},
        stream=True,
        temperature=0.5,
    )
    assert set(request) == {"model", "max_tokens", "messages", "stream", "temperature"}


def test_json_object_uses_a_forced_tool() -> None:
    body = chat_body(response_format={"type": "json_object"})
    request = chat_to_anthropic(body, MODEL, 500)
    assert uses_json_tool(body)
    assert [tool["name"] for tool in request["tools"]] == [JSON_TOOL]
    assert request["tools"][0]["input_schema"] == {"type": "object"}
    assert request["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    assert "system" not in request


def test_json_schema_becomes_the_tool_schema() -> None:
    spec = {"name": "weather", "schema": SCHEMA, "description": "The weather answer"}
    body = chat_body(response_format={"type": "json_schema", "json_schema": spec}, tool_choice="auto")
    request = chat_to_anthropic(body, MODEL, 500)
    assert request["tools"] == [{"name": JSON_TOOL, "description": "The weather answer", "input_schema": SCHEMA}]
    assert request["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


def test_json_mode_with_tools_asks_in_the_system_prompt() -> None:
    spec = {"name": "weather", "schema": SCHEMA}
    body = chat_body(
        [{"role": "system", "content": "sys"}, USER],
        response_format={"type": "json_schema", "json_schema": spec},
        tools=[function_tool("f")],
        tool_choice="auto",
    )
    request = chat_to_anthropic(body, MODEL, 500)
    assert not uses_json_tool(body)
    assert [tool["name"] for tool in request["tools"]] == ["f"]
    assert request["tool_choice"] == {"type": "auto"}
    assert request["system"][0] == text("sys")
    assert len(request["system"]) == 2
    instruction = request["system"][1]["text"]
    assert "only a JSON object" in instruction and orjson.dumps(SCHEMA).decode() in instruction


def test_json_mode_with_thinking_asks_in_the_system_prompt() -> None:
    body = chat_body(response_format={"type": "json_object"}, reasoning_effort="medium")
    request = chat_to_anthropic(body, MODEL, 8000)
    assert not uses_json_tool(body)
    assert "tools" not in request and "tool_choice" not in request
    assert request["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert "only a JSON object" in request["system"][-1]["text"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, False),
        ({"response_format": {"type": "text"}}, False),
        ({"response_format": {"type": "json_object"}}, True),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}}, True),
        ({"response_format": {"type": "json_object"}, "tools": []}, True),
        ({"response_format": {"type": "json_object"}, "tools": [function_tool("f")]}, False),
        ({"response_format": {"type": "json_object"}, "reasoning_effort": "high"}, False),
        ({"response_format": {"type": "json_object"}, "reasoning_effort": "minimal"}, True),
        ({"response_format": {"type": "json_object"}, "thinking": {"type": "enabled", "budget_tokens": 1024}}, False),
        ({"response_format": {"type": "json_object"}, "thinking": {"type": "disabled"}}, True),
        ({"response_format": "json"}, False),
    ],
)
def test_uses_json_tool(fields: dict[str, Any], expected: bool) -> None:
    assert uses_json_tool(chat_body(**fields)) is expected


CHAT_UNTRANSLATABLE: list[tuple[dict[str, Any], str]] = [
    (chat_body(n=2), "n"),
    (chat_body(n="2"), "n"),
    (chat_body([]), "messages"),
    (chat_body(None) | {"messages": None}, "messages"),
    (chat_body(["hi"]), "messages.0"),
    (chat_body([{"role": "critic", "content": "x"}]), "messages.0.role"),
    (chat_body([{"role": "user", "content": 5}]), "messages.0.content"),
    (
        chat_body([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x.test/a.png"}}]}]),
        "messages.0.content.0.image_url.url",
    ),
    (
        chat_body([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]),
        "messages.0.content.0.image_url.url",
    ),
    (
        chat_body([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:;base64,abc"}}]}]),
        "messages.0.content.0.image_url.url",
    ),
    (chat_body([{"role": "user", "content": [{"type": "image_url"}]}]), "messages.0.content.0.image_url"),
    (
        chat_body([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}]),
        "messages.0.content.0",
    ),
    (chat_body([{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]), "messages.0.content.0"),
    (
        chat_body([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}, USER]),
        "messages.0.content.0",
    ),
    (
        chat_body([USER, {"role": "assistant", "content": None, "tool_calls": [call("c", "f", "{oops")]}]),
        "messages.1.tool_calls.0.function.arguments",
    ),
    (
        chat_body([USER, {"role": "assistant", "content": None, "tool_calls": [call("c", "f", "[1, 2]")]}]),
        "messages.1.tool_calls.0.function.arguments",
    ),
    (
        chat_body([USER, {"role": "assistant", "content": None, "tool_calls": [call("", "f", "{}")]}]),
        "messages.1.tool_calls.0.id",
    ),
    (
        chat_body([USER, {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]}]),
        "messages.1.tool_calls.0.function",
    ),
    (
        chat_body([USER, {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "summary"}]}]),
        "messages.1.thinking_blocks.0.type",
    ),
    (
        chat_body(
            [USER, {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "thinking", "thinking": "t"}]}]
        ),
        "messages.1.thinking_blocks.0.signature",
    ),
    (chat_body([USER, {"role": "tool", "content": "18C"}]), "messages.1.tool_call_id"),
    (chat_body([USER, {"role": "function", "name": "f", "content": "42"}]), "messages.1"),
    (chat_body(tools=[{"type": "web_search_preview"}]), "tools.0.type"),
    (chat_body(tools=[{"type": "function"}]), "tools.0.function"),
    (chat_body(tools=[{"type": "function", "function": {"name": ""}}]), "tools.0.function.name"),
    (chat_body(tools=[function_tool("f")], tool_choice="any"), "tool_choice"),
    (chat_body(tools=[function_tool("f")], tool_choice={"type": "allowed_tools"}), "tool_choice.type"),
    (chat_body(tools=[function_tool("f")], parallel_tool_calls="no"), "parallel_tool_calls"),
    (chat_body(response_format={"type": "xml"}), "response_format.type"),
    (chat_body(response_format={"type": "json_schema"}), "response_format.json_schema"),
    (chat_body(reasoning_effort="max"), "reasoning_effort"),
    (chat_body(thinking="on"), "thinking"),
    (chat_body(temperature="hot"), "temperature"),
    (chat_body(top_p="high"), "top_p"),
    (chat_body(top_k=0.5), "top_k"),
    (chat_body(stop=5), "stop"),
    (chat_body(stop=["ok", 5]), "stop.1"),
    (chat_body(user=5), "user"),
    (chat_body(stream="yes"), "stream"),
]


@pytest.mark.parametrize(("body", "param"), CHAT_UNTRANSLATABLE)
def test_chat_to_anthropic_refuses_what_cannot_be_translated(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RelayError) as caught:
        chat_to_anthropic(body, MODEL, 1000)
    assert caught.value.status == 400
    assert caught.value.param == param


# ---------------------------------------------------------------------------------------------- usage

USAGE_CASES = [
    pytest.param({"input_tokens": 10, "output_tokens": 5}, Usage(10, 5), id="plain"),
    pytest.param(
        {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
        Usage(prompt_tokens=130, completion_tokens=5, cached_tokens=100, cache_write_tokens=20),
        id="cache-reads-and-writes-join-prompt",
    ),
    pytest.param(
        {
            "input_tokens": 3,
            "output_tokens": None,
            "cache_read_input_tokens": None,
            "cache_creation_input_tokens": None,
        },
        Usage(3, 0),
        id="nulls",
    ),
    pytest.param({}, Usage(), id="empty"),
    pytest.param({"input_tokens": "lots", "output_tokens": -4}, Usage(), id="garbage-counts"),
]


@pytest.mark.parametrize(("anthropic_usage", "usage"), USAGE_CASES)
def test_usage_from_anthropic(anthropic_usage: dict[str, Any], usage: Usage) -> None:
    assert usage_from_anthropic(anthropic_usage) == usage


def test_usage_to_anthropic_excludes_cache_tokens_from_input() -> None:
    usage = Usage(prompt_tokens=130, completion_tokens=5, cached_tokens=100, cache_write_tokens=20)
    assert usage_to_anthropic(usage) == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
    }
    assert usage_from_anthropic(usage_to_anthropic(usage)) == usage


def test_anthropic_reply_usage() -> None:
    reply = {"content": [text("Hi")], "usage": {"input_tokens": 4, "output_tokens": 2}}
    assert anthropic_reply_usage(orjson.dumps(reply)) == (Usage(4, 2), [])
    no_usage = {
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}, text("Hi"), tool_use("t", "f", {"a": 1})]
    }
    assert anthropic_reply_usage(orjson.dumps(no_usage)) == (None, ["hmm", "Hi", "f", '{"a":1}'])
    for body in (b"[]", b"not json", b'"text"'):
        with pytest.raises(ValueError):
            anthropic_reply_usage(body)


# --------------------------------------------------------------------------------------------- replies


def native_reply(*content: dict[str, Any], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_01XYZ",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 6, **usage},
    }


def test_anthropic_reply_to_chat_text() -> None:
    completion, usage = anthropic_reply_to_chat(native_reply(text("Hello"), text(", world")), json_tool=False)
    ChatCompletion.model_validate(completion)
    assert isinstance(completion.pop("created"), int)
    assert completion == {
        "id": "msg_01XYZ",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello, world", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage_to_openai(Usage(12, 6)),
    }
    assert usage == Usage(12, 6)


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_anthropic_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    completion, _ = anthropic_reply_to_chat(native_reply(text("x"), stop_reason=stop_reason), json_tool=False)
    assert completion["choices"][0]["finish_reason"] == finish_reason


def test_anthropic_reply_tool_use_thinking_and_cache_usage() -> None:
    reply = native_reply(
        {"type": "thinking", "thinking": "Need weather.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"},
        tool_use("toolu_a", "get_weather", {"city": "Paris"}),
        tool_use("toolu_b", "get_time", {}),
        stop_reason="tool_use",
        cache_read_input_tokens=100,
        cache_creation_input_tokens=20,
    )
    completion, usage = anthropic_reply_to_chat(reply, json_tool=False)
    ChatCompletion.model_validate(completion)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "reasoning_content": "Need weather.",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "Need weather.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque"},
        ],
        "tool_calls": [call("toolu_a", "get_weather", '{"city":"Paris"}'), call("toolu_b", "get_time", "{}")],
    }
    assert usage == Usage(prompt_tokens=132, completion_tokens=6, cached_tokens=100, cache_write_tokens=20)
    assert completion["usage"] == usage_to_openai(usage)
    assert completion["usage"]["prompt_tokens"] == 132
    assert completion["usage"]["prompt_tokens_details"]["cached_tokens"] == 100


def test_anthropic_reply_json_tool_becomes_content() -> None:
    reply = native_reply(tool_use("toolu_j", JSON_TOOL, {"city": "Paris", "temp": 18}), stop_reason="tool_use")
    completion, _ = anthropic_reply_to_chat(reply, json_tool=True)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"]
    assert orjson.loads(choice["message"]["content"]) == {"city": "Paris", "temp": 18}
    # Without JSON mode the same block is an ordinary tool call.
    plain, _ = anthropic_reply_to_chat(reply, json_tool=False)
    assert plain["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == JSON_TOOL
    assert plain["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("reply", [[], "message", None, {"type": "message"}, {"content": "text"}, {"content": None}])
def test_anthropic_reply_to_chat_refuses_non_messages(reply: Any) -> None:
    with pytest.raises(ValueError):
        anthropic_reply_to_chat(reply, json_tool=False)


def completion_of(
    message: dict[str, Any], finish_reason: str | None = "stop", cid: str = "chatcmpl-9"
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
    }


def test_chat_to_anthropic_reply_orders_blocks_and_validates() -> None:
    completion = completion_of(
        {
            "content": "Checking.",
            "reasoning_content": "The user wants weather.",
            "tool_calls": [call("call_a", "get_weather", '{"city":"Paris"}'), call("call_b", "broken", "{not json")],
        },
        finish_reason="tool_calls",
    )
    usage = Usage(prompt_tokens=50, completion_tokens=9, cached_tokens=30)
    reply = chat_to_anthropic_reply(completion, usage, MODEL)
    Message.model_validate(reply)
    assert reply == {
        "id": "msg_chatcmpl-9",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": ""},
            text("Checking."),
            tool_use("call_a", "get_weather", {"city": "Paris"}),
            tool_use("call_b", "broken", {}),
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "output_tokens": 9,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 0,
        },
    }


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_chat_finish_to_stop_reason(finish_reason: str | None, stop_reason: str) -> None:
    reply = chat_to_anthropic_reply(completion_of({"content": "x"}, finish_reason), Usage(1, 1), MODEL)
    Message.model_validate(reply)
    assert reply["stop_reason"] == stop_reason


def test_chat_to_anthropic_reply_edges() -> None:
    # An id that already is a message id is kept; no text means no text block.
    empty = chat_to_anthropic_reply(completion_of({"content": ""}, cid="msg_abc"), Usage(), MODEL)
    Message.model_validate(empty)
    assert empty["id"] == "msg_abc" and empty["content"] == []
    # A server that says "stop" after calling tools: Anthropic clients run tools only on tool_use.
    called = chat_to_anthropic_reply(
        completion_of({"content": None, "tool_calls": [call("c", "f", "{}")]}), Usage(), MODEL
    )
    assert called["stop_reason"] == "tool_use"
    # Signed thinking blocks from a LiteLLM-style upstream win over the bare reasoning text.
    signed = chat_to_anthropic_reply(
        completion_of({"content": "x", "reasoning_content": "t", "thinking_blocks": THINKING_BLOCKS}), Usage(), MODEL
    )
    Message.model_validate(signed)
    assert signed["content"] == [*THINKING_BLOCKS, text("x")]


def test_round_trip_chat_reply_through_anthropic_keeps_text_and_tool_calls() -> None:
    message = {
        "content": "Here you go.",
        "tool_calls": [call("call_a", "get_weather", '{"city": "Paris", "days": [1, 2]}')],
    }
    native_message = chat_to_anthropic_reply(completion_of(message, "tool_calls"), Usage(10, 3), MODEL)
    back, usage = anthropic_reply_to_chat(native_message, json_tool=False)
    choice = back["choices"][0]
    assert choice["message"]["content"] == "Here you go."
    assert choice["finish_reason"] == "tool_calls"
    [tool_call] = choice["message"]["tool_calls"]
    assert tool_call["id"] == "call_a" and tool_call["function"]["name"] == "get_weather"
    assert orjson.loads(tool_call["function"]["arguments"]) == {"city": "Paris", "days": [1, 2]}
    assert usage == Usage(10, 3)


def test_round_trip_signed_thinking_survives_the_next_request() -> None:
    """A Claude reply read by an OpenAI-format client, sent back with its next request: the signed thinking
    blocks reach Anthropic again, first in the assistant turn, byte for byte."""
    original = [
        {"type": "thinking", "thinking": "Weather needs a tool.", "signature": "EqQBCkYIARgCIkD"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
        text("Let me check."),
        tool_use("toolu_a", "get_weather", {"city": "Paris"}),
    ]
    completion, _ = anthropic_reply_to_chat(native_reply(*original, stop_reason="tool_use"), json_tool=False)
    sent_back = {k: v for k, v in completion["choices"][0]["message"].items() if k != "refusal"}
    next_turn = [USER, sent_back, {"role": "tool", "tool_call_id": "toolu_a", "content": "18C"}]
    request = to_anthropic(next_turn, reasoning_effort="low", max_tokens=4000)
    assert request["messages"][1] == {"role": "assistant", "content": original}
    assert request["messages"][2] == user({"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"})


def test_round_trip_native_request_through_chat() -> None:
    """anthropic_to_chat then chat_to_anthropic gives back the conversation (thinking aside)."""
    messages = [
        user(text("What's the weather?")),
        assistant(text("Let me look."), tool_use("toolu_1", "get_weather", {"city": "Paris"})),
        user({"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}, text("Thanks, and tomorrow?")),
        assistant(text("Also mild.")),
        user(text("ok"), {"type": "image", "source": PNG}),
    ]
    tools = [{"name": "get_weather", "description": "d", "input_schema": SCHEMA}]
    body = native(system="Be brief.", messages=messages, tools=tools, tool_choice={"type": "any"}, stop_sequences=["X"])
    request = chat_to_anthropic(anthropic_to_chat(body), MODEL, 256)
    assert request["messages"] == messages
    assert request["system"] == [text("Be brief.")]
    assert request["tools"] == tools
    assert request["tool_choice"] == {"type": "any"}
    assert request["stop_sequences"] == ["X"]


# ------------------------------------------------------------------------------------ stream: decoding


def sse(data: dict[str, Any], named: bool = True) -> bytes:
    head = b"event: " + data["type"].encode() + b"\n" if named else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def message_start(**usage: int) -> dict[str, Any]:
    message = {**native_reply(), "id": "msg_01", "content": [], "stop_reason": None}
    message["usage"] = {"input_tokens": 12, "output_tokens": 1, **usage}
    return {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def text_delta(index: int, value: str) -> dict[str, Any]:
    return block_delta(index, {"type": "text_delta", "text": value})


def json_delta(index: int, partial: str) -> dict[str, Any]:
    return block_delta(index, {"type": "input_json_delta", "partial_json": partial})


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, output_tokens: int, **usage: int) -> dict[str, Any]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return {"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens, **usage}}


PING = {"type": "ping"}
MESSAGE_STOP = {"type": "message_stop"}
TEXT_STREAM = [
    message_start(cache_read_input_tokens=100),
    block_start(0, text("")),
    PING,
    text_delta(0, "Hello"),
    text_delta(0, ", world"),
    block_stop(0),
    message_delta("end_turn", 7),
    MESSAGE_STOP,
]
TOOLS_STREAM = [
    message_start(),
    block_start(0, text("")),
    text_delta(0, "Let me check."),
    block_stop(0),
    block_start(1, tool_use("toolu_a", "get_weather", {})),
    block_start(2, tool_use("toolu_b", "get_time", {})),
    json_delta(1, ""),
    json_delta(1, '{"city": '),
    json_delta(2, '{"zone": "CET"'),
    json_delta(1, '"Paris"}'),
    json_delta(2, "}"),
    block_stop(1),
    block_stop(2),
    message_delta("tool_use", 40),
    MESSAGE_STOP,
]
THINKING_STREAM = [
    message_start(),
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    block_delta(0, {"type": "thinking_delta", "thinking": "Let me "}),
    block_delta(0, {"type": "thinking_delta", "thinking": "think."}),
    block_delta(0, {"type": "signature_delta", "signature": "EqQBCkYIARgCIkD"}),
    block_stop(0),
    block_start(1, {"type": "redacted_thinking", "data": "EmwKAhgB"}),
    block_stop(1),
    block_start(2, text("")),
    text_delta(2, "42."),
    block_stop(2),
    message_delta("end_turn", 30),
    MESSAGE_STOP,
]
JSON_STREAM = [
    message_start(),
    block_start(0, tool_use("toolu_j", JSON_TOOL, {})),
    json_delta(0, '{"city": "Pa'),
    json_delta(0, 'ris", "temp": 18}'),
    block_stop(0),
    message_delta("tool_use", 15),
    MESSAGE_STOP,
]


@pytest.mark.parametrize(
    "events", [TEXT_STREAM, TOOLS_STREAM, THINKING_STREAM, JSON_STREAM], ids=["text", "tools", "thinking", "json"]
)
def test_stream_fixtures_are_valid_anthropic_events(events: list[dict[str, Any]]) -> None:
    for event in events:
        if event["type"] != "ping":
            STREAM_EVENT.validate_python(event)


def decode(
    events: list[dict[str, Any]], json_tool: bool = False, named: bool = True
) -> tuple[AnthropicToChatStream, list[dict[str, Any]]]:
    decoder = AnthropicToChatStream(json_tool)
    chunks = [chunk for event in events for chunk in decoder.feed(sse(event, named))]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["id"] == "msg_01" and chunk["model"] == MODEL and chunk["object"] == "chat.completion.chunk"
    return decoder, chunks


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk["choices"][0]["delta"] for chunk in chunks]


def joined(chunks: list[dict[str, Any]], key: str) -> str:
    return "".join(delta[key] for delta in deltas(chunks) if key in delta)


def assembled_tool_calls(chunks: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for delta in deltas(chunks):
        for fragment in delta.get("tool_calls", ()):
            entry = calls.setdefault(fragment["index"], {"id": "", "name": "", "arguments": ""})
            entry["id"] += fragment.get("id", "")
            entry["name"] += fragment.get("function", {}).get("name", "")
            entry["arguments"] += fragment["function"].get("arguments", "")
    return calls


def finish_reasons(chunks: list[dict[str, Any]]) -> list[str]:
    return [chunk["choices"][0]["finish_reason"] for chunk in chunks if chunk["choices"][0]["finish_reason"]]


@pytest.mark.parametrize("named", [True, False], ids=["event-lines", "data-only"])
def test_decode_text_stream(named: bool) -> None:
    decoder, chunks = decode(TEXT_STREAM, named=named)
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    assert joined(chunks, "content") == "Hello, world"
    assert finish_reasons(chunks) == ["stop"]
    assert deltas(chunks)[-1] == {}
    assert decoder.usage == Usage(prompt_tokens=112, completion_tokens=7, cached_tokens=100)
    assert decoder.done is True
    assert decoder.error_message is None


def test_decode_parallel_tools_counts_tool_calls_not_blocks() -> None:
    decoder, chunks = decode(TOOLS_STREAM)
    assert joined(chunks, "content") == "Let me check."
    assert assembled_tool_calls(chunks) == {
        0: {"id": "toolu_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "toolu_b", "name": "get_time", "arguments": '{"zone": "CET"}'},
    }
    first_fragments = [d["tool_calls"][0] for d in deltas(chunks) if "tool_calls" in d and "id" in d["tool_calls"][0]]
    assert first_fragments[0] == {
        "index": 0,
        "id": "toolu_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert finish_reasons(chunks) == ["tool_calls"]
    assert decoder.usage == Usage(12, 40)


def test_decode_thinking_with_signature() -> None:
    _, chunks = decode(THINKING_STREAM)
    assert joined(chunks, "reasoning_content") == "Let me think."
    blocks = [block for delta in deltas(chunks) for block in delta.get("thinking_blocks", ())]
    assert blocks == [
        {"type": "thinking", "thinking": "", "signature": "EqQBCkYIARgCIkD"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
    ]
    assert joined(chunks, "content") == "42."
    assert finish_reasons(chunks) == ["stop"]


def test_decode_json_tool_stream_as_content() -> None:
    _, chunks = decode(JSON_STREAM, json_tool=True)
    assert orjson.loads(joined(chunks, "content")) == {"city": "Paris", "temp": 18}
    assert assembled_tool_calls(chunks) == {}
    assert finish_reasons(chunks) == ["stop"]
    # The same stream without JSON mode is a tool call.
    _, plain = decode(JSON_STREAM, json_tool=False)
    assert assembled_tool_calls(plain)[0]["name"] == JSON_TOOL
    assert finish_reasons(plain) == ["tool_calls"]


def test_decode_cut_stream_is_not_done() -> None:
    decoder, chunks = decode(TEXT_STREAM[:4])
    assert joined(chunks, "content") == "Hello"
    assert decoder.done is False
    assert finish_reasons(chunks) == []
    assert decoder.usage == Usage(prompt_tokens=112, completion_tokens=1, cached_tokens=100)


def test_decode_error_event() -> None:
    decoder = AnthropicToChatStream(json_tool=False)
    decoder.feed(sse(message_start()))
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert decoder.feed(sse(error)) == []
    assert decoder.error_message == "Overloaded"
    assert decoder.done is False


def test_decode_carries_cumulative_usage_from_message_delta() -> None:
    events = [
        message_start(input_tokens=0),
        message_delta("end_turn", 9, input_tokens=20, cache_creation_input_tokens=50),
        MESSAGE_STOP,
    ]
    decoder, _ = decode(events)
    assert decoder.usage == Usage(prompt_tokens=70, completion_tokens=9, cache_write_tokens=50)


@pytest.mark.parametrize(
    "event",
    [b"event: ping\ndata: {}\n\n", b": comment\n\n", b"data: not json\n\n", b"data: [1]\n\n", b"event: x\n\n"],
)
def test_decode_ignores_noise(event: bytes) -> None:
    decoder = AnthropicToChatStream(json_tool=False)
    assert decoder.feed(event) == []
    assert decoder.usage is None and not decoder.done and decoder.error_message is None


# ------------------------------------------------------------------------------------ stream: encoding


def chunk(delta: dict[str, Any], finish_reason: str | None = None, cid: str = "chatcmpl-1") -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


USAGE_CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": []}


def tool_fragment(index: int, arguments: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        fragment |= {"id": call_id, "type": "function"}
        fragment["function"]["name"] = name
    return fragment


def encode(chunks: list[dict[str, Any]], usage: Usage) -> bytes:
    encoder = ChatToAnthropicStream(MODEL)
    return b"".join(encoder.feed(c) for c in chunks) + encoder.finish(usage)


def parse_events(raw: bytes) -> list[dict[str, Any]]:
    """SSE bytes as events, each checked: framed `event: <type>\\ndata: <json>`, valid for the SDK."""
    assert raw.endswith(b"\n\n")
    events = []
    for frame in raw[:-2].split(b"\n\n"):
        event_line, data_line = frame.split(b"\n")
        data = orjson.loads(data_line.removeprefix(b"data: "))
        assert event_line == b"event: " + data["type"].encode()
        STREAM_EVENT.validate_python(data)
        events.append(data)
    return events


def accumulate(events: list[dict[str, Any]]) -> Message:
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        snapshot = accumulate_event(
            event=STREAM_EVENT.validate_python(event), current_snapshot=snapshot, json_bufs=json_bufs
        )
    assert snapshot is not None
    return Message.model_validate(snapshot.to_dict())


def assert_block_structure(events: list[dict[str, Any]]) -> None:
    """One block open at a time, numbered 0, 1, 2, ...; message_start first, message_delta and stop last."""
    assert events[0]["type"] == "message_start" and [e["type"] for e in events[-2:]] == [
        "message_delta",
        "message_stop",
    ]
    open_index, next_index = None, 0
    for event in events[1:-2]:
        if event["type"] == "content_block_start":
            assert open_index is None and event["index"] == next_index
            open_index, next_index = event["index"], next_index + 1
        elif event["type"] == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
        elif event["type"] == "content_block_delta":
            assert event["index"] == open_index
    assert open_index is None


def test_encode_text_stream() -> None:
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"})]
    chunks += [chunk({}, "stop"), USAGE_CHUNK]
    usage = Usage(prompt_tokens=30, completion_tokens=5, cached_tokens=10)
    events = parse_events(encode(chunks, usage))
    assert_block_structure(events)
    message = accumulate(events)
    assert message.id == "msg_chatcmpl-1" and message.model == MODEL and message.role == "assistant"
    assert [block.model_dump(exclude_none=True) for block in message.content] == [text("Hello")]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 5)
    assert message.usage.cache_read_input_tokens == 10


def test_encode_tools_after_text() -> None:
    chunks = [
        chunk({"role": "assistant", "content": "Checking."}),
        chunk({"tool_calls": [tool_fragment(0, "", "call_a", "get_weather")]}),
        chunk({"tool_calls": [tool_fragment(0, '{"city"')]}),
        chunk({"tool_calls": [tool_fragment(0, ': "Paris"}')]}),
        chunk({"tool_calls": [tool_fragment(1, '{"zone": "CET"}', "call_b", "get_time")]}),
        chunk({"tool_calls": [tool_fragment(2, "", "call_c", "ping")]}),
        chunk({}, "tool_calls"),
    ]
    events = parse_events(encode(chunks, Usage(10, 20)))
    assert_block_structure(events)
    message = accumulate(events)
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        text("Checking."),
        tool_use("call_a", "get_weather", {"city": "Paris"}),
        tool_use("call_b", "get_time", {"zone": "CET"}),
        tool_use("call_c", "ping", {}),
    ]
    assert message.stop_reason == "tool_use"


def test_encode_thinking_with_signature_and_redacted() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "EqQBCkYIARgCIkD"}]}),
        chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": "EmwKAhgB"}]}),
        chunk({"content": "42."}),
        chunk({}, "stop"),
    ]
    events = parse_events(encode(chunks, Usage(5, 5)))
    assert_block_structure(events)
    assert [block.model_dump(exclude_none=True) for block in accumulate(events).content] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCkYIARgCIkD"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        text("42."),
    ]


def test_encode_nothing_fed_still_makes_a_message() -> None:
    events = parse_events(ChatToAnthropicStream(MODEL).finish(Usage(3, 0)))
    assert [event["type"] for event in events] == ["message_start", "message_delta", "message_stop"]
    message = accumulate(events)
    assert message.content == [] and message.stop_reason == "end_turn" and message.usage.input_tokens == 3


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"), [("length", "max_tokens"), ("content_filter", "refusal"), ("stop", "end_turn")]
)
def test_encode_stop_reasons(finish_reason: str, stop_reason: str) -> None:
    events = parse_events(encode([chunk({"content": "x"}), chunk({}, finish_reason)], Usage(1, 1)))
    assert accumulate(events).stop_reason == stop_reason


def test_encode_tool_calls_reusing_one_index_with_new_ids() -> None:
    """Some OpenAI-compatible servers send every call at index 0: a new id still opens a new block."""
    chunks = [
        chunk({"tool_calls": [tool_fragment(0, '{"a": 1}', "call_1", "f")]}),
        chunk({"tool_calls": [tool_fragment(0, '{"b": 2}', "call_2", "g")]}),
        chunk({}, "stop"),
    ]
    events = parse_events(encode(chunks, Usage(1, 1)))
    assert_block_structure(events)
    message = accumulate(events)
    assert [(b.id, b.name, b.input) for b in message.content] == [("call_1", "f", {"a": 1}), ("call_2", "g", {"b": 2})]
    assert message.stop_reason == "tool_use"  # "stop" after tool calls still means tools to run


@pytest.mark.parametrize(
    "events",
    [TEXT_STREAM, TOOLS_STREAM, THINKING_STREAM],
    ids=["text", "tools", "thinking"],
)
def test_decode_then_encode_rebuilds_the_upstream_message(events: list[dict[str, Any]]) -> None:
    """Anthropic upstream → internal chunks → Anthropic client: the client's message is the upstream's."""
    decoder = AnthropicToChatStream(json_tool=False)
    encoder = ChatToAnthropicStream(MODEL)
    raw = b"".join(encoder.feed(c) for event in events for c in decoder.feed(sse(event)))
    assert decoder.usage is not None
    rebuilt = accumulate(parse_events(raw + encoder.finish(decoder.usage)))
    original = accumulate([event for event in events if event["type"] != "ping"])
    assert [b.model_dump() for b in rebuilt.content] == [b.model_dump() for b in original.content]
    assert rebuilt.stop_reason == original.stop_reason
    assert rebuilt.usage.model_dump(exclude_none=True) == {
        "input_tokens": original.usage.input_tokens,
        "output_tokens": original.usage.output_tokens,
        "cache_read_input_tokens": original.usage.cache_read_input_tokens or 0,
        "cache_creation_input_tokens": original.usage.cache_creation_input_tokens or 0,
    }


# ---------------------------------------------------------------------- the anthropic SDK as the client


def sdk_client(status: int, body: bytes, content_type: str = "application/json") -> anthropic.Anthropic:
    """An anthropic SDK client whose every request is answered in memory with `body`."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/messages"
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)

    transport = httpx2.MockTransport(answer)
    return anthropic.Anthropic(
        api_key="sk-test", base_url="http://relay.test", max_retries=0, http_client=httpx2.Client(transport=transport)
    )


def test_sdk_reads_a_translated_reply() -> None:
    completion = completion_of({"content": "Hi there", "tool_calls": [call("call_a", "f", '{"x": 1}')]}, "tool_calls")
    reply = chat_to_anthropic_reply(completion, Usage(8, 4), MODEL)
    client = sdk_client(200, orjson.dumps(reply))
    message = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "text" and message.content[0].text == "Hi there"
    assert message.content[1].type == "tool_use" and message.content[1].input == {"x": 1}
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 4


def test_sdk_stream_final_message_from_encoded_events() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "hmm"}),
        chunk({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig"}]}),
        chunk({"content": "Paris"}),
        chunk({"tool_calls": [tool_fragment(0, '{"city": "Paris"}', "call_a", "get_weather")]}),
        chunk({}, "tool_calls"),
        USAGE_CHUNK,
    ]
    client = sdk_client(200, encode(chunks, Usage(40, 12, cached_tokens=30)), "text/event-stream")
    with client.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        texts = list(stream.text_stream)
        message = stream.get_final_message()
    assert texts == ["Paris"]
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature == "sig"
    assert message.content[2].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens, message.usage.cache_read_input_tokens) == (
        10,
        12,
        30,
    )


def test_sdk_raises_a_mid_stream_error_event() -> None:
    encoder = ChatToAnthropicStream(MODEL)
    raw = encoder.feed(chunk({"content": "partial"})) + anthropic_stream_error(upstream_timeout())
    client = sdk_client(200, raw, "text/event-stream")
    with (
        pytest.raises(anthropic.APIStatusError, match="did not answer in time"),
        client.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream,
    ):
        stream.get_final_message()


# ------------------------------------------------------------------------------------ passthrough tap

PASSTHROUGH_STREAM = [
    message_start(cache_creation_input_tokens=40),
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    block_delta(0, {"type": "thinking_delta", "thinking": "hmm"}),
    block_delta(0, {"type": "signature_delta", "signature": "sig"}),
    block_stop(0),
    block_start(1, text("")),
    text_delta(1, 'The event "message_start" is first.'),
    block_stop(1),
    block_start(2, tool_use("toolu_a", "get_weather", {})),
    json_delta(2, '{"city": "Paris"}'),
    block_stop(2),
    message_delta("tool_use", 25),
    MESSAGE_STOP,
]


@pytest.mark.parametrize("named", [True, False], ids=["event-lines", "data-only"])
def test_passthrough_relays_bytes_and_reads_usage(named: bool) -> None:
    tap = AnthropicPassthroughTap()
    for event in PASSTHROUGH_STREAM:
        raw = sse(event, named)
        assert tap.feed(raw) is raw
        assert tap.done is (event["type"] == "message_stop")
    assert tap.usage == Usage(prompt_tokens=52, completion_tokens=25, cache_write_tokens=40)
    assert tap.completion_texts() == ["hmm", 'The event "message_start" is first.', "get_weather", '{"city": "Paris"}']
    assert tap.finish(Usage(1, 1)) == b""


def test_passthrough_parses_only_usage_events(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    real = codec.sse_json
    monkeypatch.setattr(codec, "sse_json", lambda event: parsed.append(event) or real(event))
    tap = AnthropicPassthroughTap()
    for event in PASSTHROUGH_STREAM:
        tap.feed(sse(event))
    assert [orjson.loads(p.split(b"data: ")[1])["type"] for p in parsed] == ["message_start", "message_delta"]


def test_passthrough_relays_an_error_event_as_it_came() -> None:
    tap = AnthropicPassthroughTap()
    tap.feed(sse(message_start()))
    error = sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert tap.feed(error) is error
    assert tap.error_message is None  # the client saw the upstream's own error event
    assert tap.done is False


def test_passthrough_cut_stream() -> None:
    tap = AnthropicPassthroughTap()
    for event in PASSTHROUGH_STREAM[:7]:
        tap.feed(sse(event))
    assert tap.done is False
    assert tap.usage == Usage(prompt_tokens=52, completion_tokens=1, cache_write_tokens=40)


def test_passthrough_without_usage_events() -> None:
    tap = AnthropicPassthroughTap()
    tap.feed(sse(text_delta(0, "x")))
    assert tap.usage is None and tap.completion_texts() == ["x"]


# --------------------------------------------------------------------------------------------- errors

ERROR_CASES = [
    pytest.param(bad_request("bad"), 400, "invalid_request_error", anthropic.BadRequestError, id="400"),
    pytest.param(
        RelayError(401, "no key", "authentication_error"),
        401,
        "authentication_error",
        anthropic.AuthenticationError,
        id="401",
    ),
    pytest.param(RelayError(402, "pay"), 402, "billing_error", anthropic.PaymentRequiredError, id="402"),
    pytest.param(RelayError(403, "no"), 403, "permission_error", anthropic.PermissionDeniedError, id="403"),
    pytest.param(RelayError(404, "none"), 404, "not_found_error", anthropic.NotFoundError, id="404"),
    pytest.param(RelayError(413, "big"), 413, "request_too_large", anthropic.ContentTooLargeError, id="413"),
    pytest.param(
        RelayError(429, "slow down", "rate_limit_exceeded"), 429, "rate_limit_error", anthropic.RateLimitError, id="429"
    ),
    pytest.param(
        insufficient_quota("out of credit"), 402, "billing_error", anthropic.PaymentRequiredError, id="quota-402"
    ),
    pytest.param(RelayError(409, "conflict"), 409, "invalid_request_error", anthropic.ConflictError, id="409"),
    pytest.param(RelayError(422, "bad"), 422, "invalid_request_error", anthropic.UnprocessableEntityError, id="422"),
    pytest.param(RelayError(499, "gone"), 400, "invalid_request_error", anthropic.BadRequestError, id="499-not-real"),
    pytest.param(RelayError(200, "odd"), 400, "invalid_request_error", anthropic.BadRequestError, id="200-not-error"),
    pytest.param(RelayError(500, "oops"), 500, "api_error", anthropic.InternalServerError, id="500"),
    pytest.param(upstream_unreachable("refused"), 502, "api_error", anthropic.InternalServerError, id="502"),
    pytest.param(RelayError(503, "busy"), 503, "overloaded_error", anthropic.ServiceUnavailableError, id="503"),
    pytest.param(upstream_timeout(), 504, "timeout_error", anthropic.GatewayTimeoutError, id="504"),
    pytest.param(RelayError(529, "overloaded"), 529, "overloaded_error", anthropic.OverloadedError, id="529"),
]


@pytest.mark.parametrize(("error", "status", "kind", "sdk_error"), ERROR_CASES)
def test_anthropic_error(error: RelayError, status: int, kind: str, sdk_error: type[Exception]) -> None:
    got_status, body = anthropic_error(error)
    assert (got_status, orjson.loads(body)) == (
        status,
        {"type": "error", "error": {"type": kind, "message": error.message}},
    )
    client = sdk_client(got_status, body)
    with pytest.raises(sdk_error) as caught:
        client.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == status and error.message in str(caught.value)


def test_anthropic_stream_error_event() -> None:
    assert anthropic_stream_error(RelayError(529, "Overloaded")) == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    # The decoder reads what the encoder writes.
    decoder = AnthropicToChatStream(json_tool=False)
    assert decoder.feed(anthropic_stream_error(bad_request("bad things"))) == []
    assert decoder.error_message == "bad things"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}',
            "max_tokens: too big",
        ),
        (b'{"error":"plain"}', "plain"),
        (b'{"message":"top-level"}', "top-level"),
        (b'{"error":{"code":5}}', '{"error":{"code":5}}'),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"x" * 600, "x" * 500),
        (b"", "no error message"),
    ],
)
def test_upstream_error_message(body: bytes, message: str) -> None:
    assert upstream_error_message(body) == message


def test_constants() -> None:
    assert ANTHROPIC_VERSION == "2023-06-01"
    assert JSON_TOOL == "json_response"
