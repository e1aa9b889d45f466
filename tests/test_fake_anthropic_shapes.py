"""The fake Anthropic upstream itself: what it emits validates against the anthropic SDK's own types (with no
field the SDK does not know), and it refuses what the real Messages API refuses. Talks to the fake directly
(no gateway), with the official SDK and with raw HTTP."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pydantic
import pytest
from anthropic.types import (
    Message,
    MessageTokensCount,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
)
from anthropic.types.shared import ErrorResponse

from tests.conftest import Reply, call
from tests.fakes.anthropic_upstream import (
    ANTHROPIC_UPSTREAM_SECRET,
    FORCED_INPUT,
    THINKING_SIGNATURE,
    THINKING_TEXT,
    FakeAnthropic,
)

MODEL = "claude-fake-1"
HEADERS = {"x-api-key": ANTHROPIC_UPSTREAM_SECRET, "anthropic-version": "2023-06-01"}
THINKING = {"type": "enabled", "budget_tokens": 1024}
TOOLS = [
    {"name": "lookup_city", "description": "Find a city.", "input_schema": {"type": "object"}},
    {"name": "answer", "input_schema": {"type": "object", "properties": {"answer": {"type": "string"}}}},
]
IMAGE_BASE64 = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
IMAGE_URL = {"type": "image", "source": {"type": "url", "url": "https://fake.example/cat.png"}}
EVENT_TYPES: dict[str, type[pydantic.BaseModel]] = {
    "message_start": RawMessageStartEvent,
    "content_block_start": RawContentBlockStartEvent,
    "content_block_delta": RawContentBlockDeltaEvent,
    "content_block_stop": RawContentBlockStopEvent,
    "message_delta": RawMessageDeltaEvent,
    "message_stop": RawMessageStopEvent,
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def claude(fake: FakeAnthropic) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key=ANTHROPIC_UPSTREAM_SECRET, max_retries=0, timeout=30)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def request(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": [user(text)], **extra}


def post(fake: FakeAnthropic, body: object, path: str = "/v1/messages", headers: dict | None = None) -> Reply:
    return call("POST", f"{fake.base_url}{path}", body, HEADERS if headers is None else headers)


def assert_known_fields(value: Any, where: str = "$") -> None:
    """Pydantic keeps fields a model does not declare in model_extra: the fake must send none."""
    if isinstance(value, pydantic.BaseModel):
        assert not value.model_extra, f"{where}: fields unknown to the SDK: {value.model_extra}"
        for name in type(value).model_fields:
            assert_known_fields(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_known_fields(item, f"{where}[{i}]")


def strict(model: type[pydantic.BaseModel], data: Any) -> Any:
    parsed = model.model_validate(data)
    assert_known_fields(parsed)
    return parsed


def sse_events(reply: Reply) -> list[dict[str, Any]]:
    """Every `event: <type>\\ndata: <json>` frame, checked: the event name matches data.type, the data
    validates against the SDK's event type (ping has none in the SDK: it must be exactly {"type": "ping"})."""
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = []
    for frame in reply.body.decode().split("\n\n"):
        if not frame:
            continue
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), frame
        data = json.loads(data_line.removeprefix("data: "))
        assert name_line.removeprefix("event: ") == data["type"]
        if data["type"] == "ping":
            assert data == {"type": "ping"}
        elif data["type"] != "error":
            strict(EVENT_TYPES[data["type"]], data)
        events.append(data)
    return events


def eventually(condition: Callable[[], bool], seconds: float = 5) -> bool:
    """The fake's counters move on its own thread, just after the client has seen the end of the stream."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def deltas(events: list[dict[str, Any]], kind: str, index: int | None = None) -> list[dict[str, Any]]:
    return [
        e["delta"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == kind and index in (None, e["index"])
    ]


# ---- plain text ------------------------------------------------------------------------------------------------


def test_text_reply_is_a_message(fake: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    reply = claude.messages.create(model=MODEL, max_tokens=100, messages=[user("hello there")])
    assert isinstance(reply, Message)
    assert reply.content == [TextBlock(type="text", text="You said: hello there")]
    assert reply.model == MODEL and reply.role == "assistant" and reply.id.startswith("msg_fake_")
    assert (reply.stop_reason, reply.stop_sequence) == ("end_turn", None)
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (3 + 3 + 2, 4)
    assert (reply.usage.cache_read_input_tokens, reply.usage.cache_creation_input_tokens) == (0, 0)

    raw = post(fake, request("hello there"))
    assert raw.status == 200
    parsed = strict(Message, raw.json())
    assert parsed.content[0].text == "You said: hello there"
    assert set(raw.json()) == {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"}


def test_message_ids_count_up(claude: anthropic.Anthropic) -> None:
    first = claude.messages.create(model=MODEL, max_tokens=10, messages=[user("a")])
    second = claude.messages.create(model=MODEL, max_tokens=10, messages=[user("b")])
    assert int(second.id.removeprefix("msg_fake_")) == int(first.id.removeprefix("msg_fake_")) + 1


@pytest.mark.parametrize(
    "system", ["be very brief", [{"type": "text", "text": "be very"}, {"type": "text", "text": "brief"}]]
)
def test_input_tokens_count_messages_and_system(claude: anthropic.Anthropic, system: Any) -> None:
    reply = claude.messages.create(
        model=MODEL,
        max_tokens=100,
        system=system,
        messages=[user("one two three"), assistant("four five"), user("#fake:chunks=1 six")],
    )
    # 3 + (3 + 3) + (3 + 2) + (3 + 2) + 3 words of system; only the last user message is echoed, without directives.
    assert reply.usage.input_tokens == 3 + 6 + 5 + 5 + 3
    assert reply.content[0].text == "You said: six"


def test_requests_are_recorded(fake: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    claude.messages.create(model=MODEL, max_tokens=5, messages=[user("record-marker-7")])
    (received,) = fake.requests_with("record-marker-7")
    assert received.path == "/v1/messages"
    assert received.json == {"model": MODEL, "max_tokens": 5, "messages": [user("record-marker-7")]}
    assert received.headers["anthropic-version"]


# ---- streaming -------------------------------------------------------------------------------------------------


def test_stream_with_the_sdk(fake: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    completed = fake.state.completed_streams
    with claude.messages.stream(model=MODEL, max_tokens=100, messages=[user("stream me please")]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "You said: stream me please"
    assert len(pieces) == 5  # one delta per word by default
    assert [(b.type, b.text) for b in final.content] == [("text", "You said: stream me please")]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3 + 3 + 3, 5)
    assert eventually(lambda: fake.state.completed_streams == completed + 1)


def test_raw_stream_events_follow_the_documented_order(fake: FakeAnthropic) -> None:
    events = sse_events(post(fake, request("#fake:chunks=2 a b c d", stream=True)))
    assert [e["type"] for e in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["stop_sequence"] is None
    assert start["usage"] == {
        "input_tokens": 3 + 3 + 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }
    assert events[2]["content_block"] == {"type": "text", "text": ""}
    assert [d["text"] for d in deltas(events, "text_delta")] == ["You said: a", " b c d"]
    assert events[6]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[6]["usage"] == {"output_tokens": 6}


def test_every_event_is_its_own_sse_frame(fake: FakeAnthropic) -> None:
    reply = post(fake, request("framing check", stream=True))
    frames = [f for f in reply.body.split(b"\n\n") if f]
    assert all(f.startswith(b"event: ") and f.count(b"\ndata: ") == 1 for f in frames)
    assert reply.body.endswith(b"\n\n")
    assert len(frames) == len(sse_events(reply))


# ---- tools -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("directive", "count"), [("#fake:tools", 1), ("#fake:tools=2", 2)])
def test_tool_use_non_stream(fake: FakeAnthropic, claude: anthropic.Anthropic, directive: str, count: int) -> None:
    reply = claude.messages.create(model=MODEL, max_tokens=100, tools=TOOLS, messages=[user(f"{directive} where?")])
    assert reply.stop_reason == "tool_use"
    assert reply.content[0] == TextBlock(type="text", text="Let me check.")
    assert reply.content[1:] == [
        ToolUseBlock(type="tool_use", id=f"toolu_fake_{i}", name="lookup_city", input={"city": "Paris", "n": i})
        for i in range(count)
    ]
    assert reply.usage.output_tokens == 3 + 4 * count
    strict(Message, post(fake, request(f"{directive} x", tools=TOOLS)).json())


def test_tool_use_without_tools_is_get_weather(claude: anthropic.Anthropic) -> None:
    reply = claude.messages.create(model=MODEL, max_tokens=100, messages=[user("#fake:tools weather?")])
    assert [b.name for b in reply.content if b.type == "tool_use"] == ["get_weather"]


@pytest.mark.parametrize(("directive", "count"), [("#fake:tools", 1), ("#fake:tools=2", 2)])
def test_tool_use_stream(fake: FakeAnthropic, claude: anthropic.Anthropic, directive: str, count: int) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=100, tools=TOOLS, messages=[user(directive)]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.id, b.input) for b in final.content if b.type == "tool_use"] == [
        (f"toolu_fake_{i}", {"city": "Paris", "n": i}) for i in range(count)
    ]

    events = sse_events(post(fake, request(directive, tools=TOOLS, stream=True)))
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text"] + ["tool_use"] * count
    for i, tool_start in enumerate(starts[1:]):
        # The block opens with an empty input; the JSON arrives in several fragments.
        assert tool_start["content_block"] == {
            "type": "tool_use",
            "id": f"toolu_fake_{i}",
            "name": "lookup_city",
            "input": {},
        }
        fragments = [d["partial_json"] for d in deltas(events, "input_json_delta", tool_start["index"])]
        assert len(fragments) >= 2
        assert json.loads("".join(fragments)) == {"city": "Paris", "n": i}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_forced_tool_answers_with_that_tool_only(fake: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    choice = {"type": "tool", "name": "answer"}
    reply = claude.messages.create(
        model=MODEL, max_tokens=100, tools=TOOLS, tool_choice=choice, messages=[user("is it?")]
    )
    assert reply.content == [ToolUseBlock(type="tool_use", id="toolu_fake_0", name="answer", input=FORCED_INPUT)]
    assert reply.stop_reason == "tool_use"

    with claude.messages.stream(
        model=MODEL, max_tokens=100, tools=TOOLS, tool_choice=choice, messages=[user("is it?")]
    ) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [("tool_use", "answer", FORCED_INPUT)]
    assert final.stop_reason == "tool_use"


def test_tool_results_answer_the_previous_tool_use(claude: anthropic.Anthropic) -> None:
    reply = claude.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=TOOLS,
        messages=[
            user("where?"),
            assistant([{"type": "tool_use", "id": "toolu_1", "name": "lookup_city", "input": {"q": "x"}}]),
            user(
                [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Paris"}, {"type": "text", "text": "ok"}]
            ),
        ],
    )
    assert reply.content[0].text == "You said: ok"


# ---- thinking --------------------------------------------------------------------------------------------------


def test_thinking_non_stream(claude: anthropic.Anthropic) -> None:
    reply = claude.messages.create(model=MODEL, max_tokens=2048, thinking=THINKING, messages=[user("think hard")])
    assert reply.content == [
        ThinkingBlock(type="thinking", thinking=THINKING_TEXT, signature=THINKING_SIGNATURE),
        TextBlock(type="text", text="You said: think hard"),
    ]
    assert reply.usage.output_tokens == 5 + 4


def test_thinking_stream(fake: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=2048, thinking=THINKING, messages=[user("hmm")]) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking"
    assert (final.content[0].thinking, final.content[0].signature) == (THINKING_TEXT, THINKING_SIGNATURE)
    assert final.content[1].text == "You said: hmm"
    assert final.usage.output_tokens == 5 + 3

    events = sse_events(post(fake, {**request("hmm"), "max_tokens": 2048, "thinking": THINKING, "stream": True}))
    assert events[2]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    block = [e for e in events if e.get("index") == 0]
    kinds = [e["delta"]["type"] for e in block if e["type"] == "content_block_delta"]
    # thinking_delta events, then exactly one signature_delta just before the block stops.
    assert kinds == ["thinking_delta"] * 5 + ["signature_delta"]
    assert block[-2]["delta"] == {"type": "signature_delta", "signature": THINKING_SIGNATURE}
    assert block[-1] == {"type": "content_block_stop", "index": 0}
    assert "".join(d["thinking"] for d in deltas(events, "thinking_delta")) == THINKING_TEXT


# ---- images, max_tokens, stop sequences, cache ------------------------------------------------------------------


def test_images_are_counted_in_the_reply(claude: anthropic.Anthropic) -> None:
    content = [IMAGE_BASE64, {"type": "text", "text": "describe these"}, IMAGE_URL]
    reply = claude.messages.create(model=MODEL, max_tokens=100, messages=[user(content)])
    assert reply.content[0].text == "You said: describe these (2 images)"
    assert reply.usage.input_tokens == 3 + 3 + 2


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_truncates(claude: anthropic.Anthropic, stream: bool) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 3, "messages": [user("one two three four")]}
    if stream:
        with claude.messages.stream(**kwargs) as live:
            reply = live.get_final_message()
    else:
        reply = claude.messages.create(**kwargs)
    assert reply.content[0].text == "You said: one"
    assert (reply.stop_reason, reply.usage.output_tokens) == ("max_tokens", 3)


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_cuts_before_the_word(claude: anthropic.Anthropic, stream: bool) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "stop_sequences": ["zzz", "banana"],
        "messages": [user("apple banana cherry")],
    }
    if stream:
        with claude.messages.stream(**kwargs) as live:
            reply = live.get_final_message()
    else:
        reply = claude.messages.create(**kwargs)
    assert reply.content[0].text == "You said: apple"
    assert (reply.stop_reason, reply.stop_sequence, reply.usage.output_tokens) == ("stop_sequence", "banana", 3)


def test_cache_usage_directives(fake: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    text = "#fake:cache_read=100 #fake:cache_write=20 hi"
    reply = claude.messages.create(model=MODEL, max_tokens=100, messages=[user(text)])
    usage = reply.usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens, usage.input_tokens) == (100, 20, 9)

    events = sse_events(post(fake, request(text, stream=True)))
    start_usage = events[0]["message"]["usage"]
    assert (start_usage["cache_read_input_tokens"], start_usage["cache_creation_input_tokens"]) == (100, 20)
    with claude.messages.stream(model=MODEL, max_tokens=100, messages=[user(text)]) as stream:
        final = stream.get_final_message()
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (100, 20)


# ---- count_tokens ----------------------------------------------------------------------------------------------


def test_count_tokens_matches_the_usage(fake: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    messages = [user("count these words"), assistant("sure"), user("and these")]
    counted = claude.messages.count_tokens(model=MODEL, system="short system", messages=messages)
    assert isinstance(counted, MessageTokensCount)
    used = claude.messages.create(model=MODEL, max_tokens=50, system="short system", messages=messages).usage
    assert counted.input_tokens == used.input_tokens == 3 + 6 + 4 + 5 + 2

    raw = post(fake, {"model": MODEL, "messages": messages}, "/v1/messages/count_tokens")
    assert strict(MessageTokensCount, raw.json()).input_tokens == 3 + 6 + 4 + 5
    assert raw.json() == {"input_tokens": 18}
    refused = post(fake, {"model": MODEL, "max_tokens": 5, "messages": messages}, "/v1/messages/count_tokens")
    assert refused.status == 400
    assert refused.json()["error"]["message"] == "max_tokens: Extra inputs are not permitted"


# ---- errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class", "kind"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_directives(
    claude: anthropic.Anthropic, status: int, error_class: type[Exception], kind: str, stream: bool
) -> None:
    messages = [user(f"#fake:error={status} please")]
    with pytest.raises(anthropic.APIStatusError) as raised:
        if stream:
            with claude.messages.stream(model=MODEL, max_tokens=10, messages=messages) as live:
                live.get_final_message()
        else:
            claude.messages.create(model=MODEL, max_tokens=10, messages=messages)
    error = raised.value
    assert type(error) is error_class
    assert error.status_code == status
    assert error.body["type"] == "error" and set(error.body) == {"type", "error"}
    assert error.body["error"]["type"] == kind and error.body["error"]["message"]
    if kind != "request_too_large":  # documented for 413, though the SDK's ErrorType literal lacks it
        strict(ErrorResponse, error.body)
    assert (error.response.headers.get("retry-after") == "7") is (status == 429)
    assert (ANTHROPIC_UPSTREAM_SECRET in error.body["error"]["message"]) is (status == 401)


def with_messages(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": list(messages)}


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "lookup_city", "input": {}}
OPENAI_TOOL = {"type": "function", "function": {"name": "lookup_city", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        (with_messages(user("a"), user("b")), 'found multiple "user" roles in a row'),
        (with_messages(assistant("a"), user("b")), 'first message must use the "user" role'),
        (with_messages(user([{"type": "text", "text": ""}])), "messages.0.content.0.text: text content blocks"),
        (with_messages(user("   ")), "messages.0: all messages must have non-empty content"),
        ({**request("hi"), "temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
        ({**request("hi"), "frequency_penalty": 0.2}, "frequency_penalty: Extra inputs are not permitted"),
        ({"model": MODEL, "messages": [user("hi")]}, "max_tokens: Field required"),
        ({**request("hi"), "max_tokens": 0}, "max_tokens: Input should be a positive integer"),
        ({"max_tokens": 5, "messages": [user("hi")]}, "model: Field required"),
        (with_messages(), "messages: at least one message is required"),
        (with_messages({"role": "system", "content": "be nice"}, user("hi")), "messages.0.role: Input should be"),
        (with_messages({"role": "user", "content": "hi", "name": "bob"}), "messages.0.name: Extra inputs"),
        (
            with_messages(user("a"), assistant("b"), user([{"type": "tool_result", "tool_use_id": "toolu_9"}])),
            "unexpected `tool_use_id` found in `tool_result` blocks: toolu_9",
        ),
        (
            with_messages(user("a"), assistant([TOOL_USE]), user("no result")),
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
        ),
        (with_messages(user([{"type": "image_url", "image_url": {"url": "x"}}])), "Input tag 'image_url'"),
        (with_messages(user([{"type": "image", "source": {"type": "file"}}])), "image sources must be of type"),
        ({**request("hi"), "tools": [OPENAI_TOOL]}, "tools.0.type: Input tag 'function'"),
        ({**request("hi"), "tools": [{"name": "f"}]}, "tools.0.input_schema"),
        ({**request("hi"), "tools": TOOLS, "tool_choice": {"type": "required"}}, "tool_choice.type"),
        ({**request("hi"), "tools": TOOLS, "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name"),
        ({**request("hi"), "system": [{"type": "text", "text": ""}]}, "system.0.text"),
        (
            {**request("hi"), "max_tokens": 2048, "thinking": THINKING, "temperature": 0.5},
            "`temperature` may only be set to 1 when thinking is enabled",
        ),
        (
            {**request("hi"), "max_tokens": 2048, "thinking": THINKING, "tools": TOOLS, "tool_choice": {"type": "any"}},
            "Thinking may not be enabled when tool_choice forces tool use",
        ),
        ({**request("hi"), "thinking": {"type": "enabled", "budget_tokens": 10}}, "budget_tokens"),
    ],
)
def test_strict_validation(fake: FakeAnthropic, body: dict[str, Any], message_part: str) -> None:
    reply = post(fake, body)
    assert reply.status == 400, reply.body
    error = strict(ErrorResponse, reply.json())
    assert error.error.type == "invalid_request_error"
    assert message_part in error.error.message


def test_strict_validation_through_the_sdk(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(model=MODEL, max_tokens=10, messages=[user("a"), user("b")])
    assert "roles must alternate" in raised.value.body["error"]["message"]


# ---- broken streams --------------------------------------------------------------------------------------------


def test_midstream_error_event(fake: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        claude.messages.stream(model=MODEL, max_tokens=100, messages=[user("#fake:midstream_error a b")]) as live,
    ):
        received.extend(live.text_stream)
    assert received == ["You"]
    assert raised.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

    events = sse_events(post(fake, request("#fake:midstream_error a b", stream=True)))
    assert events[-1] == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert len(deltas(events, "text_delta")) == 1
    assert "message_stop" not in [e["type"] for e in events]


def test_cut_drops_the_connection_mid_message(fake: FakeAnthropic) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    connection.request("POST", "/v1/messages", json.dumps(request("#fake:cut a b c", stream=True)), HEADERS)
    response = connection.getresponse()
    with pytest.raises(http.client.IncompleteRead) as raised:
        response.read()
    connection.close()
    partial = raised.value.partial.decode()
    assert "event: message_start" in partial
    assert partial.count('"type":"text_delta"') == 2
    assert "message_stop" not in partial


def test_slow_stream_counts_the_client_leaving(fake: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    cancelled = fake.state.cancelled_streams
    with claude.messages.stream(model=MODEL, max_tokens=10, messages=[user("#fake:slow")]) as live:
        assert next(iter(live.text_stream)) == " tick"
    assert eventually(lambda: fake.state.cancelled_streams == cancelled + 1)


def test_sleep_delays_the_answer(claude: anthropic.Anthropic) -> None:
    started = time.monotonic()
    claude.messages.create(model=MODEL, max_tokens=10, messages=[user("#fake:sleep=0.3 late")])
    assert time.monotonic() - started >= 0.3
    with pytest.raises(anthropic.APITimeoutError):
        claude.with_options(timeout=0.2).messages.create(
            model=MODEL, max_tokens=10, messages=[user("#fake:sleep=1 too late")]
        )


# ---- auth ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"anthropic-version": "2023-06-01"},
        {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-wrong"},
        {"anthropic-version": "2023-06-01", "Authorization": "Bearer sk-ant-wrong"},
        # x-api-key decides when both are sent.
        {
            "anthropic-version": "2023-06-01",
            "x-api-key": "sk-wrong",
            "Authorization": f"Bearer {ANTHROPIC_UPSTREAM_SECRET}",
        },
    ],
)
def test_missing_or_wrong_key_is_401(fake: FakeAnthropic, headers: dict[str, str]) -> None:
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        reply = post(fake, request("hi"), path, headers)
        assert reply.status == 401
        error = strict(ErrorResponse, reply.json())
        assert error.error.type == "authentication_error"
        assert ANTHROPIC_UPSTREAM_SECRET not in error.error.message


def test_sdk_with_a_wrong_key_gets_authentication_error(fake: FakeAnthropic) -> None:
    wrong = anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model=MODEL, max_tokens=10, messages=[user("hi")])


def test_key_in_x_api_key_or_bearer_is_accepted(fake: FakeAnthropic) -> None:
    bearer = {"anthropic-version": "2023-06-01", "Authorization": f"Bearer {ANTHROPIC_UPSTREAM_SECRET}"}
    assert post(fake, request("hi")).status == 200
    assert post(fake, request("hi"), headers=bearer).status == 200


def test_anthropic_version_header_is_required(fake: FakeAnthropic) -> None:
    reply = post(fake, request("hi"), headers={"x-api-key": ANTHROPIC_UPSTREAM_SECRET})
    assert reply.status == 400
    assert reply.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"},
    }
