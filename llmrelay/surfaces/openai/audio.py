"""POST /v1/audio/speech (TTS, streamed back as it is made) and /v1/audio/transcriptions|translations
(Whisper, multipart uploads up to 25 MB), billed per input character and per second of audio."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from llmrelay.metering.audio import SUPPORTED_FORMATS, billable_seconds, duration_seconds, looks_like_audio
from llmrelay.metering.pricing import Price, Usage
from llmrelay.providers.base import Capability
from llmrelay.relay.errors import RelayError, bad_request
from llmrelay.relay.jobs import Reply
from llmrelay.relay.routing import Route
from llmrelay.surfaces.multipart import MultipartForm, parse_multipart
from llmrelay.surfaces.openai.fields import json_object, one_of, optional_number, required_str
from llmrelay.surfaces.openai.jobs import FixedUsageJob, JsonPassthroughJob, MultipartPassthroughJob

SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
MAX_SPEECH_CHARACTERS = 4096
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
MAX_AUDIO_BYTES = 25 * 1024 * 1024
# A file whose length cannot be read is reserved as if it played this long per byte (8 kbit/s, the lowest
# bitrate speech is usually stored at); the bill is the upstream's reported duration either way.
RESERVE_SECONDS_PER_BYTE = Decimal(1) / 1000


class SpeechJob(FixedUsageJob, JsonPassthroughJob):
    endpoint = "audio.speech"
    capability = Capability.SPEECH
    reply = Reply.BYTES
    path = "/audio/speech"

    def __init__(self, raw: bytes, body: dict[str, Any]) -> None:
        JsonPassthroughJob.__init__(self, raw, body, required_str(body, "model"))
        text = required_str(body, "input", MAX_SPEECH_CHARACTERS)
        required_str(body, "voice")
        one_of(body, "response_format", SPEECH_FORMATS)
        optional_number(body, "speed", 0.25, 4.0)
        self.usage = Usage(characters=len(text))


class TranscriptionJob(MultipartPassthroughJob):
    capability = Capability.TRANSCRIPTION

    def __init__(self, form: MultipartForm, task: str) -> None:
        self.endpoint = f"audio.{task}"
        self.path = f"/audio/{task}"
        self.task = task
        fields: dict[str, Any] = {p.name: p.text for p in form.parts if p.filename is None}
        super().__init__(form, required_str(fields, "model"))
        upload = form.file("file")
        if upload is None:
            raise bad_request("'file' is required: upload the audio as a form file.", "file")
        if len(upload.data) > MAX_AUDIO_BYTES:
            raise RelayError(
                413, "The audio file is larger than the 25 MB limit.", "invalid_request_error", "file_too_large", "file"
            )
        if not upload.data:
            raise bad_request("The uploaded file is empty.", "file")
        if not looks_like_audio(upload.data):
            raise bad_request(f"The uploaded file is not audio in a supported format ({SUPPORTED_FORMATS}).", "file")
        self.format = one_of(fields, "response_format", TRANSCRIPT_FORMATS, "json") or "json"
        optional_number(fields, "temperature", 0.0, 1.0)
        for granularity in form.fields("timestamp_granularities[]"):
            if granularity not in ("word", "segment"):
                raise bad_request(f"Invalid timestamp granularity {granularity!r}.", "timestamp_granularities")
        self.measured = duration_seconds(upload.data)
        # Without a length from the file, ask for verbose_json (which reports it) and convert back.
        self.convert = self.measured is None and self.format != "verbose_json"
        self.upload_size = len(upload.data)

    def bound(self, price: Price) -> Usage:
        seconds = self.measured if self.measured is not None else self.upload_size * RESERVE_SECONDS_PER_BYTE
        return Usage(audio_seconds=billable_seconds(seconds))

    def form_changes(self, route: Route) -> dict[str, str]:
        changes = super().form_changes(route)
        if self.convert:
            changes["response_format"] = "verbose_json"
        return changes

    async def meter(self, body: bytes, route: Route) -> tuple[Usage, str]:
        if self.format == "verbose_json" or self.convert:
            reply = orjson.loads(body)
            duration = reply.get("duration") if isinstance(reply, dict) else None
            if isinstance(duration, int | float) and not isinstance(duration, bool) and duration >= 0:
                return Usage(audio_seconds=billable_seconds(float(duration))), "upstream"
            if self.measured is None:
                raise ValueError("the upstream reported no duration")
        assert self.measured is not None
        return Usage(audio_seconds=billable_seconds(self.measured)), "audio"

    def transform_reply(self, body: bytes, content_type: str) -> tuple[bytes, str]:
        if not self.convert:
            return body, content_type
        return transcript_as(orjson.loads(body), self.format)


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def transcript_as(verbose: dict[str, Any], response_format: str) -> tuple[bytes, str]:
    """A verbose_json transcript in another of Whisper's response formats."""
    text = verbose.get("text", "")
    if response_format == "json":
        return orjson.dumps({"text": text}), "application/json"
    if response_format == "text":
        return (text + "\n").encode(), "text/plain; charset=utf-8"
    segments = verbose.get("segments") or [{"start": 0.0, "end": verbose.get("duration", 0.0), "text": text}]
    cues = []
    for index, segment in enumerate(segments, start=1):
        separator = "," if response_format == "srt" else "."
        timing = f"{_timestamp(segment['start'], separator)} --> {_timestamp(segment['end'], separator)}"
        cue = f"{timing}\n{str(segment['text']).strip()}\n"
        cues.append(f"{index}\n{cue}" if response_format == "srt" else cue)
    header = "WEBVTT\n\n" if response_format == "vtt" else ""
    return (header + "\n".join(cues) + "\n").encode(), "text/plain; charset=utf-8"


def parse_speech(raw: bytes, content_type: str | None) -> SpeechJob:
    return SpeechJob(raw, json_object(raw))


def parse_transcription(raw: bytes, content_type: str | None) -> TranscriptionJob:
    return TranscriptionJob(parse_multipart(raw, content_type), "transcriptions")


def parse_translation(raw: bytes, content_type: str | None) -> TranscriptionJob:
    return TranscriptionJob(parse_multipart(raw, content_type), "translations")
