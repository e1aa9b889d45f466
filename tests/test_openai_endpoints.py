"""The OpenAI endpoints beyond chat, end to end with the official SDK: embeddings, images, speech, transcriptions
and translations, legacy completions, moderations, o1 reasoning models and per-call priced reverse models.

Each test checks three things: the client gets OpenAI's documented reply, the upstream received what OpenAI would
(parameters passed through untouched, files relayed byte for byte), and the usage record bills exactly the
published price for the units used (tokens, images, characters, audio seconds). Bad input must be refused with an
OpenAI-shaped 4xx before anything is billed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import socket
import struct
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.conftest import Gateway, Reply, call, wait_until
from tests.fakes.openai_upstream import (
    FAKE_IMAGE_B64,
    REASONING_TOKENS,
    SPEECH_CONTENT_TYPES,
    FakeOpenAI,
    Received,
    embedding_base64,
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
from tests.test_billing import key_row, record_for

NANO = Decimal(10**9)

# Published prices in nano-dollars (USD x 1e9) per unit.
EMBEDDING_PER_TOKEN = {"text-embedding-ada-002": 100, "text-embedding-3-small": 20, "text-embedding-3-large": 130}
DALLE3_PER_IMAGE = {
    ("1024x1024", "standard"): 40_000_000,
    ("1024x1792", "standard"): 80_000_000,
    ("1792x1024", "standard"): 80_000_000,
    ("1024x1024", "hd"): 80_000_000,
    ("1024x1792", "hd"): 120_000_000,
    ("1792x1024", "hd"): 120_000_000,
}
DALLE2_PER_IMAGE = {"256x256": 16_000_000, "512x512": 18_000_000, "1024x1024": 20_000_000}
TTS_PER_CHARACTER = {"tts-1": 15_000, "tts-1-hd": 30_000}  # $15 / $30 per 1M characters
WHISPER_PER_SECOND = 100_000  # $0.006 per minute
INSTRUCT_INPUT, INSTRUCT_OUTPUT = 1500, 2000  # gpt-3.5-turbo-instruct
O1_MINI_INPUT, O1_MINI_OUTPUT = 1100, 4400
GIZMO_INPUT, GIZMO_OUTPUT, GIZMO_PER_CALL = 10_000, 30_000, 10_000_000  # the test config's "gpt-4-gizmo-*" price
GPT4_ALL_PER_CALL = 20_000_000

SPEECH_WAV = wav_bytes(2.5)  # 2.5 s of 16-bit mono 8 kHz sine: billed as 3 s


def billed(gateway: Gateway, request_id: str) -> dict[str, Any]:
    """The usage record of a request (written asynchronously), which must have succeeded."""
    record = wait_until(lambda: record_for(gateway, request_id))
    assert record is not None, f"no usage record for {request_id}"
    assert record["status"] == "ok", record
    return record


def last_request(upstream: FakeOpenAI, marker: str | bytes) -> Received:
    needle = marker.encode() if isinstance(marker, str) else marker
    found = [r for r in upstream.state.requests if needle in r.raw]
    assert found, f"the upstream never received {marker!r}"
    return found[-1]


def form_of(received: Received) -> dict[str, Any]:
    """A received multipart body as {name: Part} (and the repeated timestamp_granularities[] as a list)."""
    assert received.headers["Content-Type"].startswith("multipart/form-data"), received.headers
    parts = parse_multipart(received.headers["Content-Type"], received.raw)
    form: dict[str, Any] = {p.name: p for p in parts}
    form["timestamp_granularities[]"] = [p.text for p in parts if p.name == "timestamp_granularities[]"]
    return form


def info(gateway: Gateway, key: str) -> dict[str, Any]:
    return call("GET", f"{gateway.base_url}/user/info", headers={"Authorization": key}).json()


def assert_openai_error(reply: Reply, status: int, mentions: str | None = None) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body[:500])
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"] and "Traceback" not in error["message"]
    if mentions is not None:
        assert mentions in (error["param"] or "") or mentions in error["message"], error
    return error


def assert_nothing_billed(gateway: Gateway, key: str, name: str, quota_usd: int) -> None:
    balance = info(gateway, key)
    assert Decimal(str(balance["used_usd"])) == 0, balance
    assert Decimal(str(balance["balance_usd"])) == quota_usd, balance
    assert Decimal(str(balance.get("reserved_usd", 0))) == 0, balance
    row = key_row(gateway, name)
    assert row["used_nano"] == 0 and row["records_cost"] == 0, row


# ---- embeddings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "inputs", "marker", "tokens"),
    [
        ("text-embedding-ada-002", "embed-marker-1 alpha beta", "embed-marker-1", 3),
        ("text-embedding-3-small", ["embed-marker-2 one", "two three four"], "embed-marker-2", 5),
        ("text-embedding-3-large", [93001, 93002, 93003], "93001", 3),
        ("text-embedding-3-small", [[93101, 93102], [93103], [93104, 93105, 93106]], "93101", 6),
    ],
    ids=["string", "list-of-strings", "token-array", "list-of-token-arrays"],
)
def test_embeddings_bill_prompt_tokens_at_the_model_price(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI, model: str, inputs: Any, marker: str, tokens: int
) -> None:
    raw = client.embeddings.with_raw_response.create(model=model, input=inputs)
    reply = raw.parse()
    count = len(inputs) if isinstance(inputs, list) and not isinstance(inputs[0], int) else 1
    assert reply.object == "list" and reply.model == model
    assert [e.index for e in reply.data] == list(range(count))
    assert [e.embedding for e in reply.data] == [embedding_vector(i) for i in range(count)]
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == tokens

    assert last_request(upstream, marker).json["input"] == inputs
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["endpoint"] == "embeddings" and record["model"] == model
    assert (record["prompt_tokens"], record["completion_tokens"]) == (tokens, 0)
    assert record["cost_nano"] == tokens * EMBEDDING_PER_TOKEN[model]


def test_embeddings_dimensions_and_encoding_format_pass_through(client: OpenAI, upstream: FakeOpenAI) -> None:
    floats = client.embeddings.create(
        model="text-embedding-3-small", input="dims-marker-float", dimensions=4, encoding_format="float"
    )
    sent = last_request(upstream, "dims-marker-float").json
    assert (sent["dimensions"], sent["encoding_format"]) == (4, "float")
    assert floats.data[0].embedding == embedding_vector(0, 4)

    # Asked for explicitly, base64 reaches the client untouched (the SDK leaves it encoded).
    encoded = client.embeddings.create(
        model="text-embedding-3-large", input="dims-marker-b64", dimensions=3, encoding_format="base64"
    )
    sent = last_request(upstream, "dims-marker-b64").json
    assert (sent["dimensions"], sent["encoding_format"]) == (3, "base64")
    assert encoded.data[0].embedding == embedding_base64(0, 3)
    assert list(struct.unpack("<3f", base64.b64decode(encoded.data[0].embedding))) == embedding_vector(0, 3)

    # By default the SDK asks for base64 itself and decodes it into floats.
    default = client.embeddings.create(model="text-embedding-ada-002", input=["dims-marker-default", "b"])
    assert last_request(upstream, "dims-marker-default").json["encoding_format"] == "base64"
    assert [e.embedding for e in default.data] == [embedding_vector(0), embedding_vector(1)]


def test_embeddings_without_upstream_usage_are_still_billed(gateway: Gateway, client: OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="#fake:nousage count these words please"
    )
    assert raw.parse().data[0].embedding == embedding_vector(0)
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["prompt_tokens"] > 0
    assert record["cost_nano"] == record["prompt_tokens"] * EMBEDDING_PER_TOKEN["text-embedding-3-small"]


# ---- images -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "quality"), list(DALLE3_PER_IMAGE))
def test_dall_e_3_bills_per_image_by_size_and_quality(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI, size: str, quality: str
) -> None:
    style = "natural" if quality == "hd" else "vivid"
    response_format = "b64_json" if size == "1792x1024" else "url"
    prompt = f"img-marker-{size}-{quality} a lighthouse at dusk"
    raw = client.images.with_raw_response.generate(
        model="dall-e-3", prompt=prompt, size=size, quality=quality, style=style, response_format=response_format
    )
    reply = raw.parse()
    assert reply.created > 0 and len(reply.data) == 1
    if response_format == "url":
        assert reply.data[0].url == image_url(0) and reply.data[0].b64_json is None
    else:
        assert reply.data[0].b64_json == FAKE_IMAGE_B64 and reply.data[0].url is None
    assert reply.data[0].revised_prompt == revised_prompt(prompt)

    sent = last_request(upstream, prompt).json
    assert (sent["model"], sent["size"], sent["quality"], sent["style"]) == ("dall-e-3", size, quality, style)
    assert sent["response_format"] == response_format
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["images"] == 1
    assert record["cost_nano"] == DALLE3_PER_IMAGE[(size, quality)]


def test_dall_e_3_defaults_bill_as_standard_1024(gateway: Gateway, client: OpenAI) -> None:
    raw = client.images.with_raw_response.generate(model="dall-e-3", prompt="img-marker-defaults a fox")
    assert len(raw.parse().data) == 1
    record = billed(gateway, raw.headers["x-request-id"])
    assert (record["images"], record["cost_nano"]) == (1, DALLE3_PER_IMAGE[("1024x1024", "standard")])


@pytest.mark.parametrize(("size", "n"), [("256x256", 1), ("512x512", 2), ("1024x1024", 3)])
def test_dall_e_2_bills_per_image_times_n(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI, size: str, n: int
) -> None:
    prompt = f"img2-marker-{size} a cat"
    raw = client.images.with_raw_response.generate(model="dall-e-2", prompt=prompt, size=size, n=n)
    assert [d.url for d in raw.parse().data] == [image_url(i) for i in range(n)]
    sent = last_request(upstream, prompt).json
    assert (sent["size"], sent["n"]) == (size, n)
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["images"] == n
    assert record["cost_nano"] == n * DALLE2_PER_IMAGE[size]


def test_image_edit_relays_the_multipart_upload_and_bills_dall_e_2(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI
) -> None:
    image = png_bytes(32, 32, (200, 10, 20, 255))
    mask = png_bytes(32, 32, (0, 0, 0, 0))
    raw = client.images.with_raw_response.edit(
        model="dall-e-2",
        image=("photo.png", image, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="edit-marker add a hat",
        n=2,
        size="512x512",
        response_format="b64_json",
    )
    assert [d.b64_json for d in raw.parse().data] == [FAKE_IMAGE_B64] * 2

    form = form_of(last_request(upstream, "edit-marker add a hat"))
    assert last_request(upstream, "edit-marker").path == "/v1/images/edits"
    assert form["image"].data == image and form["image"].filename == "photo.png"
    assert form["mask"].data == mask
    assert (form["prompt"].text, form["n"].text, form["size"].text) == ("edit-marker add a hat", "2", "512x512")
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["images"] == 2
    assert record["cost_nano"] == 2 * DALLE2_PER_IMAGE["512x512"]


def test_image_variation_relays_the_multipart_upload_and_bills_dall_e_2(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI
) -> None:
    image = png_bytes(48, 48, (10, 220, 30, 255))
    raw = client.images.with_raw_response.create_variation(
        model="dall-e-2", image=("source.png", image, "image/png"), n=2, size="1024x1024"
    )
    assert [d.url for d in raw.parse().data] == [image_url(0), image_url(1)]

    received = last_request(upstream, image)
    assert received.path == "/v1/images/variations"
    form = form_of(received)
    assert form["image"].data == image and form["image"].filename == "source.png"
    assert (form["n"].text, form["size"].text) == ("2", "1024x1024")
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["images"] == 2
    assert record["cost_nano"] == 2 * DALLE2_PER_IMAGE["1024x1024"]


# ---- speech -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "response_format"),
    [
        ("tts-1", "mp3"),
        ("tts-1-hd", "opus"),
        ("tts-1", "aac"),
        ("tts-1-hd", "flac"),
        ("tts-1", "wav"),
        ("tts-1-hd", "pcm"),
    ],
)
def test_speech_streams_audio_chunks_and_bills_characters(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI, model: str, response_format: str
) -> None:
    text = f"Speech marker {response_format}: the quick brown fox jumps over the lazy dog."
    with client.audio.speech.with_streaming_response.create(
        model=model, voice="alloy", input=text, response_format=response_format, speed=1.25
    ) as response:
        assert response.headers["content-type"].split(";")[0] == SPEECH_CONTENT_TYPES[response_format]
        request_id = response.headers["x-request-id"]
        chunks = list(response.iter_bytes())
    assert len(chunks) > 1, "the audio must be streamed through, not buffered"
    assert b"".join(chunks) == b"".join(speech_audio(response_format))

    sent = last_request(upstream, f"Speech marker {response_format}:").json
    assert sent == {"model": model, "voice": "alloy", "input": text, "response_format": response_format, "speed": 1.25}
    record = billed(gateway, request_id)
    assert record["characters"] == len(text)
    assert record["cost_nano"] == len(text) * TTS_PER_CHARACTER[model]


# ---- transcriptions and translations ----------------------------------------------------------------------------

AUDIO_FORMATS = ["json", "text", "srt", "verbose_json", "vtt"]


def assert_audio_reply(reply: Any, response_format: str, text: str, duration: float, words: bool) -> None:
    if response_format == "json":
        assert reply.text == text
    elif response_format == "text":
        assert reply == text + "\n"
    elif response_format == "srt":
        assert reply == srt_of(text, duration)
    elif response_format == "vtt":
        assert reply == vtt_of(text, duration)
    else:
        assert (reply.text, reply.duration, reply.language) == (text, duration, "english")
        assert reply.segments[0].start == 0 and reply.segments[0].end == duration
        if words:
            assert [w.word for w in reply.words] == text.split()


@pytest.mark.parametrize("response_format", AUDIO_FORMATS)
def test_transcription_in_every_format_bills_whole_seconds(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI, response_format: str
) -> None:
    prompt = f"transcribe-marker-{response_format}"
    granularities = ["word", "segment"] if response_format == "verbose_json" else None
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1",
        file=("speech.wav", SPEECH_WAV, "audio/wav"),
        response_format=response_format,
        language="en",
        prompt=prompt,
        temperature=0.2,
        **({"timestamp_granularities": granularities} if granularities else {}),
    )
    assert_audio_reply(raw.parse(), response_format, transcript_text("speech.wav"), 2.5, words=bool(granularities))

    received = last_request(upstream, prompt)
    assert received.path == "/v1/audio/transcriptions"
    form = form_of(received)
    assert form["file"].data == SPEECH_WAV and form["file"].filename == "speech.wav"
    assert (form["model"].text, form["response_format"].text, form["language"].text) == (
        "whisper-1",
        response_format,
        "en",
    )
    assert float(form["temperature"].text) == 0.2
    assert form["timestamp_granularities[]"] == (granularities or [])
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["audio_seconds"] == 3
    assert record["cost_nano"] == 3 * WHISPER_PER_SECOND


@pytest.mark.parametrize("response_format", AUDIO_FORMATS)
def test_translation_in_every_format_bills_whole_seconds(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI, response_format: str
) -> None:
    prompt = f"translate-marker-{response_format}"
    raw = client.audio.translations.with_raw_response.create(
        model="whisper-1",
        file=("speech.wav", SPEECH_WAV, "audio/wav"),
        response_format=response_format,
        prompt=prompt,
        temperature=0.4,
    )
    assert_audio_reply(raw.parse(), response_format, transcript_text("speech.wav"), 2.5, words=False)
    if response_format == "verbose_json":
        assert json.loads(raw.content)["task"] == "translate"

    received = last_request(upstream, prompt)
    assert received.path == "/v1/audio/translations"
    form = form_of(received)
    assert form["file"].data == SPEECH_WAV and form["response_format"].text == response_format
    assert float(form["temperature"].text) == 0.4
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["audio_seconds"] == 3
    assert record["cost_nano"] == 3 * WHISPER_PER_SECOND


@pytest.mark.parametrize(
    ("seconds", "sample_width", "billed_seconds"), [(1.0, 2, 1), (2.5, 2, 3), (4.001, 2, 5), (61.2, 1, 62)]
)
def test_audio_duration_rounds_up_to_whole_seconds(
    gateway: Gateway, client: OpenAI, seconds: float, sample_width: int, billed_seconds: int
) -> None:
    audio = wav_bytes(seconds, sample_width=sample_width)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("clip.wav", audio, "audio/wav"), response_format="verbose_json"
    )
    assert raw.parse().duration == pytest.approx(seconds)
    assert billed_seconds == math.ceil(round(seconds, 6))
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["audio_seconds"] == billed_seconds
    assert record["cost_nano"] == billed_seconds * WHISPER_PER_SECOND


# ---- legacy completions -----------------------------------------------------------------------------------------


def test_completion_non_stream_bills_instruct_prices(gateway: Gateway, client: OpenAI, upstream: FakeOpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="instruct-marker-1 say this is a test"
    )
    reply = raw.parse()
    assert reply.object == "text_completion" and reply.model == "gpt-3.5-turbo-instruct"
    assert reply.choices[0].text == "You said: instruct-marker-1 say this is a test"
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].index == 0
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (6, 8)
    assert last_request(upstream, "instruct-marker-1").json["prompt"] == "instruct-marker-1 say this is a test"
    record = billed(gateway, raw.headers["x-request-id"])
    assert (record["prompt_tokens"], record["completion_tokens"]) == (6, 8)
    assert record["cost_nano"] == 6 * INSTRUCT_INPUT + 8 * INSTRUCT_OUTPUT


def test_completion_max_tokens_truncates_and_bills_what_was_generated(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI
) -> None:
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="instruct-marker-2 a b c d e", max_tokens=3, n=2
    )
    reply = raw.parse()
    assert [c.text for c in reply.choices] == ["You said: instruct-marker-2"] * 2
    assert [c.finish_reason for c in reply.choices] == ["length", "length"]
    sent = last_request(upstream, "instruct-marker-2").json
    assert (sent["max_tokens"], sent["n"]) == (3, 2)
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["cost_nano"] == 6 * INSTRUCT_INPUT + 6 * INSTRUCT_OUTPUT


def test_completion_stream_with_usage(gateway: Gateway, client: OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct",
        prompt="instruct-marker-3 stream these words",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "You said: instruct-marker-3 stream these words"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (4, 6)
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["stream"] in (True, 1)
    assert record["cost_nano"] == 4 * INSTRUCT_INPUT + 6 * INSTRUCT_OUTPUT


def test_completion_stream_without_usage_is_billed_but_shows_no_usage(gateway: Gateway, client: OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="instruct-marker-4 quiet stream", stream=True
    )
    chunks = list(raw.parse())
    assert chunks and all(c.usage is None and c.choices for c in chunks)
    assert "".join(c.choices[0].text for c in chunks) == "You said: instruct-marker-4 quiet stream"
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["cost_nano"] == 3 * INSTRUCT_INPUT + 5 * INSTRUCT_OUTPUT


# ---- moderations ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "inputs"),
    [("omni-moderation-latest", "moderate-marker-1 hello"), ("text-moderation-latest", ["moderate-marker-2", "b"])],
)
def test_moderations_reply_and_a_free_usage_record(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI, model: str, inputs: Any
) -> None:
    raw = client.moderations.with_raw_response.create(model=model, input=inputs)
    reply = raw.parse()
    assert reply.id.startswith("modr-") and reply.model == model
    assert len(reply.results) == (len(inputs) if isinstance(inputs, list) else 1)
    result = reply.results[0]
    assert result.flagged is False
    assert result.categories.hate is False and result.categories.self_harm is False
    assert result.category_scores.violence == 0.0
    assert result.category_applied_input_types.sexual == ["text"]
    assert last_request(upstream, "moderate-marker-").json["input"] == inputs
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["model"] == model and record["cost_nano"] == 0


def test_moderations_without_a_model_use_omni_moderation(gateway: Gateway, client: OpenAI) -> None:
    # OpenAI's `model` is optional here and defaults to omni-moderation-latest.
    raw = client.moderations.with_raw_response.create(input="moderate-marker-3 no model given")
    assert raw.parse().results[0].flagged is False
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["cost_nano"] == 0


# ---- o1 reasoning models ----------------------------------------------------------------------------------------


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def test_o1_gets_max_completion_tokens_no_system_role_and_bills_reasoning(
    gateway: Gateway, client: OpenAI, upstream: FakeOpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="o1-mini",
        messages=[
            {"role": "system", "content": "o1-system-marker answer briefly"},
            {"role": "user", "content": "o1-user-marker what is two plus two"},
        ],
        max_tokens=50,
    )
    reply = raw.parse()
    assert reply.choices[0].message.content
    usage = reply.usage
    assert usage.completion_tokens_details.reasoning_tokens == REASONING_TOKENS

    sent = last_request(upstream, "o1-user-marker").json
    assert "max_tokens" not in sent and sent["max_completion_tokens"] == 50
    assert all(m["role"] != "system" for m in sent["messages"])
    assert any(m["role"] == "user" and "o1-system-marker" in text_of(m) for m in sent["messages"])

    record = billed(gateway, raw.headers["x-request-id"])
    assert (record["prompt_tokens"], record["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert record["cost_nano"] == usage.prompt_tokens * O1_MINI_INPUT + usage.completion_tokens * O1_MINI_OUTPUT


def test_o1_accepts_temperature_one(gateway: Gateway, client: OpenAI, upstream: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="o1-mini", messages=[{"role": "user", "content": "o1-temp-marker-1 hi"}], temperature=1
    )
    usage = raw.parse().usage
    assert last_request(upstream, "o1-temp-marker-1").json.get("temperature", 1) == 1
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["cost_nano"] == usage.prompt_tokens * O1_MINI_INPUT + usage.completion_tokens * O1_MINI_OUTPUT


def test_o1_refuses_other_temperatures_and_bills_nothing(gateway: Gateway) -> None:
    key = gateway.create_key("o1-temperature", quota_usd="1")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0, timeout=30)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="o1-mini", messages=[{"role": "user", "content": "o1-temp-marker-2 hi"}], temperature=0.2
        )
    assert raised.value.status_code == 400
    assert raised.value.param == "temperature" or "temperature" in raised.value.message
    assert_nothing_billed(gateway, key, "o1-temperature", 1)


# ---- reverse models priced per call -----------------------------------------------------------------------------


def test_gizmo_bills_tokens_plus_the_per_call_price(gateway: Gateway, client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4-gizmo-g-abc", messages=[{"role": "user", "content": "gizmo endpoint test"}]
    )
    usage = raw.parse().usage
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["model"] == "gpt-4-gizmo-g-abc"
    assert record["cost_nano"] == (
        usage.prompt_tokens * GIZMO_INPUT + usage.completion_tokens * GIZMO_OUTPUT + GIZMO_PER_CALL
    )


@pytest.mark.parametrize("stream", [False, True])
def test_gpt_4_all_bills_exactly_its_per_call_price(gateway: Gateway, client: OpenAI, stream: bool) -> None:
    words = " ".join(["many"] * (40 if stream else 10))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4-all", messages=[{"role": "user", "content": f"all-marker {words}"}], stream=stream
    )
    parsed = raw.parse()
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices).startswith("You said: all-marker")
    else:
        assert parsed.choices[0].message.content.startswith("You said: all-marker")
    record = billed(gateway, raw.headers["x-request-id"])
    assert record["cost_nano"] == GPT4_ALL_PER_CALL


# ---- failures bill nothing ----------------------------------------------------------------------------------------

BAD_INPUT_KEY = "endpoints-bad-input"


@pytest.fixture(scope="module")
def bad_key(gateway: Gateway) -> str:
    return gateway.create_key(BAD_INPUT_KEY, quota_usd="5")


def audio_form(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes, str]]) -> tuple[dict, bytes]:
    content_type, raw = encode_multipart(fields, files)
    return {"Content-Type": content_type}, raw


SPEECH = {"model": "tts-1", "voice": "alloy", "input": "hello"}
DALLE3 = {"model": "dall-e-3", "prompt": "a red bicycle"}
EMBED = "text-embedding-3-small"
WHISPER = [("model", "whisper-1")]

BAD_JSON = [
    ("embeddings-no-input", "/embeddings", {"model": EMBED}, "input"),
    ("embeddings-input-number", "/embeddings", {"model": EMBED, "input": 42}, "input"),
    ("embeddings-input-object", "/embeddings", {"model": EMBED, "input": {"text": "x"}}, "input"),
    ("embeddings-empty-string", "/embeddings", {"model": EMBED, "input": ""}, "input"),
    ("dall-e-3-size-512", "/images/generations", {**DALLE3, "size": "512x512"}, "size"),
    ("dall-e-3-n-2", "/images/generations", {**DALLE3, "n": 2}, "n"),
    ("dall-e-3-bad-quality", "/images/generations", {**DALLE3, "quality": "ultra"}, "quality"),
    ("dall-e-3-no-prompt", "/images/generations", {"model": "dall-e-3"}, "prompt"),
    ("dall-e-2-size-1792", "/images/generations", {"model": "dall-e-2", "prompt": "x", "size": "1792x1024"}, "size"),
    ("speech-no-voice", "/audio/speech", {"model": "tts-1", "input": "hello"}, "voice"),
    ("speech-empty-input", "/audio/speech", {**SPEECH, "input": ""}, "input"),
    ("speech-input-too-long", "/audio/speech", {**SPEECH, "input": "a" * 4097}, "input"),
    ("speech-bad-format", "/audio/speech", {**SPEECH, "response_format": "ogg"}, "response_format"),
    ("speech-speed-5", "/audio/speech", {**SPEECH, "speed": 5}, "speed"),
    ("speech-speed-0.1", "/audio/speech", {**SPEECH, "speed": 0.1}, "speed"),
    (
        "completions-max-tokens-x",
        "/completions",
        {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "max_tokens": "x"},
        "max_tokens",
    ),
]

BAD_FORMS = [
    ("transcription-no-file", "/audio/transcriptions", WHISPER, []),
    ("transcription-empty-file", "/audio/transcriptions", WHISPER, [("file", "empty.wav", b"", "audio/wav")]),
    ("transcription-not-audio", "/audio/transcriptions", WHISPER, [("file", "hello.wav", b"hello world", "audio/wav")]),
    ("translation-no-file", "/audio/translations", WHISPER, []),
    ("translation-not-audio", "/audio/translations", WHISPER, [("file", "notes.mp3", b"hello world", "audio/mpeg")]),
]


@pytest.mark.parametrize(("path", "body", "mentions"), [c[1:] for c in BAD_JSON], ids=[c[0] for c in BAD_JSON])
def test_bad_json_input_is_an_openai_400_and_bills_nothing(
    gateway: Gateway, bad_key: str, path: str, body: dict, mentions: str
) -> None:
    reply = call("POST", f"{gateway.base_url}{path}", body, {"Authorization": f"Bearer {bad_key}"})
    assert_openai_error(reply, 400, mentions)
    assert_nothing_billed(gateway, bad_key, BAD_INPUT_KEY, 5)


@pytest.mark.parametrize(("path", "fields", "files"), [c[1:] for c in BAD_FORMS], ids=[c[0] for c in BAD_FORMS])
def test_bad_audio_upload_is_an_openai_400_and_bills_nothing(
    gateway: Gateway, bad_key: str, path: str, fields: list, files: list
) -> None:
    headers, raw = audio_form(fields, files)
    reply = call("POST", f"{gateway.base_url}{path}", raw=raw, headers={**headers, "Authorization": bad_key})
    assert_openai_error(reply, 400, "file")
    assert_nothing_billed(gateway, bad_key, BAD_INPUT_KEY, 5)


def post_over_socket(port: int, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """POST with `Expect: 100-continue`, as careful clients send large uploads: a server that refuses the upload
    from its headers answers at once; otherwise the body is sent (and may be cut short by the server)."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()] + ["Expect: 100-continue", "Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall("\r\n".join(head).encode())
        sock.settimeout(3)
        received = b""
        with contextlib.suppress(TimeoutError):  # no interim answer: send the body anyway, as curl does
            received = sock.recv(65536)
        sock.settimeout(30)
        if not received or received.startswith(b"HTTP/1.1 100"):
            received = received.partition(b"\r\n\r\n")[2]
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(body)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), received[:200]
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in header_block.lower():
        decoded = b""
        while payload:
            size_line, _, payload = payload.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            decoded, payload = decoded + payload[:size], payload[size + 2 :]
        payload = decoded
    return int(status_line.split()[1]), payload


def test_audio_file_over_25_mb_is_413_and_bills_nothing(gateway: Gateway, bad_key: str) -> None:
    big = wav_bytes(1.0) + bytes(26 * 1024 * 1024)
    headers, raw = audio_form(WHISPER, [("file", "big.wav", big, "audio/wav")])
    status, payload = post_over_socket(
        gateway.port, "/v1/audio/transcriptions", {**headers, "Authorization": f"Bearer {bad_key}"}, raw
    )
    assert_openai_error(Reply(status, {}, payload), 413)
    assert_nothing_billed(gateway, bad_key, BAD_INPUT_KEY, 5)


def test_upstream_failures_on_every_endpoint_refund_everything(gateway: Gateway) -> None:
    name = "endpoints-upstream-errors"
    key = gateway.create_key(name, quota_usd="5")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0, timeout=30)
    failing = [
        lambda: client.embeddings.create(model=EMBED, input="#fake:error=500"),
        lambda: client.images.generate(model="dall-e-3", prompt="#fake:error=500"),
        lambda: client.images.edit(
            model="dall-e-2", image=("a.png", png_bytes(8, 8), "image/png"), prompt="#fake:error=500"
        ),
        lambda: client.audio.speech.create(model="tts-1", voice="alloy", input="#fake:error=500").read(),
        lambda: client.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", SPEECH_WAV, "audio/wav"), prompt="#fake:error=500"
        ),
        lambda: client.completions.create(model="gpt-3.5-turbo-instruct", prompt="#fake:error=500"),
        lambda: client.moderations.create(model="omni-moderation-latest", input="#fake:error=500"),
    ]
    for index, request in enumerate(failing):
        with pytest.raises(openai.InternalServerError):
            request()
        assert info(gateway, key)["used_usd"] == 0, index
    assert_nothing_billed(gateway, key, name, 5)
