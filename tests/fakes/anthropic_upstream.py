"""A fake Anthropic upstream that speaks the documented Messages API wire format.

The twin of `tests.fakes.openai_upstream.FakeOpenAI`: an aiohttp app on its own event loop in a background
thread, on 127.0.0.1 and an ephemeral port, answering deterministically and recording every request.

    POST /v1/messages                 a Message as JSON, or with "stream": true the SSE events
                                      (`event: <type>\\ndata: <json>\\n\\n`, one write each): message_start, ping,
                                      content_block_start / content_block_delta... / content_block_stop per block,
                                      message_delta, message_stop
    POST /v1/messages/count_tokens    {"input_tokens": N}, counted like the usage of /v1/messages

Both require `x-api-key: ANTHROPIC_UPSTREAM_SECRET` (else 401 authentication_error; the anthropic SDK's
`Authorization: Bearer <key>` is accepted as well) and an `anthropic-version` header (else 400), and validate
the body as strictly as the real API (400 invalid_request_error naming the problem), so a gateway's bad
translation fails the test instead of passing silently: unknown top-level fields, a missing model or
max_tokens, roles other than user/assistant, a first message that is not the user's, two consecutive messages
of one role, empty text, a system message outside `system`, tool_result blocks without a tool_use in the
assistant message just before (and tool_use blocks left unanswered), image sources that are neither base64
nor url, temperature outside 0..1, malformed (or OpenAI-shaped) tools, tool_choice and thinking.

The reply is "You said: <words of the last user message, directives removed>", plus " (N images)" when that
message has N image blocks. Usage counts words:

    input_tokens   3 + sum over messages of (3 + words of its text) + words of the system text
    output_tokens  words of every text and thinking block, plus the words of each tool_use input as
                   `json.dumps` writes it ({"city": "Paris", "n": 0} is 4 words)

`max_tokens` truncates the reply text to that many words (stop_reason "max_tokens"); a reply word listed in
`stop_sequences` cuts the text just before it (stop_reason "stop_sequence", `stop_sequence` set); otherwise
stop_reason is "end_turn". Without a directive the reply also adapts to the request, as Claude does:

    "thinking": {"type": "enabled", ...}   the reply opens with a thinking block ("Let me think about this.",
                                           signature "sig-fake-123"), streamed as thinking_delta events and a
                                           signature_delta
    "tool_choice": {"type": "tool", ...}   the reply is exactly one tool_use of that tool, input
                                           {"answer": "yes", "n": 1}, stop_reason "tool_use" (JSON mode
                                           through a forced tool)

Directives in the last user message's text steer it:

    #fake:tools             "Let me check." then one tool_use (id toolu_fake_0, the request's first tool or
    #fake:tools=N           get_weather, input {"city": "Paris", "n": <i>}); N of them with =N; stop_reason
                            "tool_use"; streamed as a tool_use start with input {} and input_json_delta fragments
    #fake:error=CODE        an Anthropic error of that status and its documented type (429 adds retry-after: 7,
                            the 401 message contains ANTHROPIC_UPSTREAM_SECRET)
    #fake:sleep=SECS        wait before answering (timeouts)
    #fake:cut               stream message_start and two text deltas, then drop the connection
    #fake:slow              stream one text delta every 100 ms for 10 s (client-disconnect tests)
    #fake:cache_read=N      report cache_read_input_tokens = N
    #fake:cache_write=N     report cache_creation_input_tokens = N
    #fake:chunks=N          split the reply text into N text deltas (default: one per word)
    #fake:midstream_error   after one text delta, an `event: error` (overloaded_error) and the end of the stream

Streamed usage is split as Anthropic splits it: message_start carries input_tokens and the cache fields with
output_tokens 1, message_delta the final cumulative output_tokens. count_tokens honours error= and sleep=.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer, Received

ANTHROPIC_UPSTREAM_SECRET = "sk-ant-upstream-SECRET-do-not-leak-0123456789"

# Unlike the OpenAI fake's, these names may hold underscores (cache_read, midstream_error).
_DIRECTIVE = re.compile(r"#fake:([a-z_]+)(?:=(\S+))?")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

THINKING_TEXT = "Let me think about this."
THINKING_SIGNATURE = "sig-fake-123"
TOOLS_PREAMBLE = "Let me check."
DEFAULT_TOOL = "get_weather"
FORCED_INPUT: dict[str, Any] = {"answer": "yes", "n": 1}
RETRY_AFTER_SECONDS = "7"
MIN_THINKING_BUDGET = 1024

COUNT_TOKENS_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})
MESSAGE_FIELDS = COUNT_TOKENS_FIELDS | {
    "max_tokens",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "service_tier",
}
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
# Which content blocks each role may send (what the Messages API accepts from a client).
BLOCK_TYPES = {
    "user": ("text", "image", "document", "tool_result"),
    "assistant": ("text", "tool_use", "thinking", "redacted_thinking"),
}

# The documented error type of each status, and a message like the real one.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "max_tokens: 100000 > 64000, which is the maximum allowed for this model"),
    401: ("authentication_error", f"invalid x-api-key: {ANTHROPIC_UPSTREAM_SECRET}"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: claude-does-not-exist"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class Invalid(Exception):
    """A request the real API refuses with 400 invalid_request_error; the message names the problem."""


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _error(status: int) -> web.Response:
    kind, message = ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", f"fake {status}"))
    headers = {"retry-after": RETRY_AFTER_SECONDS} if status == 429 else None
    return web.json_response(error_body(kind, message), status=status, headers=headers)


def _invalid(message: str) -> web.Response:
    return web.json_response(error_body("invalid_request_error", message), status=400)


# ---- counting ---------------------------------------------------------------------------------------------------


def text_of(content: Any) -> str:
    """The text of a message's content or of `system`: the string itself, or its text blocks joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def words_in(text: str) -> int:
    return len(text.split())


def input_tokens_of(body: dict[str, Any]) -> int:
    """3 + (3 + words of its text) per message + words of the system text."""
    messages = body.get("messages") or []
    return 3 + sum(3 + words_in(text_of(m.get("content"))) for m in messages) + words_in(text_of(body.get("system")))


def output_tokens_of(content: list[dict[str, Any]]) -> int:
    """Words of the text and thinking blocks, plus the words of each tool_use input as json.dumps writes it."""
    total = 0
    for block in content:
        if block["type"] == "text":
            total += words_in(block["text"])
        elif block["type"] == "thinking":
            total += words_in(block["thinking"])
        elif block["type"] == "tool_use":
            total += words_in(json.dumps(block["input"]))
    return total


# ---- validation (raises Invalid) ---------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(body: Any, allowed: frozenset[str], *, needs_max_tokens: bool) -> None:
    if not isinstance(body, dict):
        raise Invalid("The request body is not a JSON object.")
    for key in body:
        if key not in allowed:
            raise Invalid(f"{key}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    if needs_max_tokens:
        if "max_tokens" not in body:
            raise Invalid("max_tokens: Field required")
        if not _is_int(body["max_tokens"]) or body["max_tokens"] < 1:
            raise Invalid("max_tokens: Input should be a positive integer")
    _validate_sampling(body)
    _validate_system(body.get("system"))
    tool_names = _validate_tools(body.get("tools"))
    _validate_tool_choice(body.get("tool_choice"), tool_names)
    _validate_thinking(body)
    _validate_messages(body.get("messages"))


def _validate_sampling(body: dict[str, Any]) -> None:
    if "temperature" in body and not (_is_number(body["temperature"]) and 0 <= body["temperature"] <= 1):
        raise Invalid("temperature: Input should be less than or equal to 1 and greater than or equal to 0")
    if "top_p" in body and not (_is_number(body["top_p"]) and 0 <= body["top_p"] <= 1):
        raise Invalid("top_p: Input should be less than or equal to 1 and greater than or equal to 0")
    if "top_k" in body and not (_is_int(body["top_k"]) and body["top_k"] >= 0):
        raise Invalid("top_k: Input should be a non-negative integer")
    stops = body.get("stop_sequences", [])
    if not isinstance(stops, list) or not all(isinstance(s, str) and s.strip() for s in stops):
        raise Invalid("stop_sequences: Input should be a list of non-empty strings")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise Invalid("stream: Input should be a valid boolean")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
        raise Invalid("metadata: Input should be an object with at most a user_id")
    if body.get("service_tier", "auto") not in ("auto", "standard_only"):
        raise Invalid("service_tier: Input should be 'auto' or 'standard_only'")


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise Invalid("system: Input should be a valid string or a list of text blocks")
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise Invalid(f"system.{j}: system blocks must be text blocks")
        _validate_text(block, f"system.{j}")


def _validate_tools(tools: Any) -> list[str]:
    """The names of the request's tools."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    names: list[str] = []
    for j, tool in enumerate(tools):
        where = f"tools.{j}"
        if not isinstance(tool, dict):
            raise Invalid(f"{where}: Input should be an object")
        # An OpenAI-shaped tool ({"type": "function", "function": {...}}) is refused here, as the real API does.
        if tool.get("type", "custom") != "custom":
            raise Invalid(f"{where}.type: Input tag {tool.get('type')!r} does not match any of the expected tags")
        for key in tool:
            if key not in ("type", "name", "description", "input_schema", "cache_control", "strict"):
                raise Invalid(f"{where}.{key}: Extra inputs are not permitted")
        if not isinstance(tool.get("name"), str) or not _TOOL_NAME.match(tool["name"]):
            raise Invalid(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Invalid(f"{where}.input_schema: Input should be a JSON schema of type 'object'")
        if tool["name"] in names:
            raise Invalid("tools: Tool names must be unique.")
        names.append(tool["name"])
    return names


def _validate_tool_choice(choice: Any, tool_names: list[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICE_TYPES:
        raise Invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] == "tool" and choice.get("name") not in tool_names:
        raise Invalid(f"tool_choice.name: Tool {choice.get('name')!r} not found in tools")


def _validate_thinking(body: dict[str, Any]) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        raise Invalid("thinking.type: Input should be 'enabled' or 'disabled'")
    if thinking["type"] == "disabled":
        return
    budget = thinking.get("budget_tokens")
    if not _is_int(budget) or budget < MIN_THINKING_BUDGET:
        raise Invalid(f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}")
    if "max_tokens" in body and budget >= body["max_tokens"]:
        raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    if body.get("temperature", 1) != 1:
        raise Invalid("`temperature` may only be set to 1 when thinking is enabled.")
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    previous: dict[str, Any] | None = None
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise Invalid(f"{where}: Input should be an object")
        for key in message:
            if key not in ("role", "content"):
                raise Invalid(f"{where}.{key}: Extra inputs are not permitted")
        role = message.get("role")
        if role not in BLOCK_TYPES:
            raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if previous is None and role != "user":
            raise Invalid('messages: first message must use the "user" role')
        if previous is not None and previous["role"] == role:
            raise Invalid(
                f'messages: roles must alternate between "user" and "assistant", but found multiple "{role}" roles '
                "in a row"
            )
        is_final_assistant = role == "assistant" and i == len(messages) - 1
        _validate_content(message.get("content"), where, role, may_be_empty=is_final_assistant)
        _validate_tool_pairing(previous, message, i)
        previous = message


def _validate_content(content: Any, where: str, role: str, *, may_be_empty: bool) -> None:
    if isinstance(content, str):
        if not content.strip() and not may_be_empty:
            raise Invalid(f"{where}: all messages must have non-empty content except for the optional final assistant")
        return
    if not isinstance(content, list):
        raise Invalid(f"{where}.content: Input should be a valid string or a list of content blocks")
    if not content and not may_be_empty:
        raise Invalid(f"{where}: all messages must have non-empty content except for the optional final assistant")
    for j, block in enumerate(content):
        _validate_block(block, f"{where}.content.{j}", BLOCK_TYPES[role])


def _validate_block(block: Any, where: str, allowed_types: tuple[str, ...]) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in allowed_types:
        raise Invalid(f"{where}.type: Input tag {kind!r} does not match any of the expected tags {allowed_types}")
    if kind == "text":
        _validate_text(block, where)
    elif kind == "image":
        _validate_image(block, where)
    elif kind == "document" and not isinstance(block.get("source"), dict):
        raise Invalid(f"{where}.source: Field required")
    elif kind == "tool_use":
        if not (isinstance(block.get("id"), str) and block["id"]) or not isinstance(block.get("name"), str):
            raise Invalid(f"{where}: tool_use blocks need an id and a name")
        if not isinstance(block.get("input"), dict):
            raise Invalid(f"{where}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        _validate_tool_result(block, where)
    elif kind == "thinking":
        if not isinstance(block.get("thinking"), str) or not isinstance(block.get("signature"), str):
            raise Invalid(f"{where}: thinking blocks need thinking and signature")
    elif kind == "redacted_thinking" and not isinstance(block.get("data"), str):
        raise Invalid(f"{where}.data: Field required")


def _validate_text(block: dict[str, Any], where: str) -> None:
    text = block.get("text")
    if not isinstance(text, str):
        raise Invalid(f"{where}.text: Field required")
    if not text.strip():
        raise Invalid(f"{where}.text: text content blocks must contain non-whitespace text")


def _validate_image(block: dict[str, Any], where: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
        kind = source.get("type") if isinstance(source, dict) else None
        raise Invalid(f"{where}.source: image sources must be of type 'base64' or 'url', got {kind!r}")
    if source["type"] == "url":
        if not isinstance(source.get("url"), str) or not source["url"]:
            raise Invalid(f"{where}.source.url.url: Field required")
        return
    if source.get("media_type") not in IMAGE_MEDIA_TYPES:
        raise Invalid(f"{where}.source.base64.media_type: Input should be one of {', '.join(IMAGE_MEDIA_TYPES)}")
    if not isinstance(source.get("data"), str) or not source["data"]:
        raise Invalid(f"{where}.source.base64.data: Field required")


def _validate_tool_result(block: dict[str, Any], where: str) -> None:
    if not isinstance(block.get("tool_use_id"), str):
        raise Invalid(f"{where}.tool_use_id: Field required")
    if "is_error" in block and not isinstance(block["is_error"], bool):
        raise Invalid(f"{where}.is_error: Input should be a valid boolean")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise Invalid(f"{where}.content: Input should be a valid string or a list of content blocks")
    for k, inner in enumerate(content):
        _validate_block(inner, f"{where}.content.{k}", ("text", "image"))


def _blocks_of(message: dict[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    content = (message or {}).get("content")
    return [b for b in content if b.get("type") == kind] if isinstance(content, list) else []


def _validate_tool_pairing(previous: dict[str, Any] | None, message: dict[str, Any], i: int) -> None:
    """A user message answers every tool_use of the assistant message just before it, and nothing else."""
    if message["role"] != "user":
        return
    asked = [b["id"] for b in _blocks_of(previous, "tool_use")]
    answered = [b["tool_use_id"] for b in _blocks_of(message, "tool_result")]
    for tool_use_id in answered:
        if tool_use_id not in asked:
            raise Invalid(
                f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {tool_use_id}. Each "
                "`tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
    missing = [tool_use_id for tool_use_id in asked if tool_use_id not in answered]
    if missing:
        raise Invalid(
            f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the next "
            "message."
        )


# ---- the reply ---------------------------------------------------------------------------------------------------


def _last_user(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return next((m for m in reversed(messages) if m.get("role") == "user"), {})


def directives_of(messages: list[dict[str, Any]]) -> dict[str, str]:
    text = text_of(_last_user(messages).get("content"))
    return {name: value or "" for name, value in _DIRECTIVE.findall(text)}


def reply_text(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """The reply text, its stop_reason, and the stop sequence that ended it (if one did)."""
    last_user = _last_user(body["messages"])
    content = last_user.get("content")
    images = sum(1 for b in content if b.get("type") == "image") if isinstance(content, list) else 0
    echo = _DIRECTIVE.sub("", text_of(content)).split()
    words = ["You", "said:", *echo] + ([f"({images}", "images)"] if images else [])
    # The model writes word by word, so whichever comes first ends the reply: a stop sequence or max_tokens.
    stops = body.get("stop_sequences") or []
    for position, word in enumerate(words[: body["max_tokens"]]):
        if word in stops:
            return " ".join(words[:position]), "stop_sequence", word
    if len(words) > body["max_tokens"]:
        return " ".join(words[: body["max_tokens"]]), "max_tokens", None
    return " ".join(words), "end_turn", None


def tool_use_block(index: int, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_fake_{index}", "name": name, "input": tool_input}


def build_content(body: dict[str, Any], directives: dict[str, str]) -> tuple[list[dict[str, Any]], str, str | None]:
    """The reply's content blocks, stop_reason and stop_sequence."""
    content: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") == "enabled":
        content.append({"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE})
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        # A forced tool makes Claude answer with that tool call alone: no preamble text.
        content.append(tool_use_block(0, choice["name"], dict(FORCED_INPUT)))
        return content, "tool_use", None
    if "tools" in directives:
        count = max(1, int(directives["tools"] or 1))
        name = body["tools"][0]["name"] if body.get("tools") else DEFAULT_TOOL
        content.append({"type": "text", "text": TOOLS_PREAMBLE})
        content.extend(tool_use_block(i, name, {"city": "Paris", "n": i}) for i in range(count))
        return content, "tool_use", None
    text, stop_reason, stop_sequence = reply_text(body)
    content.append({"type": "text", "text": text})
    return content, stop_reason, stop_sequence


def _split(text: str, parts: int) -> list[str]:
    """`text` as `parts` consecutive deltas of whole words (the first without, the others with a leading space)."""
    words = text.split(" ") if text else []
    per = max(1, -(-len(words) // max(parts, 1)))
    return [("" if start == 0 else " ") + " ".join(words[start : start + per]) for start in range(0, len(words), per)]


def _json_fragments(text: str, pieces: int = 3) -> list[str]:
    step = max(1, -(-len(text) // pieces))
    return [text[start : start + step] for start in range(0, len(text), step)]


def block_events(index: int, block: dict[str, Any], chunks: int | None) -> list[dict[str, Any]]:
    """The content_block_start / _delta... / _stop events that stream one content block."""
    deltas: list[dict[str, Any]]
    if block["type"] == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        pieces = _split(block["text"], chunks or words_in(block["text"]))
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
    elif block["type"] == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        pieces = _split(block["thinking"], words_in(block["thinking"]))
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in pieces]
        # The signature arrives last, just before the block stops.
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        # A tool_use opens with an empty input; its JSON then arrives in fragments.
        start = {**block, "input": {}}
        pieces = _json_fragments(json.dumps(block["input"]))
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _authenticate(request: web.Request) -> web.Response | None:
    """The 401 for a request without the key. The key goes in `x-api-key`, as the API reference documents; the
    anthropic SDK (2.x) sends it as `Authorization: Bearer <key>` instead, so that is accepted too. When both are
    sent, `x-api-key` decides."""
    api_key = request.headers.get("x-api-key")
    if api_key is None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        api_key = token if scheme.lower() == "bearer" and token else None
    if api_key is None:
        return web.json_response(error_body("authentication_error", "x-api-key header is required"), status=401)
    if api_key != ANTHROPIC_UPSTREAM_SECRET:
        return web.json_response(error_body("authentication_error", "invalid x-api-key"), status=401)
    return None


def _is_text_delta(event: dict[str, Any]) -> bool:
    return event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta"


class FakeAnthropic(FakeServer):
    """The Anthropic Messages API; its base URL has no /v1, as the anthropic SDK takes it."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    def error_response(self, status: int) -> web.Response:
        return _error(status)

    async def _admit(
        self, request: web.Request, allowed: frozenset[str], *, needs_max_tokens: bool
    ) -> tuple[dict[str, Any], web.Response | None]:
        """Record the request, then check auth, version header and body; the response is set when refused."""
        raw = await request.read()
        self.state.requests.append(Received(request.path, dict(request.headers), raw))
        if (refused := _authenticate(request)) is not None:
            return {}, refused
        if not request.headers.get("anthropic-version"):
            return {}, _invalid("anthropic-version: header is required")
        try:
            body = orjson.loads(raw)
            validate(body, allowed, needs_max_tokens=needs_max_tokens)
        except orjson.JSONDecodeError:
            return {}, _invalid("The request body is not valid JSON.")
        except Invalid as problem:
            return {}, _invalid(str(problem))
        directives = directives_of(body["messages"])
        if "sleep" in directives:
            await asyncio.sleep(float(directives["sleep"]))
        if "error" in directives:
            return body, _error(int(directives["error"]))
        return body, None

    async def count_tokens(self, request: web.Request) -> web.Response:
        body, refused = await self._admit(request, COUNT_TOKENS_FIELDS, needs_max_tokens=False)
        if refused is not None:
            return refused
        return web.json_response({"input_tokens": input_tokens_of(body)})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._admit(request, MESSAGE_FIELDS, needs_max_tokens=True)
        if refused is not None:
            return refused
        directives = directives_of(body["messages"])
        content, stop_reason, stop_sequence = build_content(body, directives)
        message = {
            "id": f"msg_fake_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": input_tokens_of(body),
                "cache_creation_input_tokens": int(directives.get("cache_write") or 0),
                "cache_read_input_tokens": int(directives.get("cache_read") or 0),
                "output_tokens": output_tokens_of(content),
            },
        }
        if body.get("stream"):
            return await self._stream(request, message, directives)
        return web.json_response(message)

    @staticmethod
    def _events(message: dict[str, Any], directives: dict[str, str]) -> list[dict[str, Any]]:
        """Every event of a streamed message, in order (message_start ... message_stop)."""
        usage = message["usage"]
        # message_start announces an empty message: no content, no stop_reason yet, output_tokens 1.
        opening = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage}}
        opening["usage"]["output_tokens"] = 1
        chunks = int(directives["chunks"]) if directives.get("chunks") else None
        events: list[dict[str, Any]] = [{"type": "message_start", "message": opening}, {"type": "ping"}]
        for index, block in enumerate(message["content"]):
            events.extend(block_events(index, block, chunks))
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                "usage": {"output_tokens": usage["output_tokens"]},
            }
        )
        events.append({"type": "message_stop"})
        return events

    async def _stream(
        self, request: web.Request, message: dict[str, Any], directives: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        text_deltas = 0
        try:
            for event in self._events(message, directives):
                await response.write(sse(event))
                opens_text = event["type"] == "content_block_start" and event["content_block"]["type"] == "text"
                if opens_text and "slow" in directives:
                    await self._tick(response, event["index"])
                text_deltas += _is_text_delta(event)
                if "cut" in directives and text_deltas == 2:
                    # Drop the connection mid-message: no message_stop, no end of the chunked body.
                    request.transport.close()  # type: ignore[union-attr]
                    return response
                if "midstream_error" in directives and text_deltas == 1:
                    await response.write(sse(error_body("overloaded_error", "Overloaded")))
                    await response.write_eof()
                    return response
            await response.write_eof()
            self.state.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.state.cancelled_streams += 1
            raise
        return response

    @staticmethod
    async def _tick(response: web.StreamResponse, index: int) -> None:
        """#fake:slow: one text delta every 100 ms for 10 s, so a test can walk away mid-stream."""
        for _ in range(100):
            tick = {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": " tick"}}
            await response.write(sse(tick))
            await asyncio.sleep(0.1)
