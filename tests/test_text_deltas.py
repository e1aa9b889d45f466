"""The compiled path of Anthropic's stream translated for an OpenAI client (AnthropicTextDeltas in
relay/_eventscan.c) against the Python path, its reference: whatever the events and however they are read, the
client must get the same bytes and the tap must report the same usage, end and texts."""

from __future__ import annotations

import json
import sys

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.formats.anthropic import AnthropicTextDeltas, AnthropicToChatStream
from llmrelay.formats.openai import ChatToOpenAIStream
from llmrelay.relay.streaming import TEXT_MARKER, EventRelay, TranslatingTap
from tests.test_eventscan import SECRET, Body, Upstream, relay

HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'


class PythonOnlyTap(TranslatingTap):
    __slots__ = ()
    compiled_feed = None  # the relay then takes every read on the Python path


CREATED = 1_790_000_000  # both paths' chunks: the same second, whenever each tap was made


def tap(json_tool: bool, include_usage: bool, python_only: bool = False) -> TranslatingTap:
    kind = PythonOnlyTap if python_only else TranslatingTap
    decoder = AnthropicToChatStream(json_tool)
    decoder._created = CREATED
    return kind(decoder, ChatToOpenAIStream(include_usage))


def sse(data: dict) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def message_start(message_id: str, model: str) -> bytes:
    usage = {"input_tokens": 9, "output_tokens": 1}
    message = {"id": message_id, "type": "message", "role": "assistant", "model": model, "usage": usage}
    return sse({"type": "message_start", "message": message})


def delta(text: str, index: int, form: str) -> bytes:
    """A text delta written as Anthropic does (`orjson`), or in a form the compiled path must leave alone."""
    data = {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}
    if form == "ascii":  # non-ASCII as \\uXXXX, as Python's json writes it
        return b"event: content_block_delta\ndata: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
    event = sse(data)
    if form == "slash":
        return event.replace(b"/", b"\\/")
    if form == "zero":
        return event.replace(b'"index":', b'"index":0', 1)
    if form == "spaced":
        return event.replace(b'"text":', b'"text": ', 1)
    if form == "extra":
        return event.replace(b'"text_delta",', b'"text_delta","citations":[],', 1)
    if form == "bad-utf8":
        return event.replace(b'"text":"', b'"text":"\xff', 1)
    if form == "raw-control":  # JSON strings hold no raw control character
        return event.replace(b'"text":"', b'"text":"\t', 1)
    if form == "crlf":
        return event.replace(b"\n", b"\r\n")
    return event


FORMS = ["orjson"] * 6 + ["ascii", "slash", "zero", "spaced", "extra", "bad-utf8", "raw-control", "crlf"]
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['say "hi"', "a\\b", "line\nbreak\ttab\r\x08\x0c", "\x00\x1f\x7f", "é✓🙂", "/", ""]),
    st.just(SECRET.decode()),
)
OTHER_EVENTS = [
    sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    sse({"type": "ping"}),
    sse({"type": "content_block_stop", "index": 0}),
    message_start("msg_second", "claude-other"),
    message_start("msg_third", "claude-sonnet-4-5"),  # a new id alone
    message_start("msg_" + TEXT_MARKER, "m"),  # the marker's own JSON in the template: no compiled path
    sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}),
]
events = st.one_of(
    st.builds(delta, texts, st.integers(0, 12), st.sampled_from(FORMS)),
    st.sampled_from(OTHER_EVENTS),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(events, max_size=10),
    st.booleans(),
    st.lists(st.integers(0, 2000), max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_compiled_and_python_paths_translate_every_read_alike(
    middle: list[bytes], started: bool, cuts: list[int], json_tool: bool, include_usage: bool
) -> None:
    start = [message_start("msg_01", "claude-sonnet-4-5")] if started else []
    end = [sse({"type": "message_stop"})]
    event_list = [*start, *middle, *end]
    stream = b"".join(event_list)
    points = sorted({min(cut, len(stream)) for cut in cuts})
    cut_reads = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True) if stream[a:b]]
    for reads in (event_list, cut_reads):
        compiled = relay(tap(json_tool, include_usage), reads)
        reference = relay(tap(json_tool, include_usage, python_only=True), reads)
        assert compiled == reference
        assert SECRET not in compiled[0]


def test_the_usual_stream_takes_the_compiled_path() -> None:
    """After message_start, a text delta in Anthropic's form is the template around its text, and its text is kept
    as JSON until it is counted."""
    translating = tap(json_tool=False, include_usage=True)
    relay = EventRelay(translating, Body(), Upstream(), (SECRET,))  # type: ignore[arg-type]
    compiled = relay._compiled
    assert isinstance(compiled, AnthropicTextDeltas)
    assert compiled.template is None  # the stream's first chunk is the encoder's to see
    relay.feed(message_start("msg_01", "claude-x"))
    prefix, suffix = compiled.template
    assert prefix.startswith(b'data: {"id":"msg_01"') and prefix.endswith(b'"delta":{"content":"')
    event = delta('a "quoted" line\n', 3, "orjson")
    out = compiled(event)
    assert out == prefix + b'a \\"quoted\\" line\\n' + suffix
    assert orjson.loads(out[6:])["choices"][0]["delta"] == {"content": 'a "quoted" line\n'}
    assert translating._texts[-1] == b'a \\"quoted\\" line\\n'
    assert translating.completion_texts()[-1] == 'a "quoted" line\n'


def test_json_tool_mode_and_other_encoders_have_no_compiled_path() -> None:
    json_mode = tap(json_tool=True, include_usage=False)
    relay = EventRelay(json_mode, Body(), Upstream(), ())  # type: ignore[arg-type]
    relay.feed(message_start("msg_01", "claude-x"))
    assert relay._compiled.template is None  # text deltas give the client nothing in JSON-tool mode

    class NoTemplate:
        def feed(self, chunk: dict) -> bytes:
            return b""

        def finish(self, usage: object) -> bytes:
            return b""

    other = TranslatingTap(AnthropicToChatStream(False), NoTemplate())  # type: ignore[arg-type]
    assert other.compiled_feed((), bytearray()) is None


def test_what_the_compiled_path_answers_on_its_own() -> None:
    kept: list[bytes] = []
    partial = bytearray()
    deltas = AnthropicTextDeltas(kept, (SECRET,), partial)
    event = delta("hello", 0, "orjson")
    assert deltas(event) is None  # no template yet
    deltas.template = (b"<", b">")
    assert deltas(event) == b"<hello>"
    assert deltas(delta("multi-digit index", 1234, "orjson")) == b"<multi-digit index>"
    for other in (
        delta("", 0, "orjson"),  # an empty text gives nothing: the Python path's to say
        delta("x/y", 0, "slash"),  # \/ is written back as /
        delta("é", 0, "ascii"),
        delta("x", 0, "zero"),
        delta("x", 0, "bad-utf8"),
        delta("x", 0, "raw-control"),
        delta("x" + SECRET.decode(), 0, "orjson"),
        HEAD + b'0,"delta":{"type":"text_delta","text":"a"b"}}\n\n',  # an unescaped quote
        HEAD + b'0,"delta":{"type":"text_delta","text":"\\"}}\n\n',  # an escape cut by the string's end
        HEAD + b'1234567890,"delta":{"type":"text_delta","text":"a"}}\n\n',  # past the index's digits
        HEAD + b'0,"delta":{"type":"text_delta","text":"\xed\xa0\x80"}}\n\n',  # a surrogate in UTF-8
        HEAD + b'0,"delta":{"type":"text_delta","text":"\xf4\x90\x80\x80"}}\n\n',  # past U+10FFFF
        HEAD + b'0,"delta":{"type":"text_delta","text":"\xc0\xaf"}}\n\n',  # overlong
        b"data: {}\n\n",
    ):
        assert deltas(other) is None, other
    assert kept == [b"hello", b"multi-digit index"]
    partial += b"event: con"
    assert deltas(event) is None  # the splitter's: it ends the event in progress
    partial.clear()
    assert deltas(event) == b"<hello>"
    deltas.template = None
    assert deltas(event) is None
    for bad in ((b"<",), (b"<", "text"), [b"<", b">"]):
        with pytest.raises(TypeError):
            deltas.template = bad
    with pytest.raises(TypeError):
        deltas("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AnthropicTextDeltas([], ("not bytes",), bytearray())


def test_the_compiled_path_holds_no_stray_references() -> None:
    kept: list[bytes] = []
    deltas = AnthropicTextDeltas(kept, (SECRET,), bytearray())
    prefix, suffix = b"<" * 3, b">" * 3
    deltas.template = (prefix, suffix)
    event = delta("counted", 0, "orjson")
    before = [sys.getrefcount(item) for item in (event, prefix, suffix)]
    for _ in range(1000):
        deltas(event)
    after = [sys.getrefcount(item) for item in (event, prefix, suffix)]
    assert after == before
    assert len(kept) == 1000


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([b"", HEAD, HEAD + b'0,"delta":{"type":"text_delta","text":"']))
def test_any_bytes_give_the_template_around_a_json_text_or_none(noise: bytes, lead: bytes) -> None:
    """Whatever a read holds, the compiled path either declines or gives the template around a text that the JSON
    decoder reads back as the delta's text."""
    deltas = AnthropicTextDeltas([], (SECRET,), bytearray())
    deltas.template = (b"[", b"]")
    data = lead + noise + (b'"}}\n\n' if lead else b"")
    out = deltas(data)
    if out is not None:
        text = orjson.loads(b'"' + out[1:-1] + b'"')
        assert orjson.loads(data[data.index(b"{") :])["delta"]["text"] == text
