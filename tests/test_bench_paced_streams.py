"""The bench's token-paced streams (bench/fake_upstream.py's `-paced` models), checked against each provider's SDK
types: what the paced-* loads time must be what a real upstream sends, or the gateway's translation is measured on
a stream no provider writes. Each step of a paced stream is one write; the first carries the HTTP head."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from anthropic.types import RawContentBlockDeltaEvent
from google.genai import types
from openai.types.chat import ChatCompletionChunk

from tests.test_fake_anthropic_shapes import EVENT_TYPES as ANTHROPIC_EVENTS
from tests.test_fake_gemini_shapes import strict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import fake_upstream  # the bench's fake, run from bench/ as a script

EVENTS = fake_upstream.PACING.events


def stream_events(
    kind: str, model: str, flag: bool = True, head: bytes = fake_upstream.SSE_HEAD
) -> tuple[list[list[bytes]], list[bytes]]:
    """(the events of each step, every event), each as it is written; the HTTP head and the chunked framing
    checked and taken off."""
    reply = fake_upstream.paced_reply(kind, model, flag)
    steps: list[list[bytes]] = []
    for number, step in enumerate(reply.steps):
        events = []
        for write in step:
            if number == 0 and write == head:
                continue
            write = write.removesuffix(fake_upstream.CHUNKED_END)
            size, _, rest = write.partition(b"\r\n")
            assert rest.endswith(b"\r\n") and int(size, 16) == len(rest) - 2, write
            events.append(rest[:-2])
        steps.append(events)
    assert reply.steps[0][0] == head and reply.steps[-1][-1].endswith(fake_upstream.CHUNKED_END)
    return steps, [event for events in steps for event in events]


def test_paced_gemini_stream_is_google_genai_responses_with_cumulative_usage() -> None:
    steps, events = stream_events("gemini", "gemini-2.0-flash-paced")
    assert len(steps) == EVENTS + 1 and all(len(events) == 1 for events in steps)
    assert all(event.startswith(b"data: ") and event.endswith(b"\r\n\r\n") for event in events)  # Google's CRLF
    parsed = [strict(types.GenerateContentResponse, json.loads(event[6:])) for event in events]
    assert "".join(response.text or "" for response in parsed) == "word " * EVENTS
    finishes = [response.candidates[0].finish_reason for response in parsed]
    assert finishes == [None] * EVENTS + [types.FinishReason.STOP]
    assert [response.usage_metadata.candidates_token_count for response in parsed] == [*range(1, EVENTS + 1), EVENTS]
    assert {response.model_version for response in parsed} == {"gemini-2.0-flash-paced"}
    assert len({response.response_id for response in parsed}) == 1


def test_paced_gemini_stream_without_sse_is_one_json_array_an_element_a_step() -> None:
    steps, pieces = stream_events("gemini", "gemini-2.0-flash-paced", False, fake_upstream.GEMINI_ARRAY_HEAD)
    assert len(steps) == EVENTS + 1 and pieces[-1] == b"\n]"
    array = json.loads(b"".join(pieces))
    parsed = [strict(types.GenerateContentResponse, response) for response in array]
    assert "".join(response.text or "" for response in parsed) == "word " * EVENTS
    assert parsed[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert [len(step) for step in steps[:-1]] == [1] * EVENTS  # each response its own write


def test_paced_anthropic_stream_is_the_sdk_events_one_text_delta_a_step() -> None:
    steps, events = stream_events("messages", "claude-sonnet-4-5-paced")
    assert len(steps) == EVENTS + 1
    parsed = []
    for event in events:
        name, data = event.decode().split("\n", 1)
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        if payload["type"] != "ping":
            parsed.append(strict(ANTHROPIC_EVENTS[payload["type"]], payload))
    deltas = [event.delta.text for event in parsed if isinstance(event, RawContentBlockDeltaEvent)]
    assert deltas == ["word "] * EVENTS
    assert [len(events) for events in steps[1:-1]] == [1] * (EVENTS - 1)  # each further delta its own write
    assert parsed[-2].usage.output_tokens == EVENTS


@pytest.mark.parametrize("include_usage", [True, False])
def test_paced_chat_stream_is_openai_chunks_then_done(include_usage: bool) -> None:
    steps, events = stream_events("chat", "", include_usage)
    assert len(steps) == EVENTS + 1
    data = [event.split(b"data: ", 1)[1].strip() for event in events]
    assert data[-1] == b"[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(item) for item in data[:-1]]
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == "word " * EVENTS
    usage = chunks[-1].usage
    assert (usage is not None and usage.completion_tokens == EVENTS) == include_usage
