"""The compiled path of the OpenAI passthrough (relay/_eventscan.c) against the Python path, its reference: every
read, whatever its shape, must give the client the same bytes and the tap the same usage, end and kept events."""

from __future__ import annotations

import sys

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.formats.openai import OneLinePassthrough, OpenAIStreamTap
from llmrelay.metering.pricing import Usage
from llmrelay.providers.base import StreamTap
from llmrelay.relay.streaming import EventRelay

SECRET = b"sk-upstream-secret-0123456789"


class PythonOnlyTap(OpenAIStreamTap):
    compiled_feed = None  # the relay then takes every read on the Python path


class Body:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> bool:
        self.written.append(data)
        return True

    def push(self) -> None:
        pass


class Upstream:
    def pause_reading(self) -> None:
        pass


def relay(tap: StreamTap, reads: list[bytes]) -> tuple[bytes, Usage | None, bool, list[str]]:
    """Every read through an EventRelay with `tap`: the client's bytes, and the tap's usage, end and texts."""
    body = Body()
    relay = EventRelay(tap, body, Upstream(), (SECRET,))  # type: ignore[arg-type]
    for data in reads:
        relay.feed(data)
    relay.finish()
    return b"".join(body.written), tap.usage, tap.done, tap.completion_texts()


def test_the_compiled_path_is_built() -> None:
    # bin/test runs where a C compiler is (.ci/run); without one llmrelay still installs, on the Python path only.
    assert OneLinePassthrough is not None, "llmrelay/relay/_eventscan.c was not compiled: is gcc installed?"


def test_the_relay_of_an_openai_tap_takes_the_compiled_path() -> None:
    tap = OpenAIStreamTap(client_wants_usage=True)
    relay = EventRelay(tap, Body(), Upstream(), (SECRET,))  # type: ignore[arg-type]
    assert isinstance(relay._compiled, OneLinePassthrough)
    assert EventRelay(PythonOnlyTap(True), Body(), Upstream(), ())._compiled is None  # type: ignore[arg-type]


def chunk_event(content: str, usage: bytes) -> bytes:
    payload = orjson.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [{"delta": {"content": content}}]})
    return b"data: " + payload[:-1] + usage + b"}\n\n"


USAGE_FORMS = [
    b"",
    b',"usage":null',
    b', "usage": null',
    b',"usage" :\tnull',
    b',"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}',
    b',"usage":nul',
]
EXTRA_EVENTS = [
    b"data: [DONE]\n\n",
    b"data:[DONE]\n\n",
    b": keep-alive\n\n",
    b"event: message\ndata: {}\n\n",
    b'data: {"error":"' + SECRET + b'"}\n\n',
    b'data: {"a":"x\ry"}\n\n',
    b'data: {"a":1}\r\n\r\n',
    b'data: {"a":1,"usage":null}\r\n\n',
    b"data: x\n",
    b"\n\n",
    b"data: \n\n",
]
events = st.one_of(
    st.builds(chunk_event, st.text(max_size=8), st.sampled_from(USAGE_FORMS)),
    st.sampled_from(EXTRA_EVENTS),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, min_size=1, max_size=8), st.lists(st.integers(0, 400), max_size=3), st.booleans())
def test_compiled_and_python_paths_relay_every_read_alike(
    event_list: list[bytes], cuts: list[int], wants: bool
) -> None:
    stream = b"".join(event_list)
    points = sorted({min(cut, len(stream)) for cut in cuts})
    reads = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True) if stream[a:b]]
    whole_reads = list(event_list)
    for shaped in (reads, whole_reads):
        compiled = relay(OpenAIStreamTap(client_wants_usage=wants), shaped)
        reference = relay(PythonOnlyTap(client_wants_usage=wants), shaped)
        assert compiled == reference
        assert SECRET not in compiled[0]


@pytest.mark.parametrize("strip", [False, True])
def test_what_the_compiled_path_answers_on_its_own(strip: bool) -> None:
    kept: list[bytes] = []
    passthrough = OneLinePassthrough(kept, strip, (SECRET,), bytearray())
    plain = b'data: {"a":1,"usage":null}\n\n'
    assert passthrough(plain) == (b'data: {"a":1}\n\n' if strip else plain)
    assert passthrough(b'data: {"a":1, "usage": null}\n\n') == b'data: {"a":1, "usage": null}\n\n'
    for other in (b'data: {"usage":{"total_tokens":1}}\n\n', b"data: [DONE]\n\n", b"data: " + SECRET + b"\n\n"):
        assert passthrough(other) is None
    assert len(kept) == 2
    partial = bytearray(b"data: {")
    after_part = OneLinePassthrough(kept, strip, (SECRET,), partial)
    assert after_part(plain) is None  # the splitter's: it ends the event in progress
    partial.clear()
    assert after_part(plain) is not None
    with pytest.raises(TypeError):
        passthrough("data: {}\n\n")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        OneLinePassthrough([], strip, ("not bytes",), bytearray())


def test_the_compiled_path_holds_no_stray_references() -> None:
    kept: list[bytes] = []
    passthrough = OneLinePassthrough(kept, False, (SECRET,), bytearray())
    event = b'data: {"a":1,"usage":null}\n\n' + b" " * 3  # not interned: its count is its own
    event = event[:-3]
    before = sys.getrefcount(event)
    for _ in range(1000):
        passthrough(event)
    assert sys.getrefcount(event) == before + 1000  # one per kept event, none leaked
    kept.clear()
    assert sys.getrefcount(event) == before
