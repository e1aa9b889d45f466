"""The fake upstream itself: every reply it builds validates against the openai SDK's own response types,
so the end-to-end tests run against OpenAI's real wire formats. Talks to the fake directly (no gateway)."""

from __future__ import annotations

import base64
import json
import struct
import time
import urllib.request

import pytest
from openai import OpenAI
from openai.types import Completion, CreateEmbeddingResponse, ImagesResponse, ModerationCreateResponse
from openai.types.audio import Transcription, TranscriptionVerbose, Translation, TranslationVerbose
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.conftest import Reply, call
from tests.fakes.openai_upstream import (
    FAKE_IMAGE_PNG,
    INVALID_AUDIO_MESSAGE,
    REASONING_TOKENS,
    SPEECH_CONTENT_TYPES,
    UPSTREAM_SECRET,
    FakeOpenAI,
    embedding_vector,
    encode_multipart,
    image_url,
    parse_multipart,
    png_bytes,
    revised_prompt,
    speech_audio,
    srt_of,
    transcript_text,
    vtt_of,
    wav_bytes,
)

AUTH = {"Authorization": f"Bearer {UPSTREAM_SECRET}"}


@pytest.fixture(scope="module")
def sdk(upstream: FakeOpenAI) -> OpenAI:
    return OpenAI(api_key=UPSTREAM_SECRET, base_url=upstream.base_url, max_retries=0, timeout=30)


def post(upstream: FakeOpenAI, path: str, body: object) -> Reply:
    return call("POST", f"{upstream.base_url}{path}", body, AUTH)


def post_form(upstream: FakeOpenAI, path: str, fields: list[tuple[str, str]], files: list) -> Reply:
    content_type, raw = encode_multipart(fields, files)
    return call("POST", f"{upstream.base_url}{path}", raw=raw, headers={**AUTH, "Content-Type": content_type})


def sse_events(body: bytes) -> list[str]:
    return [line[len(b"data: ") :].decode() for line in body.split(b"\n\n") if line.startswith(b"data: ")]


def assert_error(reply: Reply, status: int, param: str | None = None) -> dict:
    assert reply.status == status, reply.body
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if param is not None:
        assert error["param"] == param
    return error


@pytest.mark.parametrize(
    "path",
    [
        "/embeddings",
        "/images/generations",
        "/images/edits",
        "/images/variations",
        "/audio/speech",
        "/audio/transcriptions",
        "/audio/translations",
        "/completions",
        "/moderations",
    ],
)
def test_every_endpoint_requires_the_upstream_key_and_records_the_request(upstream: FakeOpenAI, path: str) -> None:
    marker = f"auth-marker-{path}".encode()
    reply = call("POST", f"{upstream.base_url}{path}", raw=b'{"m": "' + marker + b'"}', headers={"Authorization": "x"})
    assert_error(reply, 401)
    (received,) = [r for r in upstream.state.requests if marker in r.raw]
    assert received.path == f"/v1{path}"
    assert received.headers["Authorization"] == "x"


# ---- embeddings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "count", "tokens"),
    [
        ("one two three", 1, 3),
        (["one two", "three four five"], 2, 5),
        ([11, 12, 13, 14], 1, 4),
        ([[1, 2], [3, 4, 5], [6]], 3, 6),
    ],
)
def test_embeddings_shape_and_usage(upstream: FakeOpenAI, inputs: object, count: int, tokens: int) -> None:
    reply = post(upstream, "/embeddings", {"model": "text-embedding-3-small", "input": inputs})
    assert reply.status == 200
    parsed = CreateEmbeddingResponse.model_validate(reply.json())
    assert [e.index for e in parsed.data] == list(range(count))
    assert parsed.data[1 if count > 1 else 0].embedding == embedding_vector(1 if count > 1 else 0)
    assert len(parsed.data[0].embedding) == 8
    assert parsed.model == "text-embedding-3-small"
    assert parsed.usage.prompt_tokens == parsed.usage.total_tokens == tokens


def test_embeddings_dimensions_base64_and_directives(upstream: FakeOpenAI, sdk: OpenAI) -> None:
    body = {"model": "m", "input": ["a b", "c"], "dimensions": 3, "encoding_format": "base64"}
    data = post(upstream, "/embeddings", body).json()
    for item in data["data"]:
        packed = base64.b64decode(item["embedding"])
        assert list(struct.unpack("<3f", packed)) == embedding_vector(item["index"], 3)
        item["embedding"] = list(struct.unpack("<3f", packed))
    CreateEmbeddingResponse.model_validate(data)

    # The SDK asks for base64 by default and decodes it; explicit float comes back as floats.
    assert sdk.embeddings.create(model="m", input="x y", dimensions=5).data[0].embedding == embedding_vector(0, 5)
    assert sdk.embeddings.create(model="m", input="x", encoding_format="float").data[0].embedding == embedding_vector(0)

    assert "usage" not in post(upstream, "/embeddings", {"model": "m", "input": "#fake:nousage hi"}).json()
    assert_error(post(upstream, "/embeddings", {"model": "m", "input": ["ok", "#fake:error=429"]}), 429)
    assert_error(post(upstream, "/embeddings", {"model": "m"}), 400, "input")


# ---- images -------------------------------------------------------------------------------------------------


def test_image_generation_shapes(upstream: FakeOpenAI, sdk: OpenAI) -> None:
    body = {"model": "dall-e-3", "prompt": "a red cat", "size": "1024x1792", "quality": "hd", "style": "vivid"}
    parsed = ImagesResponse.model_validate(post(upstream, "/images/generations", body).json())
    assert parsed.created > 0 and len(parsed.data) == 1
    assert parsed.data[0].url == image_url(0) and parsed.data[0].revised_prompt == revised_prompt("a red cat")

    body = {"model": "dall-e-2", "prompt": "cats", "n": 3, "response_format": "b64_json"}
    parsed = ImagesResponse.model_validate(post(upstream, "/images/generations", body).json())
    assert len(parsed.data) == 3
    assert all(base64.b64decode(d.b64_json) == FAKE_IMAGE_PNG and d.url is None for d in parsed.data)
    assert FAKE_IMAGE_PNG.startswith(b"\x89PNG\r\n\x1a\n")

    assert len(sdk.images.generate(model="dall-e-2", prompt="two", n=2).data) == 2
    assert_error(post(upstream, "/images/generations", {"model": "dall-e-3", "prompt": "#fake:error=400"}), 400)


def test_image_edits_and_variations_parse_multipart(upstream: FakeOpenAI, sdk: OpenAI) -> None:
    image = png_bytes(4, 4, (1, 2, 3, 255))
    mask = png_bytes(4, 4, (0, 0, 0, 0))
    edited = sdk.images.edit(
        image=("in.png", image, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="edit-shape-marker",
        model="dall-e-2",
        n=2,
        size="256x256",
    )
    ImagesResponse.model_validate(edited.model_dump())
    assert [d.url for d in edited.data] == [image_url(0), image_url(1)]
    received = upstream.requests_with("edit-shape-marker")[-1]
    assert received.headers["Content-Type"].startswith("multipart/form-data")
    form = {p.name: p for p in parse_multipart(received.headers["Content-Type"], received.raw)}
    assert form["image"].data == image and form["image"].filename == "in.png"
    assert form["mask"].data == mask and form["n"].text == "2" and form["size"].text == "256x256"

    varied = post_form(
        upstream,
        "/images/variations",
        [("model", "dall-e-2"), ("n", "3"), ("response_format", "b64_json")],
        [("image", "v.png", image, "image/png")],
    )
    parsed = ImagesResponse.model_validate(varied.json())
    assert len(parsed.data) == 3 and parsed.data[0].b64_json
    assert_error(post_form(upstream, "/images/edits", [("prompt", "p")], []), 400, "image")


# ---- speech -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("response_format", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_speech_streams_in_chunks_with_the_format_content_type(upstream: FakeOpenAI, response_format: str) -> None:
    body = json.dumps({"model": "tts-1", "input": "hello", "voice": "alloy", "response_format": response_format})
    request = urllib.request.Request(
        f"{upstream.base_url}/audio/speech", data=body.encode(), headers={**AUTH, "Content-Type": "application/json"}
    )
    arrivals: list[float] = []
    pieces: list[bytes] = []
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == SPEECH_CONTENT_TYPES[response_format]
        assert response.headers["Transfer-Encoding"] == "chunked"
        while piece := response.read1(65536):
            pieces.append(piece)
            arrivals.append(time.monotonic())
    expected = speech_audio(response_format)
    assert b"".join(pieces) == b"".join(expected)
    assert len(expected) >= 5 and all(len(c) == 4096 for c in expected)
    assert arrivals[-1] - arrivals[0] >= 0.15, "the chunks arrive spread over time"
    magic = {"mp3": b"ID3", "opus": b"OggS", "flac": b"fLaC", "wav": b"RIFF", "aac": b"\xff\xf1"}
    assert expected[0].startswith(magic.get(response_format, b""))


def test_speech_with_the_sdk_and_errors(upstream: FakeOpenAI, sdk: OpenAI) -> None:
    with sdk.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="hi") as response:
        chunks = list(response.iter_bytes())
    assert len(chunks) > 1 and b"".join(chunks) == b"".join(speech_audio("mp3"))
    reply = post(upstream, "/audio/speech", {"model": "tts-1", "voice": "alloy", "input": "#fake:error=503"})
    assert_error(reply, 503)


# ---- transcriptions and translations ------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["transcriptions", "translations"])
def test_audio_json_and_plain_formats(upstream: FakeOpenAI, task: str) -> None:
    audio = wav_bytes(2.5)
    text = transcript_text("speech.wav")
    files = [("file", "speech.wav", audio, "audio/wav")]

    def form(response_format: str | None) -> Reply:
        fields = [("model", "whisper-1")] + ([("response_format", response_format)] if response_format else [])
        return post_form(upstream, f"/audio/{task}", fields, files)

    plain = Translation if task == "translations" else Transcription
    assert plain.model_validate(form(None).json()).text == text
    assert plain.model_validate(form("json").json()).text == text
    for response_format, expected in [("text", text + "\n"), ("srt", srt_of(text, 2.5)), ("vtt", vtt_of(text, 2.5))]:
        reply = form(response_format)
        assert reply.headers["content-type"].startswith("text/plain")
        assert reply.body.decode() == expected
    assert srt_of(text, 2.5) == f"1\n00:00:00,000 --> 00:00:02,500\n{text}\n\n"
    assert vtt_of(text, 2.5) == f"WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n{text}\n\n"

    verbose = form("verbose_json").json()
    assert verbose["task"] == ("translate" if task == "translations" else "transcribe")
    parsed = (TranslationVerbose if task == "translations" else TranscriptionVerbose).model_validate(verbose)
    assert parsed.duration == 2.5 and parsed.language == "english" and parsed.text == text
    assert parsed.segments[0].end == 2.5 and parsed.segments[0].text == text
    assert "words" not in verbose


def test_transcription_words_granularity_duration_and_bad_files(upstream: FakeOpenAI, sdk: OpenAI) -> None:
    verbose = sdk.audio.transcriptions.create(
        file=("long.wav", wav_bytes(61.2, sample_width=1), "audio/wav"),
        model="whisper-1",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        temperature=0.3,
        language="en",
        prompt="granularity-marker",
    )
    parsed = TranscriptionVerbose.model_validate(verbose.model_dump())
    assert parsed.duration == 61.2
    assert [w.word for w in parsed.words] == transcript_text("long.wav").split()
    assert parsed.words[-1].end == 61.2 and parsed.segments[0].temperature == 0.3
    received = upstream.requests_with("granularity-marker")[-1]
    parts = parse_multipart(received.headers["Content-Type"], received.raw)
    assert [p.text for p in parts if p.name == "timestamp_granularities[]"] == ["word", "segment"]

    files = [("file", "x.mp3", b"ID3\x04\x00" + bytes(100), "audio/mpeg")]
    mp3 = post_form(upstream, "/audio/transcriptions", [("response_format", "verbose_json")], files)
    assert mp3.json()["duration"] == 1.0

    bad = post_form(upstream, "/audio/transcriptions", [("model", "whisper-1")], [("file", "a.txt", b"hello", "t/p")])
    assert assert_error(bad, 400, "file")["message"] == INVALID_AUDIO_MESSAGE
    assert_error(post_form(upstream, "/audio/translations", [("model", "whisper-1")], []), 400, "file")
    files = [("file", "a.wav", wav_bytes(1), "audio/wav")]
    assert_error(post_form(upstream, "/audio/transcriptions", [("prompt", "#fake:error=500")], files), 500)


# ---- completions --------------------------------------------------------------------------------------------


def test_completions_shape_truncation_and_usage(upstream: FakeOpenAI, sdk: OpenAI) -> None:
    reply = post(upstream, "/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "say this is a test"})
    parsed = Completion.model_validate(reply.json())
    assert parsed.object == "text_completion"
    assert parsed.choices[0].text == "You said: say this is a test"
    assert parsed.choices[0].finish_reason == "stop" and parsed.choices[0].logprobs is None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens, parsed.usage.total_tokens) == (5, 7, 12)

    cut = sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="one two three", max_tokens=3, n=2)
    assert [c.text for c in cut.choices] == ["You said: one", "You said: one"]
    assert {c.finish_reason for c in cut.choices} == {"length"} and cut.usage.completion_tokens == 6

    tokens = sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt=[[1, 2], [3]])
    assert [c.text for c in tokens.choices] == ["You said: 1 2", "You said: 3"]
    assert tokens.usage.prompt_tokens == 3

    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "#fake:nousage quiet"}
    assert "usage" not in post(upstream, "/completions", body).json()
    assert_error(post(upstream, "/completions", {"model": "m", "prompt": "#fake:error=429"}), 429)
    assert_error(post(upstream, "/completions", {"model": "m", "prompt": "x", "max_tokens": "x"}), 400, "max_tokens")


def test_completions_stream_chunks_and_usage_chunk(upstream: FakeOpenAI, sdk: OpenAI) -> None:
    body = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "stream me please",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = sse_events(post(upstream, "/completions", body).body)
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    # OpenAI streams finish_reason null until a choice ends, though the SDK's (shared) type says it is required:
    # validate everything else about those chunks.
    for payload in payloads:
        for choice in payload["choices"]:
            choice["finish_reason"] = choice["finish_reason"] or "stop"
    chunks = [Completion.model_validate(p) for p in payloads]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "You said: stream me please"
    finishes = [json.loads(e)["choices"][0]["finish_reason"] for e in events[:-2]]
    assert finishes == [None] * (len(finishes) - 1) + ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])

    plain = list(sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="no usage", stream=True))
    assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason == "stop"


# ---- moderations --------------------------------------------------------------------------------------------


def test_moderations_shape(upstream: FakeOpenAI, sdk: OpenAI) -> None:
    reply = post(upstream, "/moderations", {"model": "omni-moderation-latest", "input": ["a", "b"]})
    parsed = ModerationCreateResponse.model_validate(reply.json())
    assert parsed.id.startswith("modr-") and parsed.model == "omni-moderation-latest" and len(parsed.results) == 2
    result = parsed.results[0]
    assert result.flagged is False and result.categories.self_harm_intent is False
    assert result.category_scores.violence_graphic == 0.0
    assert result.category_applied_input_types.harassment == ["text"]
    assert sdk.moderations.create(input="hello").results[0].flagged is False
    assert_error(post(upstream, "/moderations", {"input": "#fake:error=500"}), 500)


# ---- chat: reasoning tokens for o1 --------------------------------------------------------------------------


def test_o1_chat_reports_reasoning_tokens_inside_completion_tokens(sdk: OpenAI) -> None:
    messages = [{"role": "user", "content": "think hard"}]
    plain = sdk.chat.completions.create(model="gpt-4o", messages=messages)
    reasoning = sdk.chat.completions.create(model="o1-mini", messages=messages)
    ChatCompletion.model_validate(reasoning.model_dump())
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0
    assert reasoning.usage.completion_tokens_details.reasoning_tokens == REASONING_TOKENS
    assert reasoning.usage.completion_tokens == plain.usage.completion_tokens + REASONING_TOKENS
    assert reasoning.usage.total_tokens == reasoning.usage.prompt_tokens + reasoning.usage.completion_tokens
    assert reasoning.choices[0].message.content == plain.choices[0].message.content

    chunks = list(
        sdk.chat.completions.create(
            model="o1-mini", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    assert chunks[-1].usage.completion_tokens == reasoning.usage.completion_tokens
