"""Pure-function tests for SSE splitting and the OpenAI stream tap (usage on the side, [DONE] held back)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletionChunk

from llmrelay.formats.openai import OpenAIStreamTap
from llmrelay.metering.pricing import Usage
from llmrelay.relay.streaming import EventRelay, SseSplitter

# ---------------------------------------------------------------------------------- realistic OpenAI chunks

ID = "chatcmpl-9xYzAbCdEf0123456789"
CREATED = 1_727_000_123
MODEL = "gpt-4o-2024-08-06"
FINGERPRINT = "fp_7568d46099"


def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = "omit", choices: bool = True) -> dict:
    body: dict[str, Any] = {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
    }
    if usage != "omit":
        body["usage"] = usage
    return body


def event(payload: dict[str, Any]) -> bytes:
    # OpenAI writes compact JSON, one `data:` line per event, a blank line after each.
    return b"data: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
USAGE = {
    "prompt_tokens": 19,
    "completion_tokens": 12,
    "total_tokens": 31,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
CACHED_USAGE = {**USAGE, "prompt_tokens_details": {"cached_tokens": 7}}


def text_stream(usage: Any = "omit", usage_chunk: dict[str, Any] | None = None) -> list[bytes]:
    """What OpenAI sends for "Hello world": role chunk, content chunks, finish chunk, [usage chunk], [DONE]."""
    events = [
        event(chunk({"role": "assistant", "content": "", "refusal": None}, usage=usage)),
        event(chunk({"content": "Hello"}, usage=usage)),
        event(chunk({"content": " world"}, usage=usage)),
        event(chunk({}, finish="stop", usage=usage)),
    ]
    if usage_chunk is not None:
        events.append(event(chunk(None, usage=usage_chunk, choices=False)))
    return [*events, DONE]


def payload(sse_event: bytes) -> dict[str, Any]:
    assert sse_event.startswith(b"data: ") and sse_event.endswith(b"\n\n")
    return json.loads(sse_event[len(b"data: ") :])


def test_realistic_chunks_are_valid_sdk_chunks() -> None:
    for sse in text_stream(usage=None, usage_chunk=USAGE)[:-1]:
        ChatCompletionChunk.model_validate(payload(sse))


# ------------------------------------------------------------------------------------------------ stream tap


def test_client_did_not_ask_null_usage_is_stripped_and_usage_chunk_dropped() -> None:
    tap = OpenAIStreamTap(client_wants_usage=False)
    stream = text_stream(usage=None, usage_chunk=CACHED_USAGE)
    outputs = [tap.feed(sse) for sse in stream]
    passed = [o for o in outputs if o is not None]
    assert len(passed) == 4  # role, two content chunks, finish; usage-only chunk and [DONE] held back
    for original, out in zip(stream[:4], passed, strict=True):
        assert b'"usage"' not in out
        parsed = payload(out)
        ChatCompletionChunk.model_validate(parsed)
        expected = payload(original)
        del expected["usage"]
        assert parsed == expected
        assert out == original.replace(b',"usage":null', b"")  # every other byte as the upstream sent it
    assert outputs[4] is None  # the usage-only chunk
    assert outputs[5] is None  # [DONE]
    assert tap.done
    assert tap.usage == Usage(prompt_tokens=19, completion_tokens=12, cached_tokens=7)
    assert tap.finish(tap.usage) == DONE


def test_client_asked_usage_chunk_is_passed_through() -> None:
    tap = OpenAIStreamTap(client_wants_usage=True)
    stream = text_stream(usage=None, usage_chunk=USAGE)
    outputs = [tap.feed(sse) for sse in stream]
    assert outputs[:5] == stream[:5]  # unchanged, `"usage":null` included, as OpenAI sends it to its clients
    assert outputs[5] is None
    assert tap.done
    assert tap.usage == Usage(19, 12, 0)
    # The upstream reported usage, so nothing is synthesised: only the held-back [DONE] follows.
    assert tap.finish(Usage(1, 1)) == DONE


@pytest.mark.parametrize(
    ("usage_field", "read"),
    [
        (b'"usage":null', None),
        (b'"usage" : null', None),  # spaced, as some OpenAI-compatible servers write JSON
        (b'"usage":\t{"prompt_tokens":3,"completion_tokens":2}', Usage(3, 2)),
        (b'"usage": {"prompt_tokens":5,"completion_tokens":1}', Usage(5, 1)),
    ],
)
def test_only_a_usage_object_is_read_and_every_chunk_is_relayed_unchanged(usage_field: bytes, read: Any) -> None:
    tap = OpenAIStreamTap(client_wants_usage=True)
    event = b'data: {"id":"c","object":"chat.completion.chunk","choices":[],' + usage_field + b"}\n\n"
    tap.feed(b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"content":"usage"}\n\n')
    assert tap.feed(event) == event
    if read is None:
        assert tap.usage is None
    else:
        assert tap.usage == read


def test_client_asked_but_upstream_sent_no_usage_gets_a_synthesised_chunk() -> None:
    tap = OpenAIStreamTap(client_wants_usage=True)
    for sse in text_stream():
        tap.feed(sse)
    assert tap.usage is None
    assert tap.done
    tail = tap.finish(Usage(prompt_tokens=25, completion_tokens=4, cached_tokens=3))
    events = SseSplitter().feed(tail)
    assert len(events) == 2
    assert events[1] == DONE
    synthesised = ChatCompletionChunk.model_validate(payload(events[0]))
    assert synthesised.id == ID
    assert synthesised.model == MODEL
    assert synthesised.created == CREATED
    assert synthesised.system_fingerprint == FINGERPRINT
    assert synthesised.choices == []
    assert synthesised.usage is not None
    assert synthesised.usage.prompt_tokens == 25
    assert synthesised.usage.completion_tokens == 4
    assert synthesised.usage.total_tokens == 29
    assert synthesised.usage.prompt_tokens_details is not None
    assert synthesised.usage.prompt_tokens_details.cached_tokens == 3


def test_synthesised_chunk_without_any_upstream_chunk_is_still_valid() -> None:
    tap = OpenAIStreamTap(client_wants_usage=True)
    tap.feed(DONE)
    events = SseSplitter().feed(tap.finish(Usage(3, 0)))
    assert events[1] == DONE
    ChatCompletionChunk.model_validate(payload(events[0]))


def test_usage_on_a_choice_chunk_is_recorded_and_removed_when_not_asked() -> None:
    # Some OpenAI-compatible servers attach usage to the final choice chunk instead of a separate one.
    tap = OpenAIStreamTap(client_wants_usage=False)
    last = chunk({}, finish="stop", usage=USAGE)
    out = tap.feed(event(last))
    assert out is not None
    parsed = payload(out)
    expected = dict(last)
    del expected["usage"]
    assert parsed == expected
    assert tap.usage == Usage(19, 12, 0)


def test_usage_on_a_choice_chunk_is_kept_when_asked() -> None:
    tap = OpenAIStreamTap(client_wants_usage=True)
    sse = event(chunk({}, finish="stop", usage=USAGE))
    assert tap.feed(sse) == sse
    assert tap.usage == Usage(19, 12, 0)


@pytest.mark.parametrize("done", [b"data: [DONE]\n\n", b"data:[DONE]\n\n"])
def test_done_is_held_back(done: bytes) -> None:
    tap = OpenAIStreamTap(client_wants_usage=False)
    assert not tap.done
    assert tap.feed(done) is None
    assert tap.done


@pytest.mark.parametrize(
    "sse",
    [
        b": keep-alive\n\n",
        b"data: not json at all\n\n",
        b'data: {"usage": "weird"}\n\n',
        b"event: ping\ndata: {}\n\n",
    ],
)
def test_unusual_events_pass_through_unchanged(sse: bytes) -> None:
    tap = OpenAIStreamTap(client_wants_usage=False)
    assert tap.feed(sse) == sse
    assert tap.usage is None


def test_completion_texts_collect_content_and_tool_call_fragments() -> None:
    call_start = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"index": 0, "id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ],
    }
    stream = [
        event(chunk({"role": "assistant", "content": "Checking"}, usage=None)),
        event(chunk({"content": " now."}, usage=None)),
        event(chunk(call_start, usage=None)),
        event(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}, usage=None)),
        event(chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}, usage=None)),
        event(chunk({"refusal": None}, usage=None)),
        event(chunk({}, finish="tool_calls", usage=None)),
        event(chunk(None, usage=USAGE, choices=False)),
        DONE,
    ]
    for sse in stream[:-2]:
        ChatCompletionChunk.model_validate(payload(sse))
    for wants in (False, True):
        tap = OpenAIStreamTap(client_wants_usage=wants)
        for sse in stream:
            tap.feed(sse)
        texts = tap.completion_texts()
        assert texts == ["Checking", " now.", "get_weather", "", '{"ci', 'ty":"Paris"}']
        assert "".join(texts) == 'Checking now.get_weather{"city":"Paris"}'


def test_generated_texts_take_every_text_field_of_messages_deltas_and_legacy_choices() -> None:
    from llmrelay.formats.openai import generated_texts

    replies = [
        {"choices": [{"index": 0, "delta": {"reasoning_content": "Think.", "content": "Say.", "refusal": "No."}}]},
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Whole.", "refusal": None}}]},
        {"choices": [{"index": 0, "text": "Legacy."}, "not a choice"]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}, 7]}}]},
        {"choices": None},
        {},
    ]
    assert generated_texts(replies) == ["Say.", "No.", "Think.", "Whole.", "Legacy.", "f", "{}"]
    assert generated_texts(iter(replies)) == generated_texts(replies)


def test_completion_texts_from_several_choices() -> None:
    tap = OpenAIStreamTap(client_wants_usage=False)
    both = chunk({"content": "A"})
    both["choices"].append({"index": 1, "delta": {"content": "B"}, "logprobs": None, "finish_reason": None})
    tap.feed(event(both))
    assert tap.completion_texts() == ["A", "B"]


# ------------------------------------------------------------------------------------------------ splitter

EVENTS = [
    b'data: {"a":1}\n\n',
    b'event: message\nid: 7\ndata: {"b":"\xc3\xa9\xe2\x82\xac"}\n\n',
    b": comment\n\n",
    b"data: [DONE]\n\n",
]
STREAM = b"".join(EVENTS)


def feed_all(pieces: list[bytes]) -> tuple[list[bytes], bytes]:
    splitter = SseSplitter()
    out: list[bytes] = []
    for piece in pieces:
        out.extend(splitter.feed(piece))
    return out, splitter.remainder()


def test_split_at_every_single_point() -> None:
    for i in range(len(STREAM) + 1):
        events, rest = feed_all([STREAM[:i], STREAM[i:]])
        assert events == EVENTS, i
        assert rest == b""


def test_split_at_every_pair_of_points() -> None:
    n = len(STREAM)
    for i in range(n + 1):
        for j in range(i, n + 1):
            events, rest = feed_all([STREAM[:i], STREAM[i:j], STREAM[j:]])
            assert events == EVENTS, (i, j)
            assert rest == b""


def test_byte_by_byte() -> None:
    events, rest = feed_all([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert events == EVENTS
    assert rest == b""


def test_each_event_is_returned_as_soon_as_it_is_complete() -> None:
    splitter = SseSplitter()
    position = 0
    for expected in EVENTS:
        end = position + len(expected)
        assert splitter.feed(STREAM[position : end - 1]) == []
        assert splitter.feed(STREAM[end - 1 : end]) == [expected]
        position = end


CRLF_STREAM = STREAM.replace(b"\n", b"\r\n")


def test_crlf_framing_at_every_split_point() -> None:
    assert b"\r\n\r\n" in CRLF_STREAM
    for i in range(len(CRLF_STREAM) + 1):
        events, rest = feed_all([CRLF_STREAM[:i], CRLF_STREAM[i:]])
        assert events == EVENTS, i  # normalised to LF framing
        assert rest == b""


def test_crlf_byte_by_byte() -> None:
    events, _ = feed_all([CRLF_STREAM[i : i + 1] for i in range(len(CRLF_STREAM))])
    assert events == EVENTS


def test_mixed_line_endings() -> None:
    mixed = b'data: {"a":1}\r\n\r\ndata: {"b":2}\n\ndata: {"c":3}\r\n\n'
    for i in range(len(mixed) + 1):
        events, _ = feed_all([mixed[:i], mixed[i:]])
        assert events == [b'data: {"a":1}\n\n', b'data: {"b":2}\n\n', b'data: {"c":3}\n\n'], i


def test_extra_blank_lines_yield_no_empty_events() -> None:
    events, rest = feed_all([b"\n\n\n\n" + EVENTS[0] + b"\n\n" + EVENTS[1]])
    assert events == [EVENTS[0], EVENTS[1]]
    assert rest == b""


def test_multi_megabyte_single_event() -> None:
    big_argument = json.dumps({"data": "x" * (3 * 1024 * 1024 + 17)})
    big = event(chunk({"tool_calls": [{"index": 0, "function": {"arguments": big_argument}}]}))
    assert len(big) > 3 * 1024 * 1024
    stream = big + EVENTS[0]
    splitter = SseSplitter()
    step = 64 * 1024
    out: list[bytes] = []
    for start in range(0, len(stream), step):
        got = splitter.feed(stream[start : start + step])
        if start + step < len(big):
            assert got == []  # nothing is emitted (or truncated) before the event is complete
        out.extend(got)
    assert out == [big, EVENTS[0]]
    assert splitter.remainder() == b""
    tap = OpenAIStreamTap(client_wants_usage=False)
    assert tap.feed(out[0]) == big
    assert tap.completion_texts() == [big_argument]


def test_remainder_holds_an_incomplete_event() -> None:
    splitter = SseSplitter()
    assert splitter.remainder() == b""
    assert splitter.feed(b'data: {"a":1}\n\ndata: {"partial"') == [b'data: {"a":1}\n\n']
    assert splitter.remainder() == b'data: {"partial"'
    assert splitter.feed(b":true}\n") == []
    assert splitter.remainder() == b'data: {"partial":true}\n'
    assert splitter.feed(b"\n") == [b'data: {"partial":true}\n\n']
    assert splitter.remainder() == b""


# ------------------------------------------------------------------------------------ splitter + tap, end to end


@pytest.mark.parametrize(("wants", "upstream_usage"), [(False, True), (True, True), (True, False), (False, False)])
def test_tap_output_does_not_depend_on_network_chunking(wants: bool, upstream_usage: bool) -> None:
    stream = b"".join(text_stream(usage=None, usage_chunk=USAGE if upstream_usage else None))

    def relay(pieces: list[bytes]) -> tuple[bytes, Usage | None, list[str]]:
        splitter = SseSplitter()
        tap = OpenAIStreamTap(client_wants_usage=wants)
        out = b""
        for piece in pieces:
            for sse in splitter.feed(piece):
                out += tap.feed(sse) or b""
        assert tap.done
        return out + tap.finish(Usage(5, 2)), tap.usage, tap.completion_texts()

    reference = relay([stream])
    for i in range(0, len(stream) + 1, 7):
        assert relay([stream[:i], stream[i:]]) == reference
    client_events = SseSplitter().feed(reference[0])
    assert client_events[-1] == DONE
    chunks = [ChatCompletionChunk.model_validate(payload(e)) for e in client_events[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello world"
    usage_chunks = [c for c in chunks if c.usage is not None]
    if wants:
        assert len(usage_chunks) == 1
        expected = (19, 12) if upstream_usage else (5, 2)
        assert (usage_chunks[0].usage.prompt_tokens, usage_chunks[0].usage.completion_tokens) == expected
    else:
        assert usage_chunks == []
        assert all(b'"usage"' not in e for e in client_events)
    assert reference[1] == (Usage(19, 12, 0) if upstream_usage else None)
    assert "".join(reference[2]) == "Hello world"


# ------------------------------------------------------------------------------ the event relay (per-read path)


class RecordingBody:
    """A BodyWriter that keeps what it is given; `room` writes are accepted before it reports a full client."""

    def __init__(self, room: int = 10**9) -> None:
        self.written: list[bytes] = []
        self.pushes = 0
        self.room = room

    def write(self, data: bytes) -> bool:
        self.written.append(data)
        return len(self.written) < self.room

    def push(self) -> None:
        self.pushes += 1


class PausableUpstream:
    def __init__(self) -> None:
        self.paused = 0

    def pause_reading(self) -> None:
        self.paused += 1


SECRET = b"sk-upstream-secret-0123456789"


class EchoTap:
    """Gives each event back as it came: what the relay writes is then exactly the events it split."""

    def feed(self, sse: bytes) -> bytes:
        return sse


def relay_reads(reads: list[bytes], finish: bool = True) -> tuple[bytes, RecordingBody]:
    body = RecordingBody()
    relay = EventRelay(EchoTap(), body, PausableUpstream(), (SECRET,))  # type: ignore[arg-type]
    for data in reads:
        relay.feed(data)
    if finish:
        relay.finish()
    return b"".join(body.written), body


@pytest.mark.parametrize(
    "reads",
    [
        [b'data: {"a":1}\n\n', b'data: {"b":2}\n\n'],  # one whole one-line event per read
        [b'data: {"a":1}\r\n\r\n', b'data: {"b":2}\r\n\n'],  # CRLF framing: normalised, never relayed as is
        [b'data: {"a":1}\n', b'\ndata: {"b":2}\n\n'],  # a blank line split over two reads
        [b'data: {"a":1}\n\ndata: {"b', b'":2}\n\n'],  # an event begun in one read, ended in the next
        [b'event: x\ndata: {"a":1}\n\ndata: {"b":2}\n\n'],  # several events, several lines, one read
    ],
)
def test_every_read_shape_relays_the_same_events_as_the_splitter(reads: list[bytes]) -> None:
    written, _ = relay_reads(reads)
    expected = b"".join(SseSplitter().feed(b"".join(reads)))
    assert written == expected
    assert b"\r" not in written


def test_a_lone_cr_in_a_one_line_event_is_left_as_the_splitter_leaves_it() -> None:
    read = b'data: {"a":"x\ry"}\n\n'
    written, _ = relay_reads([read])
    assert written == read == b"".join(SseSplitter().feed(read))


def test_a_secret_is_scrubbed_on_the_one_line_path_and_on_the_split_path() -> None:
    one_line = b'data: {"error":"bad key ' + SECRET + b'"}\n\n'
    for reads in ([one_line], [one_line[:20], one_line[20:]], [b"event: e\n" + one_line]):
        written, _ = relay_reads(reads)
        assert SECRET not in written
        assert b"[redacted]" in written


def test_a_final_event_without_its_blank_line_is_relayed_once_at_the_end() -> None:
    written, _ = relay_reads([b'data: {"a":1}\n\n', b'data: {"b":2}\n'], finish=False)
    assert written == b'data: {"a":1}\n\n'
    written, _ = relay_reads([b'data: {"a":1}\n\n', b'data: {"b', b'":2}\n'])
    assert written == b'data: {"a":1}\n\ndata: {"b":2}\n\n'


def test_an_event_cut_off_mid_line_is_not_relayed_at_the_end() -> None:
    written, _ = relay_reads([b'data: {"a":1}\n\n', b'data: {"b'])
    assert written == b'data: {"a":1}\n\n'


def test_a_full_client_pauses_the_upstream_and_feed_first_pushes() -> None:
    body = RecordingBody(room=2)
    upstream = PausableUpstream()
    relay = EventRelay(EchoTap(), body, upstream, (SECRET,))  # type: ignore[arg-type]
    relay.feed_first(b'data: {"a":1}\n\n')
    assert (body.pushes, upstream.paused) == (1, 0)
    relay.feed(b'data: {"b":2}\n\n')
    assert upstream.paused == 1
