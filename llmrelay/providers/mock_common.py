"""What the mock upstream's wire formats share (providers/mock.py serves them): the canned reply, words counted
as tokens, which tool a reply calls and with which arguments, and the plumbing of a reply (JSON, SSE).

Everything here is deterministic and cheap, since the mock may be used for load tests: no tokenizer (a token is
a whitespace-separated word), no randomness (failures are drawn in mock.py), streams written in one piece when
the channel has no `token_interval`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from llmrelay.config import MockOptions

JsonObject = dict[str, Any]

OPENING = "This is a mock reply from llmrelay to:"
ECHOED_WORDS = 8  # words of the prompt a reply repeats after the opening
# Pads a reply to its `reply_tokens`, cycled as often as needed.
FILLER = (
    "— a canned answer, so no provider key was needed; the mock pads every reply to its configured length "
    "with these words, again and again."
)
_OPENING_WORDS = tuple(OPENING.split())
_FILLER_WORDS = tuple(FILLER.split())
TEXT_KEYS = frozenset({"text", "content", "system"})  # where prompts keep their text, in every format
SCHEMA_DEPTH = 8  # how deep a sample follows nested schemas (a recursive schema must end somewhere)
_SAMPLES: dict[str, Any] = {"string": "mock", "integer": 1, "number": 1.5, "boolean": True, "null": None}


class BadRequest(Exception):
    """A request the mock cannot answer; each format renders it as its own 400."""


@dataclass(frozen=True, slots=True)
class MockCall:
    """One request to a mock channel: the HTTP request, the channel's options, and a number for reply ids."""

    request: web.Request
    options: MockOptions
    serial: int

    async def json(self) -> JsonObject:
        try:
            body = orjson.loads(await self.request.read())
        except orjson.JSONDecodeError:
            raise BadRequest("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        return body


Handler = Callable[[MockCall], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class WireFormat:
    """A wire format the mock speaks: the handler of each path (after the channel's prefix; None: no such
    endpoint), an error reply of a status in the format's own shape, and the reply of a drawn failure."""

    route: Callable[[str], Handler | None]
    error: Callable[[int, str], web.Response]
    overloaded: Callable[[], web.Response]


# ---- the reply ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the client declared: its name and the JSON schema of its arguments."""

    name: str
    schema: Any


@dataclass(frozen=True, slots=True)
class Reply:
    """What a mock reply says, whatever the wire format: text, or one call of a tool.

    `tokens` is what usage reports for it: the words of the text, or of the call's arguments as JSON."""

    text: str
    truncated: bool = False  # cut short by the client's output limit
    tool: str | None = None
    arguments: JsonObject | None = None

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments or {})  # with spaces, so its words are countable

    @property
    def tokens(self) -> int:
        return words(self.arguments_json if self.tool else self.text)

    def pieces(self) -> list[str]:
        """The text (or the arguments) word by word, as stream events carry it; joined they are the whole."""
        split = (self.arguments_json if self.tool else self.text).split(" ")
        return [split[0], *(" " + word for word in split[1:])] if split != [""] else []


def words(text: str) -> int:
    return len(text.split())


def reply_words(prompt: str, count: int) -> list[str]:
    """`count` words: the opening, the first words of the prompt, then filler."""
    chosen = [*_OPENING_WORDS, *prompt.split()[:ECHOED_WORDS]]
    while len(chosen) < count:
        chosen.extend(_FILLER_WORDS[: count - len(chosen)])
    return chosen[:count]


def plan_reply(
    options: MockOptions,
    prompt: str,
    limit: int | None,
    tool: Tool | None = None,
    json_schema: Any = None,
    json_mode: bool = False,
) -> Reply:
    """The reply to a prompt: a call of `tool`; JSON (filled from `json_schema` when one is given) in JSON
    mode; else `reply_tokens` words, or `limit` words (truncated) when the client allows fewer."""
    if tool is not None:
        return Reply("", tool=tool.name, arguments=tool_arguments(tool))
    if json_schema is not None:
        return Reply(json.dumps(sample(json_schema)))
    count = options.reply_tokens if limit is None or limit <= 0 else min(options.reply_tokens, limit)
    text = " ".join(reply_words(prompt, count))
    if json_mode:
        return Reply(json.dumps({"reply": text}))
    return Reply(text, truncated=count < options.reply_tokens)


def tool_to_call(tools: Sequence[Tool], prompt: str, mode: str = "auto", forced: str | None = None) -> Tool | None:
    """The tool a reply calls (None: a text reply). `mode` is "auto", "any" (a call is required) or "none";
    `forced` names the tool the client insists on. On "auto" the prompt decides, so trying tools needs only
    a prompt: the first tool whose name it mentions, else the first tool when it speaks of the weather."""
    if not tools or mode == "none":
        return None
    if forced is not None:
        return next((tool for tool in tools if tool.name == forced), tools[0])
    if mode == "any":
        return tools[0]
    lowered = prompt.lower()
    named = next((tool for tool in tools if tool.name.lower() in lowered), None)
    return named or (tools[0] if "weather" in lowered else None)


def tool_arguments(tool: Tool) -> JsonObject:
    value = sample(tool.schema)
    return value if isinstance(value, dict) else {}


def sample(schema: Any, depth: int = 0) -> Any:
    """A value that fits a JSON schema (the subset tools use: type, properties, items, enum, const, anyOf...).
    Gemini's schemas spell types in capitals (STRING), so types are compared in lower case."""
    if not isinstance(schema, dict) or depth > SCHEMA_DEPTH:
        return None
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for combinator in ("anyOf", "oneOf", "allOf", "any_of"):
        if isinstance(schema.get(combinator), list) and schema[combinator]:
            return sample(schema[combinator][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]: the first that is not null
        kind = next((k for k in kind if k != "null"), "null")
    kind = str(kind).lower() if kind is not None else None
    properties = schema.get("properties")
    if kind == "object" or isinstance(properties, dict):
        items = properties.items() if isinstance(properties, dict) else ()
        return {str(name): sample(sub, depth + 1) for name, sub in items}
    if kind == "array":
        return [sample(schema["items"], depth + 1)] if isinstance(schema.get("items"), dict) else []
    return _SAMPLES.get(kind or "string", "mock")


def prompt_words(*nodes: Any) -> int:
    """The words of every text in a request's messages (strings under "text", "content" and "system", at any
    depth), counted without recursion: a client's nesting is bounded only by the JSON parser."""
    total = 0
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str):
                    total += words(value) if key in TEXT_KEYS else 0
                elif isinstance(value, list | dict):
                    stack.append(value)
        elif isinstance(node, str):
            total += words(node)
    return total


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the `text` of its parts (OpenAI, Anthropic, Gemini)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def whole(value: Any, default: int | None = None) -> int | None:
    """An integer field of a request (None and other types: `default`; a bool is not a number)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# ---- the plumbing ------------------------------------------------------------------------------------------------


def json_reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def sse(data: Any, event: str | None = None) -> bytes:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


async def stream(
    call: MockCall, events: Iterable[bytes], content_type: str = "text/event-stream"
) -> web.StreamResponse:
    """Send `events`, `token_interval` seconds apart (all in one write without an interval: the cheapest
    stream, for load tests). A client that leaves mid-stream just ends it."""
    response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
    await response.prepare(call.request)
    interval = call.options.token_interval
    try:
        if interval <= 0:
            await response.write(b"".join(events))
        else:
            for index, event in enumerate(events):
                if index:
                    await asyncio.sleep(interval)
                await response.write(event)
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response
