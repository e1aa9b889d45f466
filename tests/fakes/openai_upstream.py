"""A fake OpenAI upstream that speaks the documented chat completions wire format.

It answers deterministically so tests can predict every token: the reply echoes the last user message,
usage counts words (3 framing tokens per message + 3, like OpenAI), and `max_tokens` truncates the reply
with finish_reason "length". Directives in the last user message steer it:

    #fake:tools         reply with one tool call, id call_fake1 (streamed as id/name first, then argument fragments)
    #fake:tools=N       reply with N parallel tool calls, ids call_fake_0..call_fake_<N-1>, arguments
                        {"city": "Paris", "n": <i>}, stream index i (each streamed id/name first, then fragments)
    #fake:json          reply with a JSON object as content
    #fake:error=CODE    answer with an OpenAI error of that HTTP status
    #fake:sleep=SECS    wait before answering (timeouts)
    #fake:nousage       never report usage (the gateway must count tokens itself)
    #fake:cut           stream a few chunks, then drop the connection
    #fake:slow          stream one chunk every 100 ms for 10 s (client-disconnect tests)
    #fake:cached=N      report N cached prompt tokens
    #fake:chunks=N      split the reply into N content chunks
    #fake:leak          echo the upstream key and the X-Channel-Secret header in the reply (scrubbing tests)
    #fake:leakerror     answer 500 with a 700-character message holding X-Channel-Secret across character 500

A tool-call reply reports 12 completion tokens per call.

Chat models whose name starts with "o1" also report 7 reasoning tokens, included in completion_tokens as
OpenAI counts them.

The other OpenAI endpoints answer in their documented wire formats, just as deterministically:

    POST /v1/embeddings            `embedding_vector(i, dimensions)` per input (base64 float32 on request);
                                   usage.prompt_tokens = words of the strings + length of the token arrays
    POST /v1/images/generations    n images: {"url": "https://fake.example/img-<i>.png"} or {"b64_json": PNG}
    POST /v1/images/edits          the same, from multipart/form-data (image, mask, prompt, ...)
    POST /v1/images/variations     the same, from multipart/form-data (image, ...)
    POST /v1/audio/speech          `speech_audio(response_format)`: 5 chunks 50 ms apart, chunked transfer
    POST /v1/audio/transcriptions  "fake transcript of <filename>" in json / text / srt / vtt / verbose_json,
    POST /v1/audio/translations    with the duration of a WAV file read from its header (1.0 s for others)
    POST /v1/completions           "You said: <prompt>" as a text_completion, streamed or not, usage in words
    POST /v1/moderations           nothing flagged, every score 0.0

`#fake:error=CODE`, `#fake:sleep=SECS` and (embeddings, completions) `#fake:nousage` work in the text inputs:
embedding and moderation inputs, image and transcription prompts, speech input, completion prompts.

    POST /v1/responses             the Responses API: a Response object (`resp_fake<n>`), or with `stream: true`
                                   its typed events (`event: <type>` + `data:`, sequence_number from 0, ending
                                   with response.completed or response.incomplete, no [DONE])

It checks requests as OpenAI does (unknown top-level field: 400 "Unknown parameter: 'x'."; missing `model`;
input items, roles and content part types; tool types; text.format; max_output_tokens >= 16; ranges and
types), and keeps every response it answers unless `store` is false, so `previous_response_id` chains (an
unknown id: 404 previous_response_not_found) and `item_reference` inputs find them (`stored_responses`).
The reply echoes the last user message of the conversation ("You said: ..."), and usage counts words:

    input_tokens   whitespace-separated words of `instructions` (this request's only) and of every text of the
                   stored conversation of previous_response_id (its inputs and outputs, turn after turn) and of
                   this input: message texts (string, input_text, output_text, refusal), function_call
                   arguments, function_call_output outputs, reasoning summaries; directives count as words
    output_tokens  the words of the reply text, or TOOL_CALL_TOKENS per function call, plus reasoning tokens

Directives in the request's last user message (a string input is one):

    #fake:tools[=N]     N function_call items (1 without N), cycling through the declared function tools with
                        their parameters filled by `sample_of` (ignored without function tools, after a
                        function_call_output, or with tool_choice "none"; parallel_tool_calls false: one call)
    #fake:websearch     a web_search_call item before the answer, when a web search tool is declared
    #fake:json          the text is {"answer": 42} (a json_schema format always gets its schema filled)
    #fake:reasoning=N   a reasoning item first and N reasoning tokens (within max_output_tokens)
    #fake:cached=N      N cached input tokens
    #fake:nousage       "usage": null
    #fake:cut           stream CUT_AFTER_EVENTS events, then drop the connection (the response is not kept)
    #fake:error=CODE, #fake:sleep=SECS  as on the other endpoints

`max_output_tokens` below what the answer needs cuts it: status "incomplete", incomplete_details
{"reason": "max_output_tokens"}, output_tokens == max_output_tokens.

Every request is recorded (path, headers, raw body) so tests can check what the gateway forwarded.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import re
import struct
import time
import wave
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer, Received

UPSTREAM_SECRET = "sk-upstream-SECRET-do-not-leak-0123456789"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DIRECTIVE = re.compile(r"#fake:([a-z]+)(?:=(\S+))?")
TOOL_CALL_TOKENS = 12  # completion tokens reported per tool call
REASONING_TOKENS = 7  # what "o1*" chat models report in completion_tokens_details.reasoning_tokens
DEFAULT_DIMENSIONS = 8
SPEECH_CHUNKS = 5
SPEECH_CHUNK_BYTES = 4096
SPEECH_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
_SPEECH_MAGIC = {
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00",
    "opus": b"OggS\x00\x02",
    "aac": b"\xff\xf1\x50\x80",
    "flac": b"fLaC\x00\x00\x00\x22",
    "wav": b"RIFF\xff\xff\xff\xffWAVEfmt ",
    "pcm": b"",
}
INVALID_AUDIO_MESSAGE = (
    "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']"
)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def prompt_tokens_of(messages: list[dict[str, Any]]) -> int:
    return 3 + sum(3 + len(_text_of(m.get("content")).split()) for m in messages)


def _directives(messages: list[dict[str, Any]]) -> dict[str, str]:
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return {name: value or "" for name, value in _DIRECTIVE.findall(_text_of(last_user.get("content")))}


def _reply_words(messages: list[dict[str, Any]], limit: int | None) -> tuple[list[str], str]:
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    images = (
        sum(1 for p in (last_user.get("content") or []) if isinstance(p, dict) and p.get("type") == "image_url")
        if isinstance(last_user.get("content"), list)
        else 0
    )
    echo = _DIRECTIVE.sub("", _text_of(last_user.get("content"))).split()
    words = ["You", "said:", *echo] + ([f"({images}", "images)"] if images else [])
    if limit is not None and len(words) > limit:
        return words[:limit], "length"
    return words, "stop"


def tool_calls_for(directives: dict[str, str]) -> list[dict[str, Any]]:
    """The tool calls a `#fake:tools` reply makes: bare, the single legacy call; `tools=N`, N parallel calls."""
    if not directives.get("tools"):
        return [
            {
                "id": "call_fake1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ]
    return [
        {
            "id": f"call_fake_{i}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "n": i})},
        }
        for i in range(max(1, int(directives["tools"])))
    ]


def _fragments(text: str, pieces: int = 3) -> list[str]:
    """`text` cut into `pieces` consecutive fragments, as a model streams tool arguments."""
    step = -(-len(text) // pieces)
    return [text[start : start + step] for start in range(0, len(text), step)]


def _error(status: int, secret_in_message: bool = False) -> web.Response:
    messages = {
        400: ("Invalid value for 'temperature': must be between 0 and 2.", "invalid_request_error", "temperature"),
        401: (
            f"Incorrect API key provided: {UPSTREAM_SECRET}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
        ),
        429: ("Rate limit reached for gpt-4o in organization org-fake on requests per min (RPM).", "requests", None),
        500: ("The server had an error while processing your request.", "server_error", None),
        503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    }
    message, kind, param = messages.get(status, (f"fake error {status}", "server_error", None))
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


def _invalid(message: str, param: str | None, code: str | None = None, status: int = 400) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return web.json_response(body, status=status)


def _directives_in(*texts: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for text in texts:
        if isinstance(text, str):
            found.update({name: value or "" for name, value in _DIRECTIVE.findall(text)})
    return found


def embedding_vector(index: int, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The embedding the fake returns for input number `index`; every value is exact in float32."""
    return [index + (d + 1) / 8 for d in range(dimensions)]


def embedding_base64(index: int, dimensions: int = DEFAULT_DIMENSIONS) -> str:
    """`embedding_vector` as OpenAI's encoding_format=base64 sends it: little-endian float32, base64."""
    vector = embedding_vector(index, dimensions)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embedding_tokens(inputs: Any) -> int:
    """Prompt tokens the fake reports: words of every string input plus the length of every token array."""
    if isinstance(inputs, str):
        return len(inputs.split())
    if isinstance(inputs, list) and inputs and all(isinstance(x, int) for x in inputs):
        return len(inputs)
    if isinstance(inputs, list):
        return sum(len(x.split()) if isinstance(x, str) else len(x) for x in inputs)
    return 0


def png_bytes(width: int = 1, height: int = 1, rgba: tuple[int, int, int, int] = (255, 0, 0, 255)) -> bytes:
    """A real, valid RGBA PNG of one colour (what the image endpoints accept and return)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgba) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


FAKE_IMAGE_PNG = png_bytes(2, 2, (0, 128, 255, 255))
FAKE_IMAGE_B64 = base64.b64encode(FAKE_IMAGE_PNG).decode()


def image_url(index: int) -> str:
    return f"https://fake.example/img-{index}.png"


def revised_prompt(prompt: str) -> str:
    return f"A revised prompt: {prompt}"


def speech_audio(response_format: str = "mp3") -> list[bytes]:
    """The exact chunks /v1/audio/speech streams for a response_format: 5 chunks of 4096 bytes, magic bytes first."""
    chunks = []
    for k in range(SPEECH_CHUNKS):
        pattern = bytes((k * 31 + j) % 251 for j in range(SPEECH_CHUNK_BYTES))
        if k == 0:
            magic = _SPEECH_MAGIC.get(response_format, b"")
            pattern = magic + pattern[len(magic) :]
        chunks.append(pattern)
    return chunks


def audio_kind(data: bytes) -> str | None:
    """The container a file is in, by its magic bytes, as OpenAI's audio endpoints sniff it (None: not audio)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3" or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def audio_duration(data: bytes) -> float:
    """Seconds of audio: a WAV file's frames / framerate from its header, 1.0 for every other file."""
    if audio_kind(data) == "wav":
        try:
            with wave.open(io.BytesIO(data)) as wav:
                return wav.getnframes() / wav.getframerate()
        except (wave.Error, EOFError, ZeroDivisionError):
            return 1.0
    return 1.0


def wav_bytes(seconds: float, rate: int = 8000, sample_width: int = 2, tone_hz: float = 440.0) -> bytes:
    """A real mono PCM WAV file (8- or 16-bit samples) of a sine tone, written with the stdlib `wave` module."""
    frames = round(seconds * rate)
    peak = (1 << (8 * sample_width - 1)) - 1
    samples = [round(peak * 0.3 * math.sin(2 * math.pi * tone_hz * i / rate)) for i in range(frames)]
    # 8-bit WAV samples are unsigned, 16-bit ones signed little-endian.
    pcm = bytes(128 + s for s in samples) if sample_width == 1 else struct.pack(f"<{frames}h", *samples)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(sample_width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def transcript_text(filename: str | None) -> str:
    return f"fake transcript of {filename}"


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_of(text: str, duration: float) -> str:
    return f"1\n{_timestamp(0, ',')} --> {_timestamp(duration, ',')}\n{text}\n\n"


def vtt_of(text: str, duration: float) -> str:
    return f"WEBVTT\n\n{_timestamp(0, '.')} --> {_timestamp(duration, '.')}\n{text}\n\n"


def verbose_transcription(
    text: str, duration: float, task: str, temperature: float = 0.0, words: bool = False
) -> dict[str, Any]:
    split = text.split()
    reply: dict[str, Any] = {
        "task": task,
        "language": "english",
        "duration": duration,
        "text": text,
        "segments": [
            {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": duration,
                "text": text,
                "tokens": [50364 + i for i in range(len(split))],
                "temperature": temperature,
                "avg_logprob": -0.25,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.01,
            }
        ],
    }
    if words:
        step = duration / max(len(split), 1)
        reply["words"] = [
            {"word": word, "start": round(i * step, 3), "end": round((i + 1) * step, 3)} for i, word in enumerate(split)
        ]
    return reply


@dataclass
class Part:
    """One field of a multipart/form-data body."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_DISPOSITION_PARAM = re.compile(r';\s*([a-zA-Z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')


def parse_multipart(content_type: str, raw: bytes) -> list[Part]:
    """Split a multipart/form-data body into its fields, byte for byte (file contents untouched)."""
    match = _BOUNDARY.search(content_type or "")
    if not match:
        raise ValueError("not a multipart body")
    delimiter = b"--" + (match.group(1) or match.group(2)).encode()
    parts: list[Part] = []
    for section in raw.split(delimiter)[1:]:
        if section.startswith(b"--"):
            break
        section = section.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, _, data = section.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        params = {
            k.lower(): (quoted if quoted is not None else bare)
            for k, quoted, bare in _DISPOSITION_PARAM.findall(headers.get("content-disposition", ""))
        }
        parts.append(Part(params.get("name", ""), data, params.get("filename"), headers.get("content-type")))
    return parts


def encode_multipart(
    fields: list[tuple[str, str]], files: list[tuple[str, str, bytes, str]], boundary: str = "fakeboundary7MA4YWxk"
) -> tuple[str, bytes]:
    """Build a multipart/form-data body (fields: (name, value); files: (name, filename, data, content type))."""
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for name, filename, data, kind in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {kind}\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def _form(parts: list[Part]) -> dict[str, Part]:
    """The first part of each name (repeated fields: use `_all`)."""
    form: dict[str, Part] = {}
    for part in parts:
        form.setdefault(part.name, part)
    return form


def _all(parts: list[Part], *names: str) -> list[str]:
    return [part.text for part in parts if part.name in names]


MODERATION_CATEGORIES = {
    "harassment": ["text"],
    "harassment/threatening": ["text"],
    "hate": ["text"],
    "hate/threatening": ["text"],
    "illicit": ["text"],
    "illicit/violent": ["text"],
    "self-harm": ["text"],
    "self-harm/instructions": ["text"],
    "self-harm/intent": ["text"],
    "sexual": ["text"],
    "sexual/minors": ["text"],
    "violence": ["text"],
    "violence/graphic": ["text"],
}


def completion_words(prompt: str | list[int], limit: int | None) -> tuple[list[str], str]:
    """The words /v1/completions answers one prompt with, and the finish_reason."""
    echo = [str(t) for t in prompt] if isinstance(prompt, list) else _DIRECTIVE.sub("", prompt).split()
    words = ["You", "said:", *echo]
    if limit is not None and len(words) > limit:
        return words[:limit], "length"
    return words, "stop"


def completion_prompt_tokens(prompt: str | list[int]) -> int:
    return len(prompt) if isinstance(prompt, list) else len(prompt.split())


# ---- the Responses API: request checks and reply building ---------------------------------------------------

# Every top-level field `POST /v1/responses` takes (the openai SDK's ResponseCreateParams); others are refused.
RESPONSES_PARAMS = frozenset(
    {
        "access_programs",
        "background",
        "background_options",
        "context_management",
        "conversation",
        "image",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "moderation",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
RESPONSES_TOOL_TYPES = (
    "function",
    "file_search",
    "computer",
    "computer_use_preview",
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "mcp",
    "code_interpreter",
    "programmatic_tool_calling",
    "image_generation",
    "local_shell",
    "shell",
    "custom",
    "namespace",
    "tool_search",
    "apply_patch",
)
WEB_SEARCH_TOOL_TYPES = ("web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11")
RESPONSES_INPUT_ITEM_TYPES = (
    "message",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "web_search_call",
    "function_call",
    "function_call_output",
    "tool_search_call",
    "tool_search_output",
    "additional_tools",
    "configuration_update",
    "reasoning",
    "compaction",
    "image_generation_call",
    "code_interpreter_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "custom_tool_call_output",
    "custom_tool_call",
    "compaction_trigger",
    "item_reference",
    "program",
    "program_output",
)
RESPONSES_INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)
_INPUT_PARTS = ("input_text", "input_image", "input_file")
_OUTPUT_PARTS = ("output_text", "refusal")
_ROLES = ("user", "system", "developer", "assistant")
_TOOL_CHOICE_MODES = ("none", "auto", "required")
_REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_REASONING_SUMMARIES = ("auto", "concise", "detailed")
_IMAGE_DETAILS = ("low", "high", "auto", "original")
MIN_OUTPUT_TOKENS = 16  # the smallest max_output_tokens OpenAI accepts
METADATA_MAX_PAIRS = 16
JSON_REPLY = '{"answer": 42}'  # the text of a `#fake:json` or json_object reply
CUT_AFTER_EVENTS = 5  # `#fake:cut` streams: events sent before the connection drops
ENCRYPTED_REASONING = "gAAAAfake-encrypted-reasoning"  # a reasoning item's encrypted_content, when included


class ResponsesError(Exception):
    """A request `POST /v1/responses` refuses, as OpenAI words it."""

    def __init__(self, message: str, param: str | None, code: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status

    def reply(self) -> web.Response:
        return _invalid(self.message, self.param, self.code, self.status)


@dataclass
class StoredResponse:
    """A response the fake keeps for `previous_response_id`."""

    response: dict[str, Any]  # the Response object as it was returned
    conversation: list[dict[str, Any]]  # earlier turns, this request's input items, then its output items


def _kind_of(value: Any) -> str:
    """A JSON value's type as OpenAI's errors name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _supported(values: tuple[str, ...] | list[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _invalid_value(value: Any, allowed: tuple[str, ...], param: str) -> ResponsesError:
    return ResponsesError(
        f"Invalid value: '{value}'. Supported values are: {_supported(allowed)}.", param, "invalid_value"
    )


def _invalid_type(value: Any, expected: str, param: str) -> ResponsesError:
    message = f"Invalid type for '{param}': expected {expected}, but got {_kind_of(value)} instead."
    return ResponsesError(message, param, "invalid_type")


def _missing(param: str) -> ResponsesError:
    return ResponsesError(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_type(body: dict[str, Any], field: str, kinds: tuple[type, ...], expected: str) -> Any:
    """The field's value (None when absent or null) after checking its JSON type."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise _invalid_type(value, expected, field)
    if not isinstance(value, kinds):
        raise _invalid_type(value, expected, field)
    return value


def _check_range(body: dict[str, Any], field: str, low: float, high: float) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if not _is_number(value):
        raise _invalid_type(value, "a decimal", field)
    if value < low:
        message = (
            f"Invalid '{field}': decimal below minimum value. Expected a value >= {low:g}, but got {value} instead."
        )
        raise ResponsesError(message, field, "decimal_below_min_value")
    if value > high:
        message = (
            f"Invalid '{field}': decimal above maximum value. Expected a value <= {high:g}, but got {value} instead."
        )
        raise ResponsesError(message, field, "decimal_above_max_value")
    return value


def _check_text_field(holder: dict[str, Any], field: str, param: str) -> None:
    if field not in holder or holder[field] is None:
        raise _missing(f"{param}.{field}")
    if not isinstance(holder[field], str):
        raise _invalid_type(holder[field], "a string", f"{param}.{field}")


def _check_content(role: str, content: Any, param: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid_type(content, "one of a string or an array of input content parts", param)
    allowed = _OUTPUT_PARTS if role == "assistant" else _INPUT_PARTS
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise _invalid_type(part, "an object", where)
        kind = part.get("type")
        if kind is None:
            raise _missing(f"{where}.type")
        if kind not in allowed:
            raise _invalid_value(kind, allowed, where)
        if kind in ("input_text", "output_text"):
            _check_text_field(part, "text", where)
        elif kind == "refusal":
            _check_text_field(part, "refusal", where)
        elif kind == "input_image":
            if part.get("image_url") is None and part.get("file_id") is None:
                raise _missing(f"{where}.image_url")
            if part.get("detail") is not None and part["detail"] not in _IMAGE_DETAILS:
                raise _invalid_value(part["detail"], _IMAGE_DETAILS, f"{where}.detail")


def _check_input_item(item: Any, param: str) -> dict[str, Any]:
    """One input item, checked; an easy message without `type` comes back with type "message"."""
    if not isinstance(item, dict):
        raise _invalid_type(item, "an input item object", param)
    kind = item.get("type")
    if kind is None:
        if "role" in item:
            item = {**item, "type": "message"}
        elif "id" in item:
            item = {**item, "type": "item_reference"}
        else:
            raise _missing(f"{param}.type")
    kind = item["type"]
    if kind not in RESPONSES_INPUT_ITEM_TYPES:
        raise _invalid_value(kind, RESPONSES_INPUT_ITEM_TYPES, f"{param}.type")
    if kind == "message":
        role = item.get("role")
        if role is None:
            raise _missing(f"{param}.role")
        if role not in _ROLES:
            raise _invalid_value(role, _ROLES, f"{param}.role")
        if item.get("content") is None:
            raise _missing(f"{param}.content")
        _check_content(role, item["content"], f"{param}.content")
    elif kind == "function_call":
        for field in ("call_id", "name", "arguments"):
            _check_text_field(item, field, param)
    elif kind == "function_call_output":
        _check_text_field(item, "call_id", param)
        if item.get("output") is None:
            raise _missing(f"{param}.output")
        if not isinstance(item["output"], str | list):
            raise _invalid_type(item["output"], "one of a string or an array of output content", f"{param}.output")
    elif kind == "reasoning":
        if item.get("summary") is None:
            raise _missing(f"{param}.summary")
        if not isinstance(item["summary"], list):
            raise _invalid_type(item["summary"], "an array", f"{param}.summary")
    elif kind == "item_reference":
        _check_text_field(item, "id", param)
    return item


def _check_tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _invalid_type(tools, "an array", "tools")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _invalid_type(tool, "an object", where)
        kind = tool.get("type")
        if kind is None:
            raise _missing(f"{where}.type")
        if kind not in RESPONSES_TOOL_TYPES:
            raise _invalid_value(kind, RESPONSES_TOOL_TYPES, f"{where}.type")
        if kind == "function":
            _check_text_field(tool, "name", where)
            if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
                raise _invalid_type(tool["parameters"], "an object", f"{where}.parameters")
    return tools


def _check_tool_choice(choice: Any) -> Any:
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_MODES:
            raise _invalid_value(choice, _TOOL_CHOICE_MODES, "tool_choice")
        return choice
    if not isinstance(choice, dict):
        raise _invalid_type(choice, "one of a string or an object", "tool_choice")
    if choice.get("type") is None:
        raise _missing("tool_choice.type")
    if choice["type"] == "function":
        _check_text_field(choice, "name", "tool_choice")
    return choice


def _check_text_config(text: Any) -> dict[str, Any]:
    if text is None:
        return {"format": {"type": "text"}, "verbosity": "medium"}
    if not isinstance(text, dict):
        raise _invalid_type(text, "an object", "text")
    fmt = text.get("format") or {"type": "text"}
    if not isinstance(fmt, dict):
        raise _invalid_type(fmt, "an object", "text.format")
    kinds = ("text", "json_schema", "json_object")
    if fmt.get("type") is None:
        raise _missing("text.format.type")
    if fmt["type"] not in kinds:
        raise _invalid_value(fmt["type"], kinds, "text.format.type")
    if fmt["type"] == "json_schema":
        _check_text_field(fmt, "name", "text.format")
        if fmt.get("schema") is None:
            raise _missing("text.format.schema")
        if not isinstance(fmt["schema"], dict):
            raise _invalid_type(fmt["schema"], "an object", "text.format.schema")
        fmt = {"description": None, "strict": None, **fmt}
    verbosity = text.get("verbosity") or "medium"
    if verbosity not in ("low", "medium", "high"):
        raise _invalid_value(verbosity, ("low", "medium", "high"), "text.verbosity")
    return {**text, "format": fmt, "verbosity": verbosity}


def _check_reasoning(reasoning: Any) -> dict[str, Any]:
    if reasoning is None:
        return {"effort": None, "summary": None}
    if not isinstance(reasoning, dict):
        raise _invalid_type(reasoning, "an object", "reasoning")
    effort = reasoning.get("effort")
    if effort is not None and effort not in _REASONING_EFFORTS:
        raise _invalid_value(effort, _REASONING_EFFORTS, "reasoning.effort")
    for field in ("summary", "generate_summary"):
        if reasoning.get(field) is not None and reasoning[field] not in _REASONING_SUMMARIES:
            raise _invalid_value(reasoning[field], _REASONING_SUMMARIES, f"reasoning.{field}")
    return {"effort": effort, "summary": reasoning.get("summary") or reasoning.get("generate_summary")}


def _check_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise _invalid_type(metadata, "an object", "metadata")
    if len(metadata) > METADATA_MAX_PAIRS:
        message = (
            f"Invalid 'metadata': too many properties. Expected an object with at most {METADATA_MAX_PAIRS} "
            f"properties, but got {len(metadata)} instead."
        )
        raise ResponsesError(message, "metadata", "object_above_max_properties")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise _invalid_type(value, "a string", f"metadata.{key}")
        if len(value) > 512:
            message = (
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length 512, "
                f"but got a string with length {len(value)} instead."
            )
            raise ResponsesError(message, f"metadata.{key}", "string_above_max_length")
    return metadata


def item_texts(item: dict[str, Any]) -> list[str]:
    """The texts of one input or output item that the fake counts as tokens (see `responses_tokens`)."""
    kind = item.get("type")
    if kind == "message":
        content = item.get("content")
        if isinstance(content, str):
            return [content]
        return [
            p.get("text") or p.get("refusal") or ""
            for p in content or []
            if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "refusal")
        ]
    if kind == "function_call":
        return [item.get("arguments") or ""]
    if kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, str):
            return [output]
        return [p.get("text") or "" for p in output or [] if isinstance(p, dict) and p.get("type") == "input_text"]
    if kind == "reasoning":
        return [s.get("text") or "" for s in item.get("summary") or [] if isinstance(s, dict)]
    return []


def responses_tokens(*texts: str | None, items: Iterable[dict[str, Any]] = ()) -> int:
    """Input tokens as the fake counts them: whitespace-separated words of the texts and of every item's texts."""
    return sum(len(t.split()) for t in texts if t) + sum(len(t.split()) for item in items for t in item_texts(item))


def _as_chat_message(item: dict[str, Any]) -> dict[str, Any]:
    """A Responses message item as the chat route's helpers read it (text parts and image_url parts)."""
    content = item.get("content")
    if not isinstance(content, list):
        return {"role": item.get("role"), "content": content}
    parts: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "input_image":
            parts.append({"type": "image_url"})
        elif part.get("type") in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text", "")})
    return {"role": item.get("role"), "content": parts}


def sample_of(schema: Any, index: int = 0, root: Any = None) -> Any:
    """The value the fake fills a JSON schema with: strings "Paris", integers `index`, numbers `index` + 0.5,
    booleans true, arrays one element, objects every property (function call arguments, json_schema replies)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for key in ref[2:].split("/"):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        return sample_of(target, index, root)
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for combiner in ("anyOf", "oneOf", "allOf"):
        if schema.get(combiner):
            choices = [c for c in schema[combiner] if not (isinstance(c, dict) and c.get("type") == "null")]
            return sample_of((choices or schema[combiner])[0], index, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: sample_of(sub, index, root) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sample_of(schema.get("items"), index, root)] if isinstance(schema.get("items"), dict) else []
    return {"string": "Paris", "integer": index, "number": index + 0.5, "boolean": True}.get(kind)


def function_arguments(tool: dict[str, Any] | None, index: int) -> str:
    """The arguments of the fake's call number `index` to a function tool: its parameters filled by `sample_of`,
    or {"city": "Paris", "n": index} when the tool declares no properties."""
    parameters = (tool or {}).get("parameters")
    if isinstance(parameters, dict) and parameters.get("properties"):
        return json.dumps(sample_of(parameters, index))
    return json.dumps({"city": "Paris", "n": index})


def _text_pieces(text: str) -> list[str]:
    """`text` as output_text deltas: one word each, with the whitespace before it."""
    return re.findall(r"\s*\S+", text) or [text]


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _response_directives(items: list[dict[str, Any]]) -> dict[str, str]:
    """`#fake:` directives of the request's last user message; `tools` and `websearch` only while no
    function_call_output follows that message (with the tools' results the model answers in text)."""
    users = [i for i, item in enumerate(items) if item["type"] == "message" and item.get("role") == "user"]
    if not users:
        return {}
    found = _directives([_as_chat_message(items[users[-1]])])
    if any(item["type"] == "function_call_output" for item in items[users[-1] + 1 :]):
        found.pop("tools", None)
        found.pop("websearch", None)
    return found


@dataclass
class _ResponsePlan:
    """A checked `POST /v1/responses` request, with what it refers to resolved."""

    body: dict[str, Any]
    history: list[dict[str, Any]]  # the stored conversation of previous_response_id
    items: list[dict[str, Any]]  # the input items (a string input as one user message, references resolved)
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_choice: Any
    text: dict[str, Any]
    reasoning: dict[str, Any]
    metadata: dict[str, str]
    include: list[str]
    directives: dict[str, str]


class FakeOpenAI(FakeServer):
    """The OpenAI API; its base URL ends in /v1, as the openai SDK takes it."""

    def __init__(self) -> None:
        super().__init__()
        self.stored_responses: dict[str, StoredResponse] = {}  # /v1/responses replies by id, for chaining
        self._stored_items: dict[str, dict[str, Any]] = {}  # their input and output items by id (item_reference)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def endpoints(self) -> dict[str, Handler]:
        """Each endpoint's path after the base URL, and its handler (what an OpenAI-shaped fake serves)."""
        return {
            "/chat/completions": self.chat,
            "/embeddings": self.embeddings,
            "/images/generations": self.image_generations,
            "/images/edits": self.image_edits,
            "/images/variations": self.image_variations,
            "/audio/speech": self.speech,
            "/audio/transcriptions": self.transcriptions,
            "/audio/translations": self.translations,
            "/completions": self.completions,
            "/moderations": self.moderations,
            "/responses": self.responses,
        }

    def routes(self, app: web.Application) -> None:
        for path, handler in self.endpoints().items():
            app.router.add_post(f"/v1{path}", handler)

    def refusal(self, request: web.Request) -> web.Response | None:
        """The answer to a request without the channel's credentials (None: it may go on)."""
        if request.headers.get("Authorization") != f"Bearer {UPSTREAM_SECRET}":
            return _error(401)
        return None

    # Fields an OpenAI-compatible upstream adds to OpenAI's chat shapes (Azure: content filter results).
    def choice_extras(self) -> dict[str, Any]:
        """Added to every chat choice, streamed or not."""
        return {}

    def stream_opening(self) -> list[dict[str, Any]]:
        """Chunks sent before a chat stream's first choice chunk."""
        return []

    def error_response(self, status: int) -> web.Response:
        return _error(status)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.state.requests.append(Received(request.path, dict(request.headers), raw))
        if (refused := self.refusal(request)) is not None:
            return refused
        body = orjson.loads(raw)
        messages = body["messages"]
        directives = _directives(messages)
        if "sleep" in directives:
            await asyncio.sleep(float(directives["sleep"]))
        if "error" in directives:
            return _error(int(directives["error"]))
        if "leakerror" in directives:  # an error text longer than 500 characters with the key across the 500th
            text = "x" * 490 + " " + request.headers.get("X-Channel-Secret", "") + " " + "y" * 200
            return web.json_response({"error": {"message": text, "type": "server_error"}}, status=500)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        words, finish = _reply_words(messages, limit)
        if "leak" in directives:  # an upstream that echoes the credentials it was sent
            words = [*words, UPSTREAM_SECRET, request.headers.get("X-Channel-Secret", "")]
        usage: dict[str, Any] | None = {
            "prompt_tokens": prompt_tokens_of(messages),
            "completion_tokens": len(words) * (body.get("n") or 1),
            "total_tokens": prompt_tokens_of(messages) + len(words) * (body.get("n") or 1),
            "prompt_tokens_details": {"cached_tokens": int(directives.get("cached", 0)), "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        if "nousage" in directives:
            usage = None
        elif "tools" in directives:
            calls_tokens = TOOL_CALL_TOKENS * len(tool_calls_for(directives))
            usage["completion_tokens"] = calls_tokens  # type: ignore[index]
            usage["total_tokens"] = usage["prompt_tokens"] + calls_tokens  # type: ignore[index]
        if usage is not None and str(body["model"]).startswith("o1"):
            # Reasoning models think before they answer; OpenAI counts those tokens in completion_tokens.
            usage["completion_tokens"] += REASONING_TOKENS
            usage["total_tokens"] += REASONING_TOKENS
            usage["completion_tokens_details"]["reasoning_tokens"] = REASONING_TOKENS
        common = {
            "id": f"chatcmpl-fake{len(self.state.requests)}",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }
        if body.get("stream"):
            return await self._stream(request, body, directives, words, finish, usage, common)
        return web.json_response(self._completion(body, directives, words, finish, usage, common))

    def _completion(self, body, directives, words, finish, usage, common) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(words), "refusal": None}
        if "tools" in directives:
            message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": tool_calls_for(directives)}
            finish = "tool_calls"
        elif "json" in directives:
            message["content"] = '{"answer": 42}'
        choices = [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish, **self.choice_extras()}
            for i in range(body.get("n") or 1)
        ]
        reply = {"object": "chat.completion", **common, "choices": choices}
        if usage is not None:
            reply["usage"] = usage
        return reply

    async def _stream(self, request, body, directives, words, finish, usage, common) -> web.StreamResponse:  # type: ignore[no-untyped-def]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and usage is not None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            payload: dict[str, Any] = {
                "object": "chat.completion.chunk",
                **common,
                "choices": [{**choice, **self.choice_extras()}],
            }
            if include_usage:
                payload["usage"] = None
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        pieces = [b"data: " + orjson.dumps(opening) + b"\n\n" for opening in self.stream_opening()]
        for index in range(body.get("n") or 1):
            pieces.append(chunk({"role": "assistant", "content": "", "refusal": None}, index=index))
            if "tools" in directives:
                # Like OpenAI: each call opens with its id and name (empty arguments), then argument fragments that
                # carry only the call's index.
                for position, call in enumerate(tool_calls_for(directives)):
                    opening = {**call, "index": position, "function": {**call["function"], "arguments": ""}}
                    pieces.append(chunk({"tool_calls": [opening]}))
                    for fragment in _fragments(call["function"]["arguments"]):
                        pieces.append(chunk({"tool_calls": [{"index": position, "function": {"arguments": fragment}}]}))
                pieces.append(chunk({}, "tool_calls"))
                continue
            text_words = ['{"answer":', "42}"] if "json" in directives else words
            parts = int(directives.get("chunks", len(text_words)))
            per = max(1, -(-len(text_words) // max(parts, 1)))
            for start in range(0, len(text_words), per):
                text = " ".join(text_words[start : start + per])
                pieces.append(chunk({"content": (" " if start else "") + text}, index=index))
            pieces.append(chunk({}, finish, index=index))
        try:
            if "cut" in directives:
                for piece in pieces[:3]:
                    await response.write(piece)
                request.transport.close()  # type: ignore[union-attr]
                return response
            if "slow" in directives:
                for _ in range(100):
                    await response.write(chunk({"content": " tick"}))
                    await asyncio.sleep(0.1)
            for piece in pieces:
                await response.write(piece)
            final = {"object": "chat.completion.chunk", **common, "choices": [], "usage": usage}
            await self._end_stream(response, final if include_usage else None)
        except (ConnectionResetError, asyncio.CancelledError):
            self.state.cancelled_streams += 1
            raise
        return response

    async def _end_stream(self, response: web.StreamResponse, usage_chunk: dict[str, Any] | None) -> None:
        """The usage-only chunk (when asked for), [DONE], and the end of the response."""
        if usage_chunk is not None:
            await response.write(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.state.completed_streams += 1

    # ---- the other OpenAI endpoints -------------------------------------------------------------------------

    async def _receive(self, request: web.Request) -> tuple[bytes, web.Response | None]:
        """Record the request like chat does; the response is set when it must be refused (bad key)."""
        raw = await request.read()
        self.state.requests.append(Received(request.path, dict(request.headers), raw))
        return raw, self.refusal(request)

    async def _json(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        raw, refused = await self._receive(request)
        if refused is not None:
            return {}, refused
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return {}, _invalid("We could not parse the JSON body of your request.", None)
        return body, None

    async def _multipart(self, request: web.Request) -> tuple[list[Part], web.Response | None]:
        raw, refused = await self._receive(request)
        if refused is not None:
            return [], refused
        try:
            return parse_multipart(request.headers.get("Content-Type", ""), raw), None
        except ValueError:
            return [], _invalid("Expected a multipart/form-data body.", None)

    @staticmethod
    async def _steer(directives: dict[str, str]) -> web.Response | None:
        if "sleep" in directives:
            await asyncio.sleep(float(directives["sleep"]))
        if "error" in directives:
            return _error(int(directives["error"]))
        return None

    async def _json_text(self, request: web.Request, field: str) -> tuple[dict[str, Any], web.Response | None]:
        """A JSON request whose `field` is a required string that may carry #fake directives."""
        body, refused = await self._json(request)
        if refused is not None:
            return body, refused
        text = body.get(field)
        if not isinstance(text, str):
            return body, _invalid(f"Missing required parameter: '{field}'.", field)
        return body, await self._steer(_directives_in(text))

    async def embeddings(self, request: web.Request) -> web.Response:
        body, refused = await self._json(request)
        if refused is not None:
            return refused
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and all(type(x) is int for x in inputs)):
            items: list[Any] = [inputs]
        elif (
            isinstance(inputs, list)
            and inputs
            and all(isinstance(x, str) or (isinstance(x, list) and all(type(t) is int for t in x)) for x in inputs)
        ):
            items = inputs
        else:
            return _invalid("'input' must be a string, an array of strings or an array of token arrays.", "input")
        directives = _directives_in(*items)
        if (steered := await self._steer(directives)) is not None:
            return steered
        dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
        if type(dimensions) is not int or dimensions < 1:
            return _invalid("Invalid value for 'dimensions'.", "dimensions")
        encode = embedding_base64 if body.get("encoding_format") == "base64" else embedding_vector
        reply: dict[str, Any] = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(i, dimensions)} for i in range(len(items))
            ],
            "model": body.get("model"),
        }
        if "nousage" not in directives:
            tokens = embedding_tokens(inputs)
            reply["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response(reply)

    @staticmethod
    def _images(model: Any, prompt: str | None, n: int, response_format: str | None) -> dict[str, Any]:
        data = []
        for i in range(n):
            item: dict[str, Any] = {"url": image_url(i)}
            if response_format == "b64_json":
                item = {"b64_json": FAKE_IMAGE_B64}
            if model == "dall-e-3" and prompt is not None:
                item["revised_prompt"] = revised_prompt(prompt)
            data.append(item)
        return {"created": int(time.time()), "data": data}

    async def image_generations(self, request: web.Request) -> web.Response:
        body, refused = await self._json_text(request, "prompt")
        if refused is not None:
            return refused
        prompt = body["prompt"]
        n = body.get("n") or 1
        if type(n) is not int or n < 1:
            return _invalid("Invalid value for 'n'.", "n")
        return web.json_response(self._images(body.get("model"), prompt, n, body.get("response_format")))

    async def _image_upload(self, request: web.Request, with_prompt: bool) -> web.Response:
        parts, refused = await self._multipart(request)
        if refused is not None:
            return refused
        form = _form(parts)
        image = form.get("image") or form.get("image[]")
        if image is None or image.filename is None:
            return _invalid("Missing required parameter: 'image'.", "image")
        prompt = form["prompt"].text if "prompt" in form else None
        if with_prompt and prompt is None:
            return _invalid("Missing required parameter: 'prompt'.", "prompt")
        if (steered := await self._steer(_directives_in(prompt))) is not None:
            return steered
        try:
            n = int(form["n"].text) if "n" in form else 1
        except ValueError:
            return _invalid("Invalid value for 'n'.", "n")
        model = form["model"].text if "model" in form else "dall-e-2"
        response_format = form["response_format"].text if "response_format" in form else None
        return web.json_response(self._images(model, prompt, n, response_format))

    async def image_edits(self, request: web.Request) -> web.Response:
        return await self._image_upload(request, with_prompt=True)

    async def image_variations(self, request: web.Request) -> web.Response:
        return await self._image_upload(request, with_prompt=False)

    async def speech(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._json_text(request, "input")
        if refused is not None:
            return refused
        response_format = body.get("response_format") or "mp3"
        response = web.StreamResponse(headers={"Content-Type": SPEECH_CONTENT_TYPES.get(response_format, "audio/mpeg")})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for index, piece in enumerate(speech_audio(response_format)):
                if index:
                    await asyncio.sleep(0.05)
                await response.write(piece)
            await response.write_eof()
            self.state.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.state.cancelled_streams += 1
            raise
        return response

    async def _audio(self, request: web.Request, task: str) -> web.Response:
        parts, refused = await self._multipart(request)
        if refused is not None:
            return refused
        form = _form(parts)
        upload = form.get("file")
        if upload is None or upload.filename is None:
            return _invalid("Missing required parameter: 'file'.", "file")
        if audio_kind(upload.data) is None:
            return _invalid(INVALID_AUDIO_MESSAGE, "file")
        prompt = form["prompt"].text if "prompt" in form else None
        if (steered := await self._steer(_directives_in(prompt))) is not None:
            return steered
        response_format = form["response_format"].text if "response_format" in form else "json"
        try:
            temperature = float(form["temperature"].text) if "temperature" in form else 0.0
        except ValueError:
            return _invalid("Invalid value for 'temperature'.", "temperature")
        granularities = _all(parts, "timestamp_granularities[]", "timestamp_granularities")
        duration = audio_duration(upload.data)
        text = transcript_text(upload.filename)
        if response_format == "json":
            return web.json_response({"text": text})
        if response_format == "text":
            return web.Response(text=text + "\n", content_type="text/plain")
        if response_format == "srt":
            return web.Response(text=srt_of(text, duration), content_type="text/plain")
        if response_format == "vtt":
            return web.Response(text=vtt_of(text, duration), content_type="text/plain")
        if response_format == "verbose_json":
            return web.json_response(
                verbose_transcription(text, duration, task, temperature, words="word" in granularities)
            )
        return _invalid(f"Invalid value for 'response_format': {response_format!r}.", "response_format")

    async def transcriptions(self, request: web.Request) -> web.Response:
        return await self._audio(request, "transcribe")

    async def translations(self, request: web.Request) -> web.Response:
        return await self._audio(request, "translate")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._json(request)
        if refused is not None:
            return refused
        prompt = body.get("prompt")
        if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt)):
            prompts: list[Any] = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str | list) for p in prompt):
            prompts = prompt
        else:
            return _invalid("Missing required parameter: 'prompt'.", "prompt")
        directives = _directives_in(*prompts)
        if (steered := await self._steer(directives)) is not None:
            return steered
        limit = body.get("max_tokens", 16)
        if limit is not None and (type(limit) is not int or limit < 0):
            return _invalid(f"Invalid type for 'max_tokens': expected an integer, got {limit!r}.", "max_tokens")
        n = body.get("n") or 1
        answers = [completion_words(p, limit) for p in prompts]
        choices = []
        for p, (words, finish) in zip(prompts, answers, strict=True):
            text = " ".join(words)
            if body.get("echo") and isinstance(p, str):
                text = p + text
            choices.extend({"text": text, "finish_reason": finish} for _ in range(n))
        prompt_tokens = sum(completion_prompt_tokens(p) for p in prompts)
        completion_tokens = sum(len(words) for words, _ in answers) * n
        usage = None
        if "nousage" not in directives:
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        common = {
            "id": f"cmpl-fake{len(self.state.requests)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
        }
        if not body.get("stream"):
            reply: dict[str, Any] = {
                **common,
                "choices": [
                    {"text": c["text"], "index": i, "logprobs": None, "finish_reason": c["finish_reason"]}
                    for i, c in enumerate(choices)
                ],
            }
            if usage is not None:
                reply["usage"] = usage
            return web.json_response(reply)

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and usage is not None

        def chunk(text: str, index: int, finish_reason: str | None = None) -> bytes:
            payload: dict[str, Any] = {
                **common,
                "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                payload["usage"] = None
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        try:
            for index, c in enumerate(choices):
                words = c["text"].split(" ")
                for position, word in enumerate(words):
                    await response.write(chunk(("" if position == 0 else " ") + word, index))
                await response.write(chunk("", index, c["finish_reason"]))
            await self._end_stream(response, {**common, "choices": [], "usage": usage} if include_usage else None)
        except (ConnectionResetError, asyncio.CancelledError):
            self.state.cancelled_streams += 1
            raise
        return response

    async def moderations(self, request: web.Request) -> web.Response:
        body, refused = await self._json(request)
        if refused is not None:
            return refused
        inputs = body.get("input")
        if isinstance(inputs, str):
            items: list[Any] = [inputs]
        elif isinstance(inputs, list) and inputs:
            items = inputs
        else:
            return _invalid("Missing required parameter: 'input'.", "input")
        texts = [x if isinstance(x, str) else (x.get("text") if isinstance(x, dict) else None) for x in items]
        if (steered := await self._steer(_directives_in(*texts))) is not None:
            return steered
        result = {
            "flagged": False,
            "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
            "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 0.0),
            "category_applied_input_types": {name: list(kinds) for name, kinds in MODERATION_CATEGORIES.items()},
        }
        reply = {
            "id": f"modr-fake{len(self.state.requests)}",
            "model": body.get("model") or "omni-moderation-latest",
            "results": [result for _ in items],
        }
        return web.json_response(reply)

    # ---- the Responses API ----------------------------------------------------------------------------------

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._json(request)
        if refused is not None:
            return refused
        try:
            plan = self._response_plan(body)
        except ResponsesError as error:
            return error.reply()
        if (steered := await self._steer(plan.directives)) is not None:
            return steered
        final = self._response_reply(plan)
        if body.get("stream"):
            return await self._stream_response(request, plan, final)
        self._keep_response(plan, final)
        return web.json_response(final)

    def _response_plan(self, body: dict[str, Any]) -> _ResponsePlan:
        """The request checked field by field as OpenAI checks it (ResponsesError: the first thing it refuses)."""
        unknown = next((field for field in body if field not in RESPONSES_PARAMS), None)
        if unknown is not None:
            raise ResponsesError(f"Unknown parameter: '{unknown}'.", unknown, "unknown_parameter")
        if body.get("model") is None:
            raise _missing("model")
        _check_type(body, "model", (str,), "a string")
        instructions = _check_type(body, "instructions", (str,), "a string")
        for field in ("store", "stream", "parallel_tool_calls", "background"):
            _check_type(body, field, (bool,), "a boolean")
        for field in ("user", "previous_response_id", "safety_identifier", "prompt_cache_key"):
            _check_type(body, field, (str,), "a string")
        for field in ("max_tool_calls", "top_logprobs"):
            _check_type(body, field, (int,), "an integer")
        limit = _check_type(body, "max_output_tokens", (int,), "an integer")
        if limit is not None and limit < MIN_OUTPUT_TOKENS:
            message = (
                f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, "
                f"but got {limit} instead."
            )
            raise ResponsesError(message, "max_output_tokens", "integer_below_min_value")
        _check_range(body, "temperature", 0, 2)
        _check_range(body, "top_p", 0, 1)
        if body.get("truncation") is not None and body["truncation"] not in ("auto", "disabled"):
            raise _invalid_value(body["truncation"], ("auto", "disabled"), "truncation")
        include = _check_type(body, "include", (list,), "an array") or []
        for i, value in enumerate(include):
            if value not in RESPONSES_INCLUDABLE:
                raise _invalid_value(value, RESPONSES_INCLUDABLE, f"include[{i}]")
        tools = _check_tools(body.get("tools"))
        tool_choice = _check_tool_choice(body.get("tool_choice"))
        text = _check_text_config(body.get("text"))
        reasoning = _check_reasoning(body.get("reasoning"))
        metadata = _check_metadata(body.get("metadata"))
        raw = body.get("input")
        if raw is None:
            items: list[dict[str, Any]] = []
        elif isinstance(raw, str):
            items = [{"type": "message", "role": "user", "content": raw}]
        elif isinstance(raw, list):
            items = [_check_input_item(item, f"input[{i}]") for i, item in enumerate(raw)]
        else:
            raise _invalid_type(raw, "one of a string or an array of input items", "input")

        # Then what the request refers to: a conversation (the fake keeps none), an earlier response, items.
        conversation = body.get("conversation")
        if conversation is not None:
            conversation_id = conversation.get("id") if isinstance(conversation, dict) else conversation
            raise ResponsesError(f"Conversation with id '{conversation_id}' not found.", "conversation", None, 404)
        history: list[dict[str, Any]] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            stored = self.stored_responses.get(previous)
            if stored is None:
                message = f"Previous response with id '{previous}' not found."
                raise ResponsesError(message, "previous_response_id", "previous_response_not_found", 404)
            history = stored.conversation
        for position, item in enumerate(items):
            if item["type"] == "item_reference":
                if item["id"] not in self._stored_items:
                    raise ResponsesError(f"Item with id '{item['id']}' not found.", "input", None, 404)
                items[position] = self._stored_items[item["id"]]
        calls = {item.get("call_id") for item in history + items if item["type"] == "function_call"}
        for item in items:
            if item["type"] == "function_call_output" and item["call_id"] not in calls:
                message = f"No tool call found for function call output with call_id {item['call_id']}."
                raise ResponsesError(message, "input", None)
        if text["format"]["type"] == "json_object":
            texts = [instructions or "", *(t for item in history + items for t in item_texts(item))]
            if not any("json" in t.lower() for t in texts):
                message = (
                    "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
                    "'json_object'."
                )
                raise ResponsesError(message, "input", None)
        return _ResponsePlan(
            body=body,
            history=history,
            items=items,
            instructions=instructions,
            tools=tools,
            tool_choice=tool_choice,
            text=text,
            reasoning=reasoning,
            metadata=metadata,
            include=include,
            directives=_response_directives(items),
        )

    def _planned_calls(self, plan: _ResponsePlan) -> list[dict[str, Any]]:
        """The function tools the reply calls, one entry per call."""
        functions = [tool for tool in plan.tools if tool["type"] == "function"]
        choice = plan.tool_choice
        if not functions or choice == "none":
            return []
        count = max(1, int(plan.directives["tools"] or 1)) if "tools" in plan.directives else 0
        forced = choice == "required" or (isinstance(choice, dict) and choice.get("type") == "function")
        if forced:
            count = max(count, 1)
        if plan.body.get("parallel_tool_calls") is False:
            count = min(count, 1)
        if isinstance(choice, dict) and choice.get("type") == "function":
            functions = [tool for tool in functions if tool["name"] == choice["name"]] or [
                {"type": "function", "name": choice["name"]}
            ]
        return [functions[i % len(functions)] for i in range(count)]

    def _searches(self, plan: _ResponsePlan) -> bool:
        """Whether the reply opens with a web search (`#fake:websearch` or a forced web search tool)."""
        if plan.tool_choice == "none" or not any(tool["type"] in WEB_SEARCH_TOOL_TYPES for tool in plan.tools):
            return False
        forced = isinstance(plan.tool_choice, dict) and plan.tool_choice.get("type") in WEB_SEARCH_TOOL_TYPES
        return forced or "websearch" in plan.directives

    def _response_reply(self, plan: _ResponsePlan) -> dict[str, Any]:
        """The finished Response object: its output items, status and usage."""
        body, directives = plan.body, plan.directives
        n = next(self._ids)
        budget = body.get("max_output_tokens")
        context = plan.history + plan.items
        output: list[dict[str, Any]] = []
        reasoning_tokens = int(directives.get("reasoning") or 0)
        incomplete = False
        if reasoning_tokens:
            if budget is not None and reasoning_tokens >= budget:
                reasoning_tokens, incomplete = budget, True  # the thinking used the whole budget: no answer
            reasoning: dict[str, Any] = {"id": f"rs_fake{n}", "type": "reasoning", "summary": []}
            if "reasoning.encrypted_content" in plan.include:
                reasoning["encrypted_content"] = ENCRYPTED_REASONING
            output.append(reasoning)
        answer_tokens = 0
        calls = [] if incomplete else self._planned_calls(plan)
        for i, tool in enumerate(calls):
            output.append(
                {
                    "id": f"fc_fake{n}_{i}",
                    "type": "function_call",
                    "status": "completed",
                    "arguments": function_arguments(tool, i),
                    "call_id": f"call_fake{n}_{i}",
                    "name": tool["name"],
                }
            )
            answer_tokens += TOOL_CALL_TOKENS
        if not incomplete and not calls:
            messages = [_as_chat_message(item) for item in context if item["type"] == "message"]
            if self._searches(plan):
                query = " ".join(_reply_words(messages, None)[0][2:])
                action: dict[str, Any] = {"type": "search", "query": query}
                if "web_search_call.action.sources" in plan.include:
                    action["sources"] = [{"type": "url", "url": "https://fake.example/search"}]
                output.append({"id": f"ws_fake{n}", "type": "web_search_call", "status": "completed", "action": action})
            fmt = plan.text["format"]
            if fmt["type"] == "json_schema":
                words = json.dumps(sample_of(fmt["schema"])).split(" ")
            elif fmt["type"] == "json_object" or "json" in directives:
                words = JSON_REPLY.split(" ")
            else:
                words = _reply_words(messages, None)[0]
            if budget is not None and len(words) > budget - reasoning_tokens:
                words, incomplete = words[: budget - reasoning_tokens], True
            text = " ".join(words)
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            status = "incomplete" if incomplete else "completed"
            output.append(
                {"id": f"msg_fake{n}", "type": "message", "status": status, "role": "assistant", "content": [part]}
            )
            answer_tokens = len(text.split())
        input_tokens = responses_tokens(plan.instructions, items=context)
        output_tokens = reasoning_tokens + answer_tokens
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": int(directives.get("cached") or 0), "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens,
        }
        now = int(time.time())
        return {
            **self._response_fields(plan, f"resp_fake{n}", now),
            "status": "incomplete" if incomplete else "completed",
            "completed_at": now,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "output": output,
            "usage": None if "nousage" in directives else usage,
        }

    @staticmethod
    def _response_fields(plan: _ResponsePlan, response_id: str, created_at: int) -> dict[str, Any]:
        """A Response object in progress: the request's settings echoed as OpenAI echoes them, no output yet."""
        body = plan.body
        tools = []
        for tool in plan.tools:
            if tool["type"] == "function":
                tool = {"description": None, "parameters": None, "strict": True, **tool}
            elif tool["type"] in WEB_SEARCH_TOOL_TYPES:
                tool = {"search_context_size": "medium", **tool}
            tools.append(tool)
        tier = body.get("service_tier")
        return {
            "id": response_id,
            "object": "response",
            "created_at": created_at,
            "status": "in_progress",
            "background": bool(body.get("background")),
            "completed_at": None,
            "error": None,
            "incomplete_details": None,
            "instructions": plan.instructions,
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": body["model"],
            "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "prompt_cache_retention": body.get("prompt_cache_retention"),
            "reasoning": plan.reasoning,
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default" if tier in (None, "auto") else tier,
            "store": body.get("store") is not False,
            "temperature": 1.0 if body.get("temperature") is None else body["temperature"],
            "text": plan.text,
            "tool_choice": plan.tool_choice,
            "tools": tools,
            "top_logprobs": body.get("top_logprobs") or 0,
            "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
            "truncation": body.get("truncation") or "disabled",
            "usage": None,
            "user": body.get("user"),
            "metadata": plan.metadata,
        }

    def _keep_response(self, plan: _ResponsePlan, final: dict[str, Any]) -> None:
        """Remember a finished response for `previous_response_id` (unless `store` is false), and its items by
        id for `item_reference`."""
        if plan.body.get("store") is False:
            return
        conversation = [*plan.history, *plan.items, *final["output"]]
        self.stored_responses[final["id"]] = StoredResponse(final, conversation)
        for item in [*plan.items, *final["output"]]:
            if isinstance(item.get("id"), str):
                self._stored_items[item["id"]] = item

    @staticmethod
    def response_events(final: dict[str, Any]) -> list[dict[str, Any]]:
        """The events that stream the finished response `final`, as OpenAI sends them (sequence_number from 0)."""
        events: list[dict[str, Any]] = []

        def add(kind: str, **fields: Any) -> None:
            events.append({"type": kind, "sequence_number": len(events), **fields})

        start = {
            **final,
            "status": "in_progress",
            "completed_at": None,
            "incomplete_details": None,
            "output": [],
            "usage": None,
        }
        add("response.created", response=start)
        add("response.in_progress", response=start)
        for index, item in enumerate(final["output"]):
            at = {"item_id": item["id"], "output_index": index}
            if item["type"] == "message":
                add(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                part = item["content"][0]
                add("response.content_part.added", **at, content_index=0, part={**part, "text": ""})
                for piece in _text_pieces(part["text"]):
                    add("response.output_text.delta", **at, content_index=0, delta=piece, logprobs=[])
                add("response.output_text.done", **at, content_index=0, text=part["text"], logprobs=[])
                add("response.content_part.done", **at, content_index=0, part=part)
            elif item["type"] == "function_call":
                add(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                for fragment in _fragments(item["arguments"]):
                    add("response.function_call_arguments.delta", **at, delta=fragment)
                add("response.function_call_arguments.done", **at, arguments=item["arguments"])
            elif item["type"] == "web_search_call":
                add("response.output_item.added", output_index=index, item={**item, "status": "in_progress"})
                for stage in ("in_progress", "searching", "completed"):
                    add(f"response.web_search_call.{stage}", **at)
            else:
                add("response.output_item.added", output_index=index, item=item)
            add("response.output_item.done", output_index=index, item=item)
        add("response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final)
        return events

    async def _stream_response(
        self, request: web.Request, plan: _ResponsePlan, final: dict[str, Any]
    ) -> web.StreamResponse:
        events = self.response_events(final)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            if "cut" in plan.directives:  # a few events, then the connection drops (nothing is stored)
                for event in events[:CUT_AFTER_EVENTS]:
                    await response.write(_sse(event))
                request.transport.close()  # type: ignore[union-attr]
                return response
            for event in events[:-1]:
                await response.write(_sse(event))
            self._keep_response(plan, final)  # before the last event: a client may chain on it at once
            await response.write(_sse(events[-1]))
            await response.write_eof()  # OpenAI ends the stream after its last event: no [DONE]
            self.state.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.state.cancelled_streams += 1
            raise
        return response
