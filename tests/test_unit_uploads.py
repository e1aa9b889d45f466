"""Uploads as pure functions: multipart parsing and re-encoding, audio sniffing and length, transcript formats."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llmrelay.metering.audio import billable_seconds, duration_seconds, looks_like_audio
from llmrelay.relay.errors import RelayError
from llmrelay.surfaces.multipart import parse_multipart
from llmrelay.surfaces.openai.audio import transcript_as
from tests.fakes.openai_upstream import encode_multipart, png_bytes, wav_bytes
from tests.fakes.openai_upstream import parse_multipart as oracle_parse

AUDIO = wav_bytes(2.5)
FIELDS = [("model", "whisper-1"), ("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment")]


def form():  # type: ignore[no-untyped-def]
    content_type, raw = encode_multipart(FIELDS, [("file", "talk.wav", AUDIO, "audio/wav")])
    return parse_multipart(raw, content_type)


def test_fields_files_and_repeated_fields_are_read() -> None:
    parsed = form()
    assert parsed.field("model") == "whisper-1"
    assert parsed.fields("timestamp_granularities[]") == ["word", "segment"]
    upload = parsed.file("file")
    assert upload is not None and upload.filename == "talk.wav" and upload.content_type == "audio/wav"
    assert upload.data == AUDIO
    assert parsed.file("model") is None and parsed.field("file") is None


def test_with_fields_changes_only_what_it_names() -> None:
    parsed = form()
    rebuilt = parsed.with_fields({"model": "whisper-large", "response_format": "verbose_json"})
    parts = oracle_parse(parsed.content_type, rebuilt)  # an independent parser reads it back
    values = [(p.name, p.data) for p in parts]
    assert ("model", b"whisper-large") in values and ("model", b"whisper-1") not in values
    assert ("response_format", b"verbose_json") in values
    assert [p.data for p in parts if p.filename == "talk.wav"] == [AUDIO]
    assert [v for n, v in values if n == "timestamp_granularities[]"] == [b"word", b"segment"]


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("application/json", b"{}"),
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=x", b"no boundary here"),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Type: text/plain\r\n\r\n1\r\n--x--\r\n"),
    ],
)
def test_malformed_forms_are_400(content_type: str, raw: bytes) -> None:
    with pytest.raises(RelayError) as caught:
        parse_multipart(raw, content_type)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("data", "audio"),
    [
        (AUDIO, True),
        (b"ID3\x04\x00" + bytes(20), True),
        (b"fLaC" + bytes(20), True),
        (b"OggS" + bytes(20), True),
        (b"\x00\x00\x00\x20ftypM4A " + bytes(20), True),
        (b"\x1a\x45\xdf\xa3" + bytes(20), True),
        (b"hello world", False),
        (png_bytes(), False),
        (b"", False),
    ],
)
def test_audio_is_recognised_by_its_container(data: bytes, audio: bool) -> None:
    assert looks_like_audio(data) is audio


def test_wav_length_is_read_from_the_file() -> None:
    assert duration_seconds(AUDIO) == Decimal("2.5")
    assert duration_seconds(b"\x1a\x45\xdf\xa3" + bytes(40)) is None  # a container that does not say


@pytest.mark.parametrize(("seconds", "billed"), [(Decimal("2.5"), 3), (1.0, 1), (Decimal("0.2"), 1), (60.0001, 61)])
def test_audio_is_billed_in_whole_seconds_rounded_up(seconds: Decimal | float, billed: int) -> None:
    assert billable_seconds(seconds) == billed


VERBOSE = {
    "task": "transcribe",
    "language": "english",
    "duration": 3.25,
    "text": "Hello there. General Kenobi.",
    "segments": [
        {"start": 0.0, "end": 1.5, "text": " Hello there."},
        {"start": 1.5, "end": 3.25, "text": " General Kenobi."},
    ],
}


def test_verbose_json_converts_to_every_other_format() -> None:
    assert transcript_as(VERBOSE, "json") == (b'{"text":"Hello there. General Kenobi."}', "application/json")
    assert transcript_as(VERBOSE, "text")[0] == b"Hello there. General Kenobi.\n"
    srt = transcript_as(VERBOSE, "srt")[0].decode()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:01,500 --> 00:00:03,250\n")
    vtt = transcript_as(VERBOSE, "vtt")[0].decode()
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n00:00:01.500 --> 00:00:03.250")
