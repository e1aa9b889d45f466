"""The compiled path of Gemini's stream translated for an OpenAI client (GeminiTextDeltas in relay/_eventscan.c)
against the Python path, its reference: whatever the responses and however they are read, the client must get the
same bytes and the tap must report the same usage, end and texts."""

from __future__ import annotations

import json
import sys
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.formats.gemini import GeminiTextDeltas, GeminiToChatStream
from llmrelay.formats.openai import ChatToOpenAIStream
from llmrelay.relay.streaming import TEXT_MARKER, EventRelay, TranslatingTap
from tests.test_eventscan import SECRET, Body, Upstream, relay
from tests.test_text_deltas import CREATED, PythonOnlyTap

MODEL = "gemini-2.0-flash-001"


def tap(model: str, include_usage: bool, python_only: bool = False) -> TranslatingTap:
    kind = PythonOnlyTap if python_only else TranslatingTap
    decoder = GeminiToChatStream(model)
    decoder._created = CREATED
    return kind(decoder, ChatToOpenAIStream(include_usage))


def usage(output: int, details: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"promptTokenCount": 7, "candidatesTokenCount": output, "totalTokenCount": 7 + output}
    if details:
        metadata["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": 7}]
    return metadata


def response(text: str, output: int, form: str = "google", model: str = MODEL) -> bytes:
    """One GenerateContentResponse event with one piece of text, written as Google does (`: ` after a name, no
    space after a comma, CRLF framing), or in a form that the compiled path must read as the Python path does."""
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    data: dict[str, Any] = {"candidates": [candidate], "usageMetadata": usage(output), "modelVersion": model}
    data["responseId"] = "resp-0"
    separators, ensure_ascii, framing = (",", ": "), False, b"\r\n\r\n"
    if form == "compact":
        separators = (",", ":")
    elif form == "spaced":
        separators = (", ", ": ")
    elif form == "ascii":
        ensure_ascii = True
    elif form == "lf":
        framing = b"\n\n"
    elif form == "no-index":
        del candidate["index"]
    elif form == "index-1":
        candidate["index"] = 1
    elif form == "index-float":
        candidate["index"] = 0.0
    elif form == "role-first":
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
    elif form == "two-parts":
        candidate["content"]["parts"].append({"text": "more"})
    elif form == "thought":
        candidate["content"]["parts"][0]["thought"] = True
    elif form == "finish":
        candidate["finishReason"] = "STOP"
    elif form == "safety":
        candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}]
    elif form == "details":
        data["usageMetadata"] = usage(output, details=True)
    elif form == "no-usage":
        del data["usageMetadata"]
    elif form == "usage-float":
        data["usageMetadata"]["candidatesTokenCount"] = output + 0.5
    elif form == "usage-string":
        data["usageMetadata"] = "none"
    elif form == "usage-first":
        data = {"usageMetadata": data.pop("usageMetadata"), **data}
    elif form == "no-model":
        del data["modelVersion"], data["responseId"]
    elif form == "feedback":
        data["promptFeedback"] = {"blockReason": "OTHER"}
    payload = json.dumps(data, separators=separators, ensure_ascii=ensure_ascii).encode()
    if form == "slash":
        payload = payload.replace(b"/", b"\\/")
    elif form == "crlf-inside":
        payload = payload.replace(b'"usageMetadata"', b'\r\n"usageMetadata"', 1)
    elif form == "twice":  # a member twice: the decoder keeps the last
        payload = payload.replace(b'"usageMetadata"', b'"modelVersion": "other","usageMetadata"', 1)
    elif form == "bad-json":
        payload = payload[:-1]
    elif form == "no-space":
        return b"data:" + payload + framing
    return b"data: " + payload + framing


FORMS = ["google"] * 8 + [
    "compact",
    "spaced",
    "ascii",
    "lf",
    "no-index",
    "index-1",
    "index-float",
    "role-first",
    "two-parts",
    "thought",
    "finish",
    "safety",
    "details",
    "no-usage",
    "usage-float",
    "usage-string",
    "usage-first",
    "no-model",
    "feedback",
    "slash",
    "crlf-inside",
    "twice",
    "bad-json",
    "no-space",
]
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['say "hi"', "a\\b", "line\nbreak\ttab\r\x08\x0c", "\x00\x1f\x7f", "é✓🙂", "a/b", ""]),
    st.just(SECRET.decode()),
)
OTHER_EVENTS = [
    response("x", 3, model="gemini-other"),  # a new modelVersion: the stream's model changes
    response("x", 3, model=TEXT_MARKER),  # the marker's own JSON in the template: no compiled path
    b'data: {"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}\r\n\r\n',
    b'data: {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}\r\n\r\n',
    b": keep-alive\r\n\r\n",
]
events = st.one_of(
    st.builds(response, texts, st.integers(0, 10**6), st.sampled_from(FORMS)),
    st.sampled_from(OTHER_EVENTS),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(events, max_size=10), st.lists(st.integers(0, 3000), max_size=3), st.booleans())
def test_compiled_and_python_paths_translate_every_read_alike(
    middle: list[bytes], cuts: list[int], include_usage: bool
) -> None:
    event_list = [response("Hello", 1), *middle, response("", 99, "finish")]
    stream = b"".join(event_list)
    points = sorted({min(cut, len(stream)) for cut in cuts})
    cut_reads = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True) if stream[a:b]]
    for reads in (event_list, cut_reads):
        compiled = relay(tap("gemini-2.0-flash", include_usage), reads)
        reference = relay(tap("gemini-2.0-flash", include_usage, python_only=True), reads)
        assert compiled == reference
        assert SECRET not in compiled[0]


def test_the_usual_stream_takes_the_compiled_path_and_keeps_the_last_usage() -> None:
    """After the first text, a response of one text in Google's form is the template around its text; its usage is
    kept as it came until the stream's usage is asked for, and a later one read by the Python path replaces it."""
    translating = tap("gemini-2.0-flash", include_usage=True)
    relay = EventRelay(translating, Body(), Upstream(), (SECRET,))  # type: ignore[arg-type]
    compiled = relay._compiled
    assert isinstance(compiled, GeminiTextDeltas)
    assert compiled.template is None and compiled.usage is None
    relay.feed(response("Hello", 1))  # the first chunk carries the role: the Python path's
    prefix, suffix = compiled.template
    assert prefix.startswith(b'data: {"id":"chatcmpl-resp-0"') and prefix.endswith(b'"delta":{"content":"')
    assert compiled.model == MODEL.encode()
    event = response('a "quoted" line\n', 2, "details")
    out = compiled(event)
    assert out == prefix + b'a \\"quoted\\" line\\n' + suffix
    chunk = orjson.loads(out[6:])
    assert chunk["model"] == MODEL and chunk["choices"][0]["delta"] == {"content": 'a "quoted" line\n'}
    assert orjson.loads(compiled.usage) == usage(2, details=True)
    assert translating.usage is not None and translating.usage.completion_tokens == 2
    assert translating.completion_texts() == ["Hello", 'a "quoted" line\n']
    relay.feed(response("done", 5, "finish"))  # the Python path's: its usage is now the later one
    assert compiled.usage is None and translating.usage.completion_tokens == 5
    relay.feed(response("late", 6, "no-model"))  # the compiled path's again (the Python path writes it alike)
    assert translating.usage.completion_tokens == 6
    relay.feed(response("new model", 7, model="gemini-2.5-pro"))
    assert compiled.model == b"gemini-2.5-pro" and b'"model":"gemini-2.5-pro"' in compiled.template[0]


def test_the_template_is_made_at_the_first_text_whatever_came_before() -> None:
    """A stream that thinks first: the template waits for the first candidate's first text, then the next text
    takes the compiled path."""
    thought = response("pondering", 1, "thought")
    relay = EventRelay(tap("gemini-2.0-flash", include_usage=False), Body(), Upstream(), ())  # type: ignore[arg-type]
    relay.feed(thought)
    relay.feed(thought)
    assert relay._compiled.template is None
    relay.feed(response("Hello", 2))
    assert relay._compiled.template is not None
    assert relay._compiled(response(" world", 3)) is not None


def test_what_the_compiled_path_answers_on_its_own() -> None:
    kept: list[bytes] = []
    partial = bytearray()
    deltas = GeminiTextDeltas(kept, (SECRET,), partial)
    event = response("hello", 4)
    assert deltas(event) is None  # no template yet
    deltas.template = (b"<", b">")
    deltas.model = MODEL.encode()
    for form in ("google", "compact", "spaced", "lf", "no-index", "role-first", "details", "usage-first", "no-space"):
        assert deltas(response("hello", 4, form)) == b"<hello>", form
    assert deltas(response("hello", 4, "no-usage")) == b"<hello>"
    assert orjson.loads(deltas.usage) == usage(4)  # a response without usage leaves the last one
    for other in (
        response("", 4),  # an empty text gives no chunk: the Python path's to say
        response("x/y", 4, "slash"),
        response("é", 4, "ascii"),
        response("x", 4, "index-1"),
        response("x", 4, "index-float"),
        response("x", 4, "two-parts"),
        response("x", 4, "thought"),
        response("x", 4, "finish"),
        response("x", 4, "safety"),
        response("x", 4, "usage-float"),
        response("x", 4, "usage-string"),
        response("x", 4, "feedback"),
        response("x", 4, "crlf-inside"),
        response("x", 4, "twice"),
        response("x", 4, "bad-json"),
        response("x", 4, model="gemini-other"),
        response("x" + SECRET.decode(), 4),
        b'data: {"candidates": [{"content": {"parts": [{"text": "a"b"}]}}]}\r\n\r\n',  # an unescaped quote
        b'data: {"candidates": [{"content": {"parts": [{"text": "\\"}]}}]}\r\n\r\n',  # an escape cut short
        b'data: {"candidates": [{"content": {"parts": [{"text": "\xed\xa0\x80"}]}}]}\r\n\r\n',  # a surrogate
        b'data: {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "usageMetadata": {"n": 012}}\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "usageMetadata": {"n": 1}} x\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"text": "a"}]}}]}\r\n\r\ndata: {}\r\n\r\n',  # two events
        b'data: {"candidates": [{"content": {"parts": [{"text": "a"}]}}]}\r\n',  # not ended
        b'data: {"candidates": [], "usageMetadata": {"n": 1}}\r\n\r\n',
        b'data: {"usageMetadata": ' + b"[" * 12 + b"]" * 12 + b"}\r\n\r\n",  # nested past the limit
        b"data: {}\r\n\r\n",
    ):
        assert deltas(other) is None, other
    assert kept == [b"hello"] * 10
    partial += b"data: {"
    assert deltas(event) is None  # the splitter's: it ends the event in progress
    partial.clear()
    assert deltas(event) == b"<hello>"
    deltas.usage = None
    assert deltas.usage is None
    with pytest.raises(TypeError):
        deltas.usage = b"{}"  # only the Python path's "a later one was read" may be set
    with pytest.raises(TypeError):
        deltas.model = "text"  # type: ignore[assignment]
    deltas.template = None
    assert deltas(event) is None
    with pytest.raises(TypeError):
        deltas("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        GeminiTextDeltas([], ("not bytes",), bytearray())


def test_the_compiled_path_holds_no_stray_references() -> None:
    kept: list[bytes] = []
    deltas = GeminiTextDeltas(kept, (SECRET,), bytearray())
    prefix, suffix, model = b"<" * 3, b">" * 3, MODEL.encode()
    deltas.template = (prefix, suffix)
    deltas.model = model
    event = response("counted", 5)
    before = [sys.getrefcount(item) for item in (event, prefix, suffix, model)]
    for _ in range(1000):
        deltas(event)
    after = [sys.getrefcount(item) for item in (event, prefix, suffix, model)]
    assert after == before
    assert len(kept) == 1000 and orjson.loads(deltas.usage) == usage(5)


LEAD = b'data: {"candidates": [{"content": {"parts": [{"text": "'


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([b"", b"data: {", LEAD]))
def test_any_bytes_give_the_template_around_a_json_text_or_none(noise: bytes, lead: bytes) -> None:
    """Whatever a read holds, the compiled path either declines or gives the template around a text that the JSON
    decoder reads back as the response's text, and keeps a usage that the decoder reads as the response's."""
    deltas = GeminiTextDeltas([], (SECRET,), bytearray())
    deltas.template = (b"[", b"]")
    deltas.model = MODEL.encode()
    data = lead + noise + (b'"}]}}], "usageMetadata": {"n": 1}}\r\n\r\n' if lead == LEAD else b"")
    out = deltas(data)
    if out is not None:
        text = orjson.loads(b'"' + out[1:-1] + b'"')
        decoded = orjson.loads(data[5:])
        assert decoded["candidates"][0]["content"]["parts"][0]["text"] == text
        if deltas.usage is not None:
            assert orjson.loads(deltas.usage) == decoded["usageMetadata"]
