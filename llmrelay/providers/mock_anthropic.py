"""The mock upstream's Anthropic Messages API (providers/mock.py serves it): POST /v1/messages, streamed (the
documented event sequence) or not, and POST /v1/messages/count_tokens. Credentials are not checked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from llmrelay.providers.mock_common import (
    BadRequest,
    Handler,
    JsonObject,
    MockCall,
    Reply,
    Tool,
    WireFormat,
    json_reply,
    plan_reply,
    prompt_words,
    sse,
    stream,
    text_of,
    tool_to_call,
    whole,
)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
FAILURE_MESSAGE = "Overloaded (a failure drawn by the mock's failure_rate)."
_TOOL_MODES = {"auto": "auto", "any": "any", "tool": "any", "none": "none"}


def error(status: int, message: str) -> web.Response:
    kind = ERROR_TYPES.get(status, "api_error")
    return json_reply({"type": "error", "error": {"type": kind, "message": message}}, status)


def overloaded() -> web.Response:
    return error(529, FAILURE_MESSAGE)


async def messages(call: MockCall) -> web.StreamResponse:
    body = await call.json()
    history = _messages(body)
    max_tokens = whole(body.get("max_tokens"))
    if max_tokens is None or max_tokens < 1:
        raise BadRequest("max_tokens: Field required (a whole number of at least 1)")
    prompt = next((text_of(m.get("content")) for m in reversed(history) if m.get("role") == "user"), "")
    reply = plan_reply(call.options, prompt, max_tokens, _tool(body, history, prompt))
    usage = {
        "input_tokens": prompt_words(body.get("system"), history),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": reply.tokens,
        "service_tier": "standard",
    }
    message = {
        "id": f"msg_mock{call.serial}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [_block(reply, call.serial)],
        "stop_reason": "tool_use" if reply.tool else "max_tokens" if reply.truncated else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    if body.get("stream") is True:
        return await stream(call, _events(message, reply))
    return json_reply(message)


async def count_tokens(call: MockCall) -> web.StreamResponse:
    body = await call.json()
    return json_reply({"input_tokens": prompt_words(body.get("system"), _messages(body))})


def _messages(body: JsonObject) -> list[JsonObject]:
    history = body.get("messages")
    if not isinstance(history, list) or not history or not all(isinstance(m, dict) for m in history):
        raise BadRequest("messages: a non-empty list of message objects is required")
    return history


def _tool(body: JsonObject, history: list[JsonObject], prompt: str) -> Tool | None:
    last = history[-1]
    content = last.get("content")
    answered = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    if last.get("role") != "user" or answered:  # after a tool's result the model answers in words
        return None
    tools = [
        Tool(tool["name"], tool.get("input_schema"))
        for tool in body.get("tools") or ()
        if isinstance(tool, dict) and isinstance(tool.get("name"), str) and "input_schema" in tool
    ]
    choice: Any = body.get("tool_choice") or {}
    kind = choice.get("type", "auto") if isinstance(choice, dict) else "auto"
    forced = choice.get("name") if kind == "tool" else None
    return tool_to_call(tools, prompt, _TOOL_MODES.get(str(kind), "auto"), forced)


def _block(reply: Reply, serial: int) -> JsonObject:
    if reply.tool:
        return {"type": "tool_use", "id": f"toolu_mock{serial}", "name": reply.tool, "input": reply.arguments}
    return {"type": "text", "text": reply.text}


def _events(message: JsonObject, reply: Reply) -> Iterator[bytes]:
    """The documented sequence: message_start (input usage), content_block_start, ping, the block's deltas
    word by word, content_block_stop, message_delta (stop reason, final usage), message_stop."""
    usage = message["usage"]
    opening = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield sse({"type": "message_start", "message": opening}, "message_start")
    block = message["content"][0]
    start = {**block, "input": {}} if reply.tool else {"type": "text", "text": ""}
    yield sse({"type": "content_block_start", "index": 0, "content_block": start}, "content_block_start")
    yield sse({"type": "ping"}, "ping")
    kind, field = (b"input_json_delta", b"partial_json") if reply.tool else (b"text_delta", b"text")
    head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"%s","%s":'
    head %= (kind, field)
    for piece in reply.pieces():
        yield head + orjson.dumps(piece) + b"}}\n\n"
    yield sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    final = {key: value for key, value in usage.items() if key != "service_tier"}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield sse({"type": "message_delta", "delta": delta, "usage": final}, "message_delta")
    yield sse({"type": "message_stop"}, "message_stop")


ENDPOINTS: dict[str, Handler] = {"/v1/messages": messages, "/v1/messages/count_tokens": count_tokens}

ANTHROPIC = WireFormat(route=ENDPOINTS.get, error=error, overloaded=overloaded)
