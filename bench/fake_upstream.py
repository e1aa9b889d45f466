"""A very fast fake OpenAI, Anthropic and Gemini upstream for benchmarking gateways, on loopback only.

Why raw asyncio Protocols and a hand-written HTTP/1.1 parser: the upstream must be much faster than any gateway
put in front of it, so that the benchmark measures the gateway and not the fake. Responses are canned bytes built
once at import time; per request the server only frames the request (keep-alive and pipelining, Content-Length or
chunked bodies) and looks at the body to choose the response.

Endpoints:
  POST /v1/chat/completions   chat.completion JSON with usage; with "stream": true an SSE stream (chunked
                              transfer-encoding) of 20 content chunks, a finish chunk, a usage chunk when
                              stream_options.include_usage is true (every other chunk then has
                              `"usage":null`, as OpenAI's do), then `data: [DONE]`.
  POST /v1/embeddings         an embeddings list with usage, one vector per input (float or base64).
  POST /v1/messages           Anthropic's Messages API: a Message JSON (one text block, stop_reason end_turn,
                              usage with cache fields 0), the request's model echoed; with "stream": true
                              Anthropic's SSE events (`event: <type>\ndata: <json>\n\n`, chunked): message_start,
                              ping, content_block_start, 18 content_block_delta text_delta events,
                              content_block_stop, message_delta (stop_reason, output_tokens), message_stop.
                              As the real API, it wants an `x-api-key` (or `authorization`) header and an
                              `anthropic-version` header, and model, max_tokens and messages in the body; errors
                              are Anthropic-shaped: {"type": "error", "error": {"type": ..., "message": ...}}.
  POST /{v1beta|v1}/models/{model}:generateContent
                              Gemini's Generative Language API (Google AI Studio): a GenerateContentResponse
                              (camelCase: one candidate, role model, one text part of 18 words, finishReason
                              STOP, index 0; usageMetadata; modelVersion = the URL's model; responseId).
  POST /{v1beta|v1}/models/{model}:streamGenerateContent
                              with ?alt=sse: 18 `data: <GenerateContentResponse>\r\n\r\n` events (chunked),
                              one text part each, usageMetadata on each, finishReason STOP on the last; without
                              alt=sse Google's JSON-array form of the same responses (application/json,
                              `[{...}\n,\r\n{...}\n]`, one HTTP chunk per element). As the real API, it wants
                              the key in `x-goog-api-key` or `?key=`, and a body whose top-level names are
                              GenerateContentRequest fields with a non-empty `contents` of user / model turns
                              with parts; errors are Google-shaped: {"error": {"code", "message", "status"}}.
  POST /v1/responses          OpenAI's Responses API: a Response (one message item with one output_text part of
                              20 words, status completed, usage); with "stream": true its typed SSE events
                              (`event: <type>\ndata: <json>\n\n`, chunked, sequence_number from 0):
                              response.created, response.in_progress, response.output_item.added,
                              response.content_part.added, 20 response.output_text.delta,
                              response.output_text.done, response.content_part.done, response.output_item.done,
                              response.completed (the whole Response, with usage). Like the chat route it does not
                              echo the model, and only parses a body that mentions "stream".
  anything else               404 with an OpenAI-style error body.

Token-paced streams: a streaming request to /v1/chat/completions, /v1/messages or Gemini's
streamGenerateContent (SSE or JSON array) whose model ends in `-paced` (`gpt-4o-paced`, `claude-sonnet-4-5-paced`,
`gemini-2.0-flash-paced`) gets a stream paced like a real LLM's instead of the canned burst: --paced-events
content events (chat chunks, Anthropic text deltas, or Gemini responses with their usage so far), --paced-gap-ms
apart, each event its own write (one HTTP chunk, one send), the first one at once with the head (and, for
Anthropic, message_start, content_block_start and ping), and the closing events (chat: the finish chunk, the usage
chunk when asked, then [DONE]; Anthropic: content_block_stop, message_delta, message_stop; Gemini: a response with
the finish reason and the whole usage) one gap after the last content event. All
the paced streams share one timer per millisecond tick, so 2,000 of them cost one callback per tick plus one
write per event. A connection's next request waits until its paced stream has ended.

Run: python bench/fake_upstream.py --port 18000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import struct
from collections.abc import Callable
from typing import cast

MODEL = "gpt-4o"
CHUNK_COUNT = 20
PACED_SUFFIX = "-paced"  # a streaming request for a model named so gets a token-paced stream
DEFAULT_PACED_EVENTS = 50
DEFAULT_PACED_GAP_MS = 20.0
PROMPT_TOKENS = 9
EMBEDDING_DIMENSIONS = 16
MAX_HEADER_BYTES = 64 * 1024
COMPLETION_ID = "chatcmpl-bench0000000000000000000000"
RESPONSE_ID = "resp_bench0000000000000000000000"
RESPONSE_ITEM_ID = "msg_bench0000000000000000000000"
CREATED = 1_700_000_000
MESSAGE_ID = "msg_bench000000000000000000"
MESSAGE_DELTA_COUNT = 18  # text_delta events per Anthropic stream; with its 6 other events, close to OpenAI's 22
MAX_MODEL_NAME = 200
MAX_CACHED_MODELS = 64  # the Anthropic replies echo the model; one canned pair per model name, up to this many
MAX_CACHED_BODIES = 256  # and the reply to a request body seen before is found by the body, without parsing it
MAX_CACHED_BODY_BYTES = 4096
GEMINI_PART_COUNT = 18  # text events per Gemini stream, as many as the Anthropic stream's text deltas
GEMINI_RESPONSE_ID = "bench00000000000000000000"
GEMINI_VERSIONS = (b"/v1beta/models/", b"/v1/models/")
GEMINI_ACTIONS = (b"generateContent", b"streamGenerateContent")
# The fields of a GenerateContentRequest, which is the body (proto3 JSON takes the proto names too). `model` is
# one of them, bound to the URL's model; a body may repeat it, as Portkey's google provider does.
GEMINI_REQUEST_FIELDS = frozenset(
    {
        "model",
        "contents",
        "systemInstruction",
        "system_instruction",
        "generationConfig",
        "generation_config",
        "safetySettings",
        "safety_settings",
        "tools",
        "toolConfig",
        "tool_config",
        "cachedContent",
        "cached_content",
        "serviceTier",
        "service_tier",
        "store",
    }
)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _fixed_length_response(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _chunked_sse_response(events: list[bytes]) -> bytes:
    """One HTTP chunk per SSE event, as real upstreams send them, all written at once (the fake never waits)."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    head += b"transfer-encoding: chunked\r\n\r\n"
    frames = [b"%x\r\n%s\r\n" % (len(event), event) for event in events]
    return head + b"".join(frames) + b"0\r\n\r\n"


def _chat_completion() -> bytes:
    body = {
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "word " * CHUNK_COUNT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(PROMPT_TOKENS, CHUNK_COUNT),
    }
    return _fixed_length_response("200 OK", _json(body))


def _chat_chunk(
    choices: list[dict[str, object]], usage: dict[str, int] | None = None, *, null_usage: bool = False
) -> bytes:
    """A chat stream's chunk; `null_usage`: `"usage":null` in it, as OpenAI puts in every chunk but the usage
    chunk when the request asked for usage (stream_options.include_usage)."""
    chunk: dict[str, object] = {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": choices,
    }
    if usage is not None or null_usage:
        chunk["usage"] = usage
    return b"data: " + _json(chunk) + b"\n\n"


def _chat_stream(include_usage: bool) -> bytes:
    events = []
    for index in range(CHUNK_COUNT):
        delta = {"role": "assistant", "content": "word "} if index == 0 else {"content": "word "}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        events.append(_chat_chunk([choice], null_usage=include_usage))
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    events.append(_chat_chunk([finish], null_usage=include_usage))
    if include_usage:
        events.append(_chat_chunk([], _usage(PROMPT_TOKENS, CHUNK_COUNT)))
    events.append(b"data: [DONE]\n\n")
    return _chunked_sse_response(events)


def _response_object(
    status: str, output: list[dict[str, object]], usage: dict[str, object] | None
) -> dict[str, object]:
    """A Response as OpenAI's Responses API returns it: the request's settings echoed (defaults here)."""
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "completed_at": CREATED if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": MODEL,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _response_usage() -> dict[str, object]:
    return {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": CHUNK_COUNT,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": PROMPT_TOKENS + CHUNK_COUNT,
    }


def _response_message(status: str, text: str | None) -> dict[str, object]:
    """The reply's one message item; `text` None while it is being added (no content yet)."""
    content = [] if text is None else [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
    return {"id": RESPONSE_ITEM_ID, "type": "message", "status": status, "role": "assistant", "content": content}


def _responses_reply() -> bytes:
    final = _response_object("completed", [_response_message("completed", "word " * CHUNK_COUNT)], _response_usage())
    return _fixed_length_response("200 OK", _json(final))


def _responses_stream() -> bytes:
    """The typed events of one text reply, as OpenAI streams them; each carries its sequence_number."""
    text = "word " * CHUNK_COUNT
    final = _response_object("completed", [_response_message("completed", text)], _response_usage())
    start = _response_object("in_progress", [], None)
    at = {"item_id": RESPONSE_ITEM_ID, "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    events: list[dict[str, object]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
        {"type": "response.output_item.added", "output_index": 0, "item": _response_message("in_progress", None)},
        {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
        *({"type": "response.output_text.delta", **at, "delta": "word ", "logprobs": []} for _ in range(CHUNK_COUNT)),
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": _response_message("completed", text)},
        {"type": "response.completed", "response": final},
    ]
    numbered = [{"type": event["type"], "sequence_number": n, **event} for n, event in enumerate(events)]
    return _chunked_sse_response([_sse_event(event) for event in numbered])


def _embeddings(count: int, base64_encoded: bool) -> bytes:
    vector = [round(0.01 * (i + 1), 2) for i in range(EMBEDDING_DIMENSIONS)]
    encoded: object = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if base64_encoded else vector
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encoded} for i in range(count)],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": PROMPT_TOKENS * count, "total_tokens": PROMPT_TOKENS * count},
    }
    return _fixed_length_response("200 OK", _json(body))


def _message(model: str) -> dict[str, object]:
    """An Anthropic Message; a stream's message_start carries it with no content yet and stop_reason null."""
    return {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "word " * MESSAGE_DELTA_COUNT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": PROMPT_TOKENS,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": MESSAGE_DELTA_COUNT,
        },
    }


def _anthropic_reply(model: str) -> bytes:
    return _fixed_length_response("200 OK", _json(_message(model)))


def _sse_event(event: dict[str, object]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (str(event["type"]).encode(), _json(event))


def _anthropic_stream(model: str) -> bytes:
    opening = _message(model)
    opening["content"] = []
    opening["stop_reason"] = None
    opening["usage"] = {**cast(dict[str, int], opening["usage"]), "output_tokens": 1}
    events: list[dict[str, object]] = [
        {"type": "message_start", "message": opening},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}}
        for _ in range(MESSAGE_DELTA_COUNT)
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": MESSAGE_DELTA_COUNT},
        },
        {"type": "message_stop"},
    ]
    return _chunked_sse_response([_sse_event(event) for event in events])


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
CHUNKED_END = b"0\r\n\r\n"


class Paced:
    """A token-paced stream: steps[k] is written PACING.gap_ms * k after the request (each of its frames with its
    own write); the last step ends the chunked body."""

    __slots__ = ("steps",)

    def __init__(self, steps: list[list[bytes]]) -> None:
        self.steps = tuple(tuple(step) for step in steps)


class Pacing:
    """How paced streams are paced (set from the command line)."""

    events = DEFAULT_PACED_EVENTS
    gap_ms = DEFAULT_PACED_GAP_MS


PACING = Pacing()


def _frame(event: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(event), event)


def _paced_steps(opening: list[bytes], content: list[bytes], closing: list[bytes], head: bytes = SSE_HEAD) -> Paced:
    """Step 0: the head, the opening events and the first content event; one step per further content event;
    a last step with the closing events and the end of the body."""
    frames = [_frame(event) for event in closing]
    frames[-1] += CHUNKED_END
    steps = [[head, *(_frame(event) for event in opening), _frame(content[0])]]
    steps += [[_frame(event)] for event in content[1:]]
    return Paced([*steps, frames])


def _paced_chat_stream(include_usage: bool) -> Paced:
    events = PACING.events
    content = [
        _chat_chunk(
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "word "} if index == 0 else {"content": "word "},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            null_usage=include_usage,
        )
        for index in range(events)
    ]
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    closing = [_chat_chunk([finish], null_usage=include_usage)]
    if include_usage:
        closing.append(_chat_chunk([], _usage(PROMPT_TOKENS, events)))
    closing.append(b"data: [DONE]\n\n")
    return _paced_steps([], content, closing)


def _paced_anthropic_stream(model: str) -> Paced:
    events = PACING.events
    opening = _message(model)
    opening["content"] = []
    opening["stop_reason"] = None
    opening["usage"] = {**cast(dict[str, int], opening["usage"]), "output_tokens": 1}
    start: list[dict[str, object]] = [
        {"type": "message_start", "message": opening},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}}
    closing: list[dict[str, object]] = [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": events},
        },
        {"type": "message_stop"},
    ]
    return _paced_steps(
        [_sse_event(event) for event in start],
        [_sse_event(delta)] * events,
        [_sse_event(event) for event in closing],
    )


def _paced_gemini_stream(model: str, sse: bool) -> Paced:
    """Gemini's stream, paced: each response carries one piece of text and the usage so far, as Google's do; the
    last one has no text left, only the finish reason and the whole usage."""
    events = PACING.events
    responses = [_json(_gemini_response(model, "word ", index + 1, False)) for index in range(events)]
    pieces = _gemini_stream_pieces([*responses, _json(_gemini_response(model, "", events, True))], sse)
    if sse:
        return _paced_steps([], pieces[:-1], pieces[-1:])
    return _paced_steps([], pieces[:-2], pieces[-2:], GEMINI_ARRAY_HEAD)  # the last response with the closing `]`


def _is_paced(model: object) -> bool:
    return isinstance(model, str) and model.endswith(PACED_SUFFIX)


_PACED_CACHE: dict[tuple[str, str, bool], Paced] = {}


def paced_reply(kind: str, model: str, flag: bool) -> Paced:
    """The paced stream of a route, built once: "chat" (flag: include_usage), "messages" or "gemini" (flag:
    alt=sse), the model echoed."""
    key = (kind, model if kind != "chat" else "", flag)
    reply = _PACED_CACHE.get(key)
    if reply is None:
        if kind == "chat":
            reply = _paced_chat_stream(flag)
        else:
            reply = _paced_anthropic_stream(model) if kind == "messages" else _paced_gemini_stream(model, flag)
        if len(_PACED_CACHE) < MAX_CACHED_MODELS:
            _PACED_CACHE[key] = reply
    return reply


def _anthropic_error(status: str, kind: str, message: str) -> bytes:
    return _fixed_length_response(status, _json({"type": "error", "error": {"type": kind, "message": message}}))


def _error(status: str, message: str) -> bytes:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return _fixed_length_response(status, _json(body))


CHAT = _chat_completion()
CHAT_STREAM = _chat_stream(include_usage=False)
CHAT_STREAM_WITH_USAGE = _chat_stream(include_usage=True)
RESPONSE = _responses_reply()
RESPONSE_STREAM = _responses_stream()
NOT_FOUND = _error("404 Not Found", "unknown path")
BAD_REQUEST = _error("400 Bad Request", "malformed request or body")
ANTHROPIC_NO_KEY = _anthropic_error("401 Unauthorized", "authentication_error", "x-api-key header is required")
ANTHROPIC_NO_VERSION = _anthropic_error(
    "400 Bad Request", "invalid_request_error", "anthropic-version: header is required"
)
_EMBEDDINGS_CACHE: dict[tuple[int, bool], bytes] = {}
_MESSAGES_CACHE: dict[tuple[str, bool], bytes] = {}
_MESSAGES_BY_BODY: dict[bytes, bytes] = {}  # only successful replies: a refused body is checked again each time


def _parse_json_object(body: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def chat_response(body: bytes) -> bytes | Paced:
    """The JSON is only parsed when it mentions streaming, which keeps the common non-stream path cheap."""
    if b'"stream"' not in body:
        return CHAT
    request = _parse_json_object(body)
    if request is None:
        return BAD_REQUEST
    if request.get("stream") is not True:
        return CHAT
    options = request.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    if _is_paced(request.get("model")):
        return paced_reply("chat", "", include_usage)
    return CHAT_STREAM_WITH_USAGE if include_usage else CHAT_STREAM


def responses_response(body: bytes) -> bytes:
    """As for chat: the JSON is only parsed when it mentions streaming."""
    if b'"stream"' not in body:
        return RESPONSE
    request = _parse_json_object(body)
    if request is None:
        return BAD_REQUEST
    return RESPONSE_STREAM if request.get("stream") is True else RESPONSE


def _input_count(value: object) -> int:
    """A string or a list of token ids is one input; a list of strings or of token lists is several."""
    if isinstance(value, list) and value and isinstance(value[0], str | list):
        return len(value)
    return 1


def embeddings_response(body: bytes) -> bytes:
    request = _parse_json_object(body)
    if request is None:
        return BAD_REQUEST
    key = (_input_count(request.get("input")), request.get("encoding_format") == "base64")
    if key not in _EMBEDDINGS_CACHE:
        _EMBEDDINGS_CACHE[key] = _embeddings(*key)
    return _EMBEDDINGS_CACHE[key]


def _messages_invalid(request: dict[str, object]) -> str:
    """What the real API would refuse in the fields every request needs; empty when they are fine."""
    model, max_tokens, messages = request.get("model"), request.get("max_tokens"), request.get("messages")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        return "model: Field required"
    if max_tokens is None:
        return "max_tokens: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Input should be an integer of at least 1"
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    if "stream" in request and not isinstance(request["stream"], bool):
        return "stream: Input should be a valid boolean"
    return ""


def messages_response(head: bytes, body: bytes) -> bytes | Paced:
    """Headers as the real API wants them, the required fields checked, then a canned reply per model."""
    if _header_value(head, b"x-api-key:") is None and _header_value(head, b"authorization:") is None:
        return ANTHROPIC_NO_KEY
    if _header_value(head, b"anthropic-version:") is None:
        return ANTHROPIC_NO_VERSION
    if (known := _MESSAGES_BY_BODY.get(body)) is not None:
        return known
    request = _parse_json_object(body)
    if request is None:
        return _anthropic_error("400 Bad Request", "invalid_request_error", "the body is not a JSON object")
    if problem := _messages_invalid(request):
        return _anthropic_error("400 Bad Request", "invalid_request_error", problem)
    if request.get("stream") is True and _is_paced(request["model"]):
        return paced_reply("messages", cast(str, request["model"]), True)
    key = (cast(str, request["model"]), request.get("stream") is True)
    reply = _MESSAGES_CACHE.get(key)
    if reply is None:
        reply = _anthropic_stream(key[0]) if key[1] else _anthropic_reply(key[0])
        if len(_MESSAGES_CACHE) < MAX_CACHED_MODELS:
            _MESSAGES_CACHE[key] = reply
    if len(body) <= MAX_CACHED_BODY_BYTES and len(_MESSAGES_BY_BODY) < MAX_CACHED_BODIES:
        _MESSAGES_BY_BODY[body] = reply
    return reply


def _gemini_error(code: int, status: str, message: str) -> bytes:
    reason = {400: "Bad Request", 404: "Not Found"}[code]
    body = {"error": {"code": code, "message": message, "status": status}}
    return _fixed_length_response(f"{code} {reason}", _json(body))


def _gemini_response(model: str, text: str, output_tokens: int, finished: bool) -> dict[str, object]:
    """A GenerateContentResponse in Google's camelCase; a stream's responses carry one piece of text each."""
    candidate: dict[str, object] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finished:
        candidate["finishReason"] = "STOP"
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": PROMPT_TOKENS,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": PROMPT_TOKENS + output_tokens,
        },
        "modelVersion": model,
        "responseId": GEMINI_RESPONSE_ID,
    }


def _gemini_stream_responses(model: str) -> list[bytes]:
    last = GEMINI_PART_COUNT - 1
    return [_json(_gemini_response(model, "word ", i + 1, i == last)) for i in range(GEMINI_PART_COUNT)]


def _gemini_reply(model: str, action: bytes, sse: bool) -> bytes | Paced:
    if action == b"generateContent":
        return _fixed_length_response(
            "200 OK", _json(_gemini_response(model, "word " * GEMINI_PART_COUNT, GEMINI_PART_COUNT, True))
        )
    if _is_paced(model):
        return paced_reply("gemini", model, sse)
    pieces = _gemini_stream_pieces(_gemini_stream_responses(model), sse)
    if sse:
        return _chunked_sse_response(pieces)
    return GEMINI_ARRAY_HEAD + b"".join(_frame(piece) for piece in pieces) + CHUNKED_END


def _gemini_stream_pieces(responses: list[bytes], sse: bool) -> list[bytes]:
    """A stream's responses as Google writes them: with alt=sse, each an event (Google ends each SSE line with
    CRLF); without, one JSON array written element by element, its closing `]` a piece of its own."""
    if sse:
        return [b"data: " + response + b"\r\n\r\n" for response in responses]
    return [b"[" + responses[0], *(b"\n,\r\n" + response for response in responses[1:]), b"\n]"]


GEMINI_ARRAY_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=UTF-8\r\ntransfer-encoding: chunked\r\n\r\n"
)
GEMINI_NO_KEY = _gemini_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
_GEMINI_CACHE: dict[tuple[str, bytes, bool], bytes | Paced] = {}
_GEMINI_BY_REQUEST: dict[tuple[bytes, bytes], bytes | Paced] = {}  # (URL, body) -> reply; only successful replies


def _gemini_invalid(request: dict[str, object]) -> str:
    """What the real API would refuse in a GenerateContentRequest's shape; empty when it is fine."""
    for name in request:
        if name not in GEMINI_REQUEST_FIELDS:
            return f'Invalid JSON payload received. Unknown name "{name[:MAX_MODEL_NAME]}": Cannot find field.'
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for content in contents:
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model"):
            return "Please use a valid role: user, model."
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts or not all(isinstance(part, dict) and part for part in parts):
            return "* GenerateContentRequest.contents.parts: contents.parts must not be empty."
    return ""


def _gemini_call(target: bytes) -> tuple[str, bytes, bool] | None:
    """(model, action, alt=sse) from `/{version}/models/{model}:{action}?...`; None for another path."""
    path, _, query = target.partition(b"?")
    prefix = next((p for p in GEMINI_VERSIONS if path.startswith(p)), None)
    if prefix is None:
        return None
    model, _, action = path[len(prefix) :].rpartition(b":")
    if not model or len(model) > MAX_MODEL_NAME or b"/" in model or action not in GEMINI_ACTIONS:
        return None
    return model.decode(errors="replace"), action, b"alt=sse" in query.split(b"&")


def _has_query_key(target: bytes) -> bool:
    query = target.partition(b"?")[2]
    return any(item.startswith(b"key=") and len(item) > 4 for item in query.split(b"&"))


def gemini_response(target: bytes, head: bytes, body: bytes) -> bytes | Paced:
    """The key checked (header or query), then a canned reply per (model, action, SSE or not)."""
    call = _gemini_call(target)
    if call is None:
        return _gemini_error(
            404, "NOT_FOUND", f"the path {target[:MAX_MODEL_NAME].decode(errors='replace')} is unknown"
        )
    if not _header_value(head, b"x-goog-api-key:") and not _has_query_key(target):
        return GEMINI_NO_KEY
    if (known := _GEMINI_BY_REQUEST.get((target, body))) is not None:
        return known
    request = _parse_json_object(body)
    if request is None:
        return _gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
    if problem := _gemini_invalid(request):
        return _gemini_error(400, "INVALID_ARGUMENT", problem)
    reply = _GEMINI_CACHE.get(call)
    if reply is None:
        reply = _gemini_reply(*call)
        if len(_GEMINI_CACHE) < MAX_CACHED_MODELS:
            _GEMINI_CACHE[call] = reply
    if len(body) <= MAX_CACHED_BODY_BYTES and len(_GEMINI_BY_REQUEST) < MAX_CACHED_BODIES:
        _GEMINI_BY_REQUEST[(target, body)] = reply
    return reply


ROUTES: dict[bytes, Callable[[bytes], bytes | Paced]] = {
    b"/v1/chat/completions": chat_response,
    b"/chat/completions": chat_response,
    b"/v1/embeddings": embeddings_response,
    b"/embeddings": embeddings_response,
    b"/v1/responses": responses_response,
    b"/responses": responses_response,
}
ROUTES_WITH_HEADERS: dict[bytes, Callable[[bytes, bytes], bytes | Paced]] = {b"/v1/messages": messages_response}


def respond(method: bytes, target: bytes, head: bytes, body: bytes) -> bytes | Paced:
    """`head` is the lower-cased header block, as `_header_value` reads it."""
    path = target.split(b"?", 1)[0]
    if method == b"POST" and (handler := ROUTES.get(path)) is not None:
        return handler(body)
    if method == b"POST" and (with_headers := ROUTES_WITH_HEADERS.get(path)) is not None:
        return with_headers(head, body)
    if method == b"POST" and path.startswith(GEMINI_VERSIONS):
        return gemini_response(target, head, body)
    return NOT_FOUND


def _header_value(head: bytes, name: bytes) -> bytes | None:
    """`head` is the lower-cased header block starting at its first CRLF; `name` ends with a colon."""
    start = head.find(b"\r\n" + name)
    if start < 0:
        return None
    start += 2 + len(name)
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


def _chunked_body(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked request body from buffer[start:]; None until all of it (and its trailer) has arrived."""
    parts = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", position - 2)
            return (b"".join(parts), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < position + size + 2:
            return None
        parts.append(bytes(buffer[position : position + size]))
        position += size + 2


class PacedWriter:
    """Writes every paced stream's steps on time: streams due in the same millisecond share one timer callback."""

    def __init__(self) -> None:
        self.buckets: dict[int, list[PacedStream]] = {}
        self.gap_ms = PACING.gap_ms

    def start(self, stream: PacedStream) -> None:
        loop = asyncio.get_running_loop()
        stream.advance()
        if not stream.finished:
            self._add(loop, round(loop.time() * 1000 + self.gap_ms), stream)

    def _add(self, loop: asyncio.AbstractEventLoop, tick: int, stream: PacedStream) -> None:
        bucket = self.buckets.get(tick)
        if bucket is None:
            bucket = self.buckets[tick] = []
            loop.call_at(tick / 1000, self._fire, loop, tick)
        bucket.append(stream)

    def _fire(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        # Each stream's next step is due a gap after this one was due, not after it ran: no drift.
        following = round(tick + self.gap_ms)
        for stream in self.buckets.pop(tick):
            stream.advance()
            if not stream.finished:
                self._add(loop, following, stream)


class PacedStream:
    """One paced reply in progress on one connection."""

    __slots__ = ("finished", "index", "protocol", "reply")

    def __init__(self, protocol: UpstreamProtocol, reply: Paced) -> None:
        self.protocol, self.reply, self.index, self.finished = protocol, reply, 0, False

    def advance(self) -> None:
        transport = self.protocol.transport
        if transport.is_closing():  # the client went away: drop the rest
            self.finished = True
            return
        for frame in self.reply.steps[self.index]:
            transport.write(frame)
        self.index += 1
        if self.index == len(self.reply.steps):
            self.finished = True
            self.protocol.paced_done()


_PACED_WRITER: PacedWriter | None = None


def _paced_writer() -> PacedWriter:
    global _PACED_WRITER  # one per process, created in the loop that serves
    if _PACED_WRITER is None:
        _PACED_WRITER = PacedWriter()
    return _PACED_WRITER


class UpstreamProtocol(asyncio.Protocol):
    """One connection: frames each complete request in the buffer and writes its canned response in order; a
    paced reply holds back the connection's next requests until it has been written out."""

    buffer: bytearray
    transport: asyncio.Transport
    pacing: bool  # a paced reply is being written
    close_after: bool

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.buffer = bytearray()
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.pacing = False
        self.close_after = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.pacing:
            self._answer()

    def paced_done(self) -> None:
        self.pacing = False
        if self.close_after:
            self.transport.close()
        elif self.buffer:
            self._answer()

    def _answer(self) -> None:
        replies = []
        close = False
        while not close:
            try:
                request = self._next_request()
            except ValueError:  # a malformed request line, length or chunk size: answer once, then hang up
                request = (BAD_REQUEST, True)
            if request is None:
                break
            reply, close = request
            if isinstance(reply, Paced):
                if replies:
                    self.transport.write(b"".join(replies))
                self.pacing, self.close_after = True, close
                _paced_writer().start(PacedStream(self, reply))
                return
            replies.append(reply)
        if replies:
            self.transport.write(b"".join(replies))
        if close or (len(self.buffer) > MAX_HEADER_BYTES and self.buffer.find(b"\r\n\r\n") < 0):
            self.transport.close()

    def _next_request(self) -> tuple[bytes | Paced, bool] | None:
        """Consume one complete request from the buffer, returning (response, close-after); None if incomplete."""
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        line_end = self.buffer.find(b"\r\n")
        method, target, version = bytes(self.buffer[:line_end]).split(b" ", 2)
        head = bytes(self.buffer[line_end:head_end]).lower() + b"\r\n"
        body_start = head_end + 4
        if _header_value(head, b"transfer-encoding:") == b"chunked":
            decoded = _chunked_body(self.buffer, body_start)
            if decoded is None:
                return None
            body, body_end = decoded
        else:
            body_end = body_start + int(_header_value(head, b"content-length:") or 0)
            if len(self.buffer) < body_end:
                return None
            body = bytes(self.buffer[body_start:body_end])
        del self.buffer[:body_end]
        connection = _header_value(head, b"connection:")
        close = connection == b"close" or (version == b"HTTP/1.0" and connection != b"keep-alive")
        return respond(method, target, head, body), close


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, "127.0.0.1", port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Fast fake OpenAI, Anthropic and Gemini upstream on 127.0.0.1 for benchmarks."
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--paced-events",
        type=int,
        default=DEFAULT_PACED_EVENTS,
        help=f"content events per paced stream (model *{PACED_SUFFIX}; default {DEFAULT_PACED_EVENTS})",
    )
    parser.add_argument(
        "--paced-gap-ms",
        type=float,
        default=DEFAULT_PACED_GAP_MS,
        help=f"milliseconds between a paced stream's events (default {DEFAULT_PACED_GAP_MS:g})",
    )
    args = parser.parse_args()
    if args.paced_events < 1 or args.paced_gap_ms < 0:
        parser.error("--paced-events must be at least 1 and --paced-gap-ms not negative")
    PACING.events, PACING.gap_ms = args.paced_events, args.paced_gap_ms
    _install_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
