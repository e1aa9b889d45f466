"""Uploads and JSON endpoints through mapped model names, and audio whose length only the upstream knows."""

from __future__ import annotations

import pytest
from openai import OpenAI

from tests.conftest import Gateway, wait_until
from tests.fakes.openai_upstream import FakeOpenAI, parse_multipart, wav_bytes
from tests.test_billing import record_for

WHISPER_NANO_PER_SECOND = 100_000  # $0.006 per minute


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> OpenAI:
    return OpenAI(api_key=gateway.create_key("uploader", quota_usd="5"), base_url=gateway.base_url, max_retries=0)


def test_a_mapped_model_is_rewritten_inside_the_form_and_the_file_kept(
    client: OpenAI, gateway: Gateway, upstream: FakeOpenAI
) -> None:
    audio = wav_bytes(1.2)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="my-whisper", file=("mapped-upload.wav", audio, "audio/wav"), language="en"
    )
    assert raw.parse().text == "fake transcript of mapped-upload.wav"
    sent = upstream.requests_with("mapped-upload.wav")[-1]
    parts = {p.name: p for p in parse_multipart(sent.headers["Content-Type"], sent.raw)}
    assert parts["model"].data == b"whisper-1"
    assert parts["language"].data == b"en"
    assert parts["file"].data == audio
    record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))
    assert (record["model"], record["upstream_model"]) == ("my-whisper", "whisper-1")
    assert record["audio_seconds"] == 2 and record["cost_nano"] == 2 * WHISPER_NANO_PER_SECOND


def test_audio_without_a_readable_length_is_billed_from_verbose_json_and_converted(
    client: OpenAI, gateway: Gateway, upstream: FakeOpenAI
) -> None:
    recording = b"\x1a\x45\xdf\xa3" + b"\x00" * 64 + b"browser-recording"  # webm whose header gives no duration
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("stream.webm", recording, "audio/webm"), response_format="srt"
    )
    sent = upstream.requests_with("browser-recording")[-1]
    parts = {p.name: p for p in parse_multipart(sent.headers["Content-Type"], sent.raw)}
    assert parts["response_format"].data == b"verbose_json"  # asked for the format that reports duration
    srt = raw.parse()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,000\nfake transcript of stream.webm")
    assert raw.headers["content-type"].startswith("text/plain")
    record = wait_until(lambda: record_for(gateway, raw.headers["x-request-id"]))
    assert record["usage_source"] == "upstream"
    assert record["audio_seconds"] == 1 and record["cost_nano"] == WHISPER_NANO_PER_SECOND


def test_json_endpoints_send_the_mapped_model(client: OpenAI, upstream: FakeOpenAI) -> None:
    client.embeddings.create(model="my-embed", input="mapped-embedding-marker")
    sent = upstream.requests_with("mapped-embedding-marker")[-1].json
    assert sent["model"] == "text-embedding-3-small"
    assert sent["input"] == "mapped-embedding-marker"
