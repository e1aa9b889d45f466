"""The mock upstream's Gemini API (providers/mock.py serves it): `/{version}/models/{model}:generateContent`,
`:streamGenerateContent` (`?alt=sse`, else the JSON-array form) and `:countTokens`, for any API version.
Fields are read in Google's camelCase or the snake_case proto names, as Google's own parser takes them;
credentials are not checked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
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
    stream,
    text_of,
    tool_to_call,
    whole,
)

STATUSES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}
FAILURE_MESSAGE = "The model is overloaded. Please try again later. (A failure drawn by the mock's failure_rate.)"
_PATH = re.compile(r"/v\d+(?:alpha|beta)?\d*/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)")
_TOOL_MODES = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "any", "NONE": "none"}
_UPPER = re.compile(r"([A-Z])")


def error(status: int, message: str) -> web.Response:
    return json_reply(
        {"error": {"code": status, "message": message, "status": STATUSES.get(status, "INTERNAL")}}, status
    )


def overloaded() -> web.Response:
    return error(503, FAILURE_MESSAGE)


def route(path: str) -> Handler | None:
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    model, action = match.groups()
    if action == "countTokens":
        return count_tokens
    return partial(generate, model=model, streaming=action == "streamGenerateContent")


def field(node: Any, name: str) -> Any:
    """A field by its camelCase name or its snake_case proto name (None when absent or `node` is no object)."""
    if not isinstance(node, dict):
        return None
    value = node.get(name)
    return value if value is not None else node.get(_UPPER.sub(r"_\1", name).lower())


async def generate(call: MockCall, model: str, streaming: bool) -> web.StreamResponse:
    body = await call.json()
    contents = _contents(body)
    config = field(body, "generationConfig")
    prompt = next((text_of(field(c, "parts")) for c in reversed(contents) if c.get("role", "user") == "user"), "")
    schema, json_mode = _json_format(config)
    output_limit = whole(field(config, "maxOutputTokens"))
    reply = plan_reply(call.options, prompt, output_limit, _tool(body, contents, prompt), schema, json_mode)
    prompt_tokens = prompt_words(field(body, "systemInstruction"), contents)
    common = {"modelVersion": model, "responseId": f"mock{call.serial}"}
    if streaming:
        chunks = _chunks(common, reply, prompt_tokens)
        if call.request.query.get("alt") == "sse":
            return await stream(call, (b"data: " + chunk + b"\r\n\r\n" for chunk in chunks))
        return await stream(call, _json_array(chunks), "application/json; charset=UTF-8")
    candidate = {"content": {"parts": [_part(reply)], "role": "model"}, "finishReason": _finish(reply), "index": 0}
    return json_reply({"candidates": [candidate], "usageMetadata": _usage(prompt_tokens, reply.tokens), **common})


async def count_tokens(call: MockCall) -> web.StreamResponse:
    body = await call.json()
    request = field(body, "generateContentRequest") or body  # either form countTokens accepts
    return json_reply({"totalTokens": prompt_words(field(request, "systemInstruction"), _contents(request))})


def _contents(body: JsonObject) -> list[JsonObject]:
    contents = field(body, "contents")
    if not isinstance(contents, list) or not contents or not all(isinstance(c, dict) for c in contents):
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
    return contents


def _json_format(config: Any) -> tuple[Any, bool]:
    """(the schema to fill, whether JSON is asked for) from generationConfig."""
    if field(config, "responseMimeType") != "application/json":
        return None, False
    schema = field(config, "responseJsonSchema") or field(config, "responseSchema")
    return (schema if isinstance(schema, dict) else None), True


def _tool(body: JsonObject, contents: list[JsonObject], prompt: str) -> Tool | None:
    last = contents[-1]
    parts = field(last, "parts")
    answered = isinstance(parts, list) and any(field(p, "functionResponse") is not None for p in parts)
    if last.get("role", "user") != "user" or answered:  # after a function's result the model answers in words
        return None
    tools = [
        Tool(declaration["name"], field(declaration, "parametersJsonSchema") or field(declaration, "parameters"))
        for group in field(body, "tools") or ()
        for declaration in field(group, "functionDeclarations") or ()
        if isinstance(declaration, dict) and isinstance(declaration.get("name"), str)
    ]
    calling = field(field(body, "toolConfig"), "functionCallingConfig")
    mode = _TOOL_MODES.get(str(field(calling, "mode") or "AUTO"), "auto")
    allowed = field(calling, "allowedFunctionNames")
    forced = allowed[0] if mode == "any" and isinstance(allowed, list) and allowed else None
    return tool_to_call(tools, prompt, mode, forced)


def _part(reply: Reply) -> JsonObject:
    return {"functionCall": {"name": reply.tool, "args": reply.arguments}} if reply.tool else {"text": reply.text}


def _finish(reply: Reply) -> str:
    return "MAX_TOKENS" if reply.truncated else "STOP"  # Gemini ends a function call with STOP too


def _usage(prompt_tokens: int, output_tokens: int) -> JsonObject:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }


def _chunks(common: JsonObject, reply: Reply, prompt_tokens: int) -> Iterator[bytes]:
    """The GenerateContentResponse chunks of a stream: the text word by word (a function call whole, as Gemini
    sends it), usage so far in each (Gemini's is cumulative), the finish reason in the last."""
    pieces = [_part(reply)] if reply.tool else [{"text": piece} for piece in reply.pieces()]
    written = 0
    for index, part in enumerate(pieces, 1):
        written = reply.tokens if reply.tool or index == len(pieces) else written + 1
        candidate: JsonObject = {"content": {"parts": [part], "role": "model"}, "index": 0}
        if index == len(pieces):
            candidate["finishReason"] = _finish(reply)
        yield orjson.dumps({"candidates": [candidate], "usageMetadata": _usage(prompt_tokens, written), **common})


def _json_array(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The stream without alt=sse: one JSON array, written element by element."""
    for index, chunk in enumerate(chunks):
        yield (b"[" if index == 0 else b"\r\n,") + chunk
    yield b"]"


GEMINI = WireFormat(route=route, error=error, overloaded=overloaded)
