"""The Gemini generateContent codec: native requests, replies, streams and errors ⇄ the internal shape.

The internal shape is OpenAI chat completions (see `llmrelay.formats`). Both directions are needed:

- a Gemini client (the google-genai SDK, curl) reaching a non-Gemini channel: `gemini_to_chat` translates
  its request, and the reply goes back through `chat_to_gemini_reply` or, streamed, `ChatToGeminiStream`;
- any client reaching a Gemini channel: `chat_to_gemini` builds the upstream request (after the provider has
  fetched the http(s) images `image_urls_to_fetch` names: Gemini does not fetch arbitrary URLs), and the
  reply comes back through `gemini_reply_to_chat` or, streamed, `GeminiToChatStream`.

When client and channel both speak Gemini, nothing is translated: the body goes upstream as sent and
`GeminiPassthroughTap` / `gemini_reply_usage` read usage beside the relayed bytes.

The mapping, in short (OpenAI ⇄ Gemini):

- system and developer messages ⇄ `systemInstruction`; user ⇄ role `user`, assistant ⇄ role `model`
  (Gemini merges nothing itself: consecutive same-role turns are merged here);
- assistant `tool_calls` ⇄ `functionCall` parts (arguments are a JSON string in OpenAI, an object in
  Gemini); `tool` messages ⇄ `functionResponse` parts in a user turn. Gemini pairs a response with its call
  by name (and, lately, an optional `id`), OpenAI by call id: ids are made up for calls that have none and
  remembered, so each response finds its call;
- image parts: data URIs ⇄ `inlineData`, URLs ⇄ `fileData` (inbound) or `inlineData` once fetched
  (outbound);
- tool and response schemas: OpenAI sends JSON Schema, which Gemini's `Schema` (an OpenAPI 3.0 subset)
  rejects in many places: `clean_schema` rewrites it. Inbound, Gemini's own `Schema` (upper-case types,
  `nullable`) becomes JSON Schema;
- finish reasons: Gemini says `STOP` even when it called a function, so a call seen anywhere in the
  candidate (or stream) makes the finish reason `tool_calls`; safety stops become `content_filter` with the
  reason in the text when the model said nothing;
- usage: `promptTokenCount` already includes cached tokens (as OpenAI's `prompt_tokens` does); thinking
  tokens (`thoughtsTokenCount`) are output tokens.

Gemini's JSON field names are camelCase; its REST API also accepts the protobuf snake_case names, which
Google's own curl examples use (`system_instruction`, `inline_data`), so request readers accept both.
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from llmrelay.formats.base import error_status
from llmrelay.formats.checks import (
    as_dict,
    as_int,
    as_list,
    as_number,
    as_str,
    dumps_checked,
    fail,
    is_int,
    kind_of,
    short,
    sse_json,
    token_count,
)
from llmrelay.formats.openai import (
    PLACEHOLDER_USER_TEXT,
    arguments_object,
    assistant_messages,
    chat_messages,
    choice_chunk,
    content_text,
    function_tools,
    http_image_urls,
    message_tool_calls,
    read_function_call,
    read_image_url,
    read_response_format,
    read_stop,
    read_tool_choice,
    usage_to_openai,
)
from llmrelay.metering.pricing import Usage
from llmrelay.relay.errors import RelayError

try:
    from llmrelay.relay._eventscan import GeminiTextDeltas
except ImportError:  # built without a C compiler: every event takes the Python path (setup.py)
    GeminiTextDeltas = None

# Gemini finishReason → OpenAI finish_reason; STOP with a function call becomes tool_calls, and anything
# not listed (OTHER, MALFORMED_FUNCTION_CALL, LANGUAGE, ...) ends the reply as stop.
_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
# OpenAI finish_reason → Gemini finishReason (None and anything unknown → STOP).
_GEMINI_FINISH_REASONS = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}
_BLOCKED_REPLY = "The response was blocked by Gemini's safety filters ({})."
_BLOCKED_PROMPT = "The prompt was blocked by Gemini's safety filters ({})."
# HTTP status → google.rpc status name. 413 has no code of its own; 499 (the client went away) and other
# non-HTTP statuses are rendered as 400, other 4xx as INVALID_ARGUMENT, other 5xx as INTERNAL.
_ERROR_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# functionCallingConfig.mode → OpenAI tool_choice, and back (a named function is handled apart).
# VALIDATED (calls checked against their schemas, text allowed) is the nearest to auto.
_TOOL_MODES = {"AUTO": "auto", "VALIDATED": "auto", "MODE_UNSPECIFIED": "auto", "ANY": "required", "NONE": "none"}
_GEMINI_TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
# reasoning_effort → thinkingConfig.thinkingBudget; none/minimal send no thinkingConfig (Gemini 2.5 Pro
# refuses a zero budget, so "no thinking" cannot be asked of every model).
_THINKING_BUDGETS = {"low": 1024, "medium": 8192, "high": 24576}
_NO_THINKING = frozenset({"none", "minimal"})
# generationConfig ⇄ chat fields that map one to one: (Gemini name, chat name, kind of value).
_GENERATION_FIELDS = (
    ("temperature", "temperature", "number"),
    ("topP", "top_p", "number"),
    ("maxOutputTokens", "max_tokens", "positive"),
    ("candidateCount", "n", "positive"),
    ("seed", "seed", "integer"),
    ("presencePenalty", "presence_penalty", "number"),
    ("frequencyPenalty", "frequency_penalty", "number"),
)
_JSON_MIME = "application/json"
# Tool kinds that run inside Gemini's API (googleSearch, codeExecution, urlContext, ...) have no function
# declaration another provider could call; the only key a translatable tool has:
_FUNCTION_TOOL_KEYS = frozenset({"functionDeclarations", "function_declarations"})
_AUDIO_MIME_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_TARGET = "a Gemini model"  # where tools and tool choices of other kinds cannot be sent

# Keys Gemini's Schema accepts in function parameters and response schemas; every other JSON Schema
# keyword ($schema, additionalProperties, $ref, const, examples, default, oneOf, allOf, ...) is refused.
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "items",
        "properties",
        "required",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "pattern",
        "anyOf",
        "propertyOrdering",
        "minProperties",
        "maxProperties",
        "example",
    }
)
# Keys rewritten or checked by the cleaner itself rather than copied.
_SCHEMA_STRUCTURE_KEYS = frozenset({"type", "format", "nullable", "enum", "items", "properties", "required", "anyOf"})
# `format` values Gemini accepts, per type; others are dropped.
_SCHEMA_FORMATS = {
    "string": frozenset({"enum", "date-time"}),
    "number": frozenset({"float", "double"}),
    "integer": frozenset({"int32", "int64"}),
}
_MAX_REF_DEPTH = 8  # local $refs are inlined this deep; a recursive schema ends in a free-form object
_MAX_SCHEMA_DEPTH = 64  # nesting of a schema (and of a Gemini Schema read inbound), well under Python's limit
_MAX_SCHEMA_NODES = 10_000  # inlining references must not let a small hostile schema grow without bound
# Gemini Schema's int64 bounds come as JSON strings from protobuf-style clients.
_INT64_SCHEMA_KEYS = frozenset({"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"})


# ------------------------------------------------------------------------------------------------ validation


@functools.cache
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@functools.lru_cache(maxsize=1024)  # called on client schema keys: bounded
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _field(obj: dict[str, Any], name: str) -> Any:
    """A request field by its camelCase name, or by the snake_case name Gemini's REST API also accepts."""
    value = obj.get(name)
    return obj.get(_snake(name)) if value is None else value


def _checked(value: Any, kind: str, param: str) -> Any:
    """A generation parameter of `kind` ("number", "integer", "positive"), or a 400 naming it."""
    if kind == "number":
        return as_number(value, param)
    return as_int(value, param, positive=kind == "positive")


# ---------------------------------------------------------------------------------- requests: Gemini → chat


class _CallLedger:
    """The function calls a conversation made, in order, so that each functionResponse finds its call: by
    `id` when it has one, else the earliest call of that name still waiting for a response."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: list[list[Any]] = []  # [id, name, answered]

    def add(self, call_id: str, name: str) -> None:
        self._calls.append([call_id, name, False])

    def answer(self, call_id: Any, name: str, param: str) -> str:
        if isinstance(call_id, str) and call_id:
            match = next((call for call in self._calls if call[0] == call_id), None)
        else:
            match = None
        if match is None:
            match = next((call for call in self._calls if call[1] == name and not call[2]), None)
        if match is None:
            fail(f"no earlier functionCall named {short(name)} is waiting for this response", param)
        match[2] = True
        return match[0]


def gemini_to_chat(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """A native generateContent request (model and streaming come from the URL) as the internal chat body;
    any malformed field is a 400 naming it."""
    if not isinstance(body, dict):
        fail("the request body must be a JSON object", None)
    messages: list[dict[str, Any]] = []
    system = _native_system(_field(body, "systemInstruction"))
    if system:
        messages.append({"role": "system", "content": system})
    ledger = _CallLedger()
    for turn, content in enumerate(as_list(_field(body, "contents"), "contents", non_empty=True)):
        messages.extend(_native_content(content, turn, ledger))
    chat: dict[str, Any] = {"model": model, "messages": messages}
    tools = _native_tools(_field(body, "tools"))
    tool_choice = _native_tool_config(_field(body, "toolConfig"), tools)
    if tools:
        chat["tools"] = tools
        if tool_choice is not None:
            chat["tool_choice"] = tool_choice
    config = _field(body, "generationConfig")
    if config is not None:
        chat.update(_native_generation_config(as_dict(config, "generationConfig")))
    # safetySettings and cachedContent mean nothing to another provider: dropped.
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _native_system(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    system = as_dict(system, "systemInstruction")
    texts = []
    for i, part in enumerate(as_list(_field(system, "parts"), "systemInstruction.parts")):
        part = as_dict(part, f"systemInstruction.parts.{i}")
        texts.append(as_str(_field(part, "text"), f"systemInstruction.parts.{i}.text"))
    return "\n".join(text for text in texts if text)


def _part_kind(part: dict[str, Any], param: str) -> str:
    """What a part holds: "thought", or the name of its data field (a 400 when it holds none we know)."""
    if part.get("thought") is True:
        return "thought"  # the model's own thinking, sent back: meaningless to another provider
    for kind in ("text", "inlineData", "fileData", "functionCall", "functionResponse"):
        if _field(part, kind) is not None:
            return kind
    for kind in ("executableCode", "codeExecutionResult"):
        if _field(part, kind) is not None:
            fail(f"{kind} parts come from Gemini's code execution and cannot be sent to this model", param)
    fail("a part needs one of text, inlineData, fileData, functionCall or functionResponse", param)


def _native_content(content: Any, turn: int, ledger: _CallLedger) -> list[dict[str, Any]]:
    param = f"contents.{turn}"
    content = as_dict(content, param)
    role = _field(content, "role")
    if role is None or role == "":
        role = "user"  # Gemini's default
    if role not in ("user", "model", "function"):  # "function": the role of function responses in older docs
        fail("must be 'user' or 'model'", f"{param}.role")
    parts = as_list(_field(content, "parts"), f"{param}.parts", non_empty=True)
    if role == "model":
        return _native_model_turn(parts, param, turn, ledger)
    return _native_user_turn(parts, param, ledger)


def _turn_parts(parts: list[Any], param: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """A native turn's parts, each checked as it is reached: (path, part, what it holds)."""
    for j, part in enumerate(parts):
        where = f"{param}.parts.{j}"
        part = as_dict(part, where)
        yield where, part, _part_kind(part, where)


def _native_user_turn(parts: list[Any], param: str, ledger: _CallLedger) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    chat_parts: list[dict[str, Any]] = []
    for where, part, kind in _turn_parts(parts, param):
        if kind == "text":
            chat_parts.append({"type": "text", "text": as_str(_field(part, "text"), f"{where}.text")})
        elif kind in ("inlineData", "fileData"):
            url = _native_media_url(_field(part, kind), f"{where}.{kind}", inline=kind == "inlineData")
            chat_parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "functionResponse":
            tool_messages.append(_native_function_response(_field(part, kind), f"{where}.{kind}", ledger))
        elif kind == "functionCall":
            fail("functionCall parts belong in turns of role 'model'", where)
    # OpenAI wants tool messages right after the assistant message that made the calls, so they go first.
    if not chat_parts:
        return tool_messages
    if len(chat_parts) == 1 and chat_parts[0]["type"] == "text":
        return [*tool_messages, {"role": "user", "content": chat_parts[0]["text"]}]
    return [*tool_messages, {"role": "user", "content": chat_parts}]


_URL_SAFE_TO_STANDARD = str.maketrans("-_", "+/")


def _native_media_url(media: Any, param: str, *, inline: bool) -> str:
    media = as_dict(media, param)
    mime_type = _field(media, "mimeType")
    if inline or mime_type is not None:
        mime_type = as_str(mime_type, f"{param}.mimeType", non_empty=True)
        if not mime_type.startswith("image/"):
            fail(f"only images can be sent to this model, not {short(mime_type)}", f"{param}.mimeType")
    if inline:
        data = as_str(_field(media, "data"), f"{param}.data", non_empty=True)
        # Google takes URL-safe base64 too (google-genai sends it); data URIs and other providers want standard.
        return f"data:{mime_type};base64,{data.translate(_URL_SAFE_TO_STANDARD)}"
    return as_str(_field(media, "fileUri"), f"{param}.fileUri", non_empty=True)


def _native_function_response(response: Any, param: str, ledger: _CallLedger) -> dict[str, Any]:
    response = as_dict(response, param)
    name = as_str(_field(response, "name"), f"{param}.name", non_empty=True)
    payload = _field(response, "response")
    payload = {} if payload is None else as_dict(payload, f"{param}.response")
    call_id = ledger.answer(_field(response, "id"), name, param)
    return {"role": "tool", "tool_call_id": call_id, "content": dumps_checked(payload, f"{param}.response")}


def _native_model_turn(parts: list[Any], param: str, turn: int, ledger: _CallLedger) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for where, part, kind in _turn_parts(parts, param):
        if kind == "text":
            texts.append(as_str(_field(part, "text"), f"{where}.text"))
        elif kind == "functionCall":
            call = as_dict(_field(part, kind), f"{where}.functionCall")
            name = as_str(_field(call, "name"), f"{where}.functionCall.name", non_empty=True)
            args = _field(call, "args")
            args = {} if args is None else as_dict(args, f"{where}.functionCall.args")
            call_id = _field(call, "id")
            if not (isinstance(call_id, str) and call_id):
                call_id = f"call_{turn}_{len(calls)}"
            ledger.add(call_id, name)
            function = {"name": name, "arguments": dumps_checked(args, f"{where}.functionCall.args")}
            calls.append({"id": call_id, "type": "function", "function": function})
        elif kind != "thought":
            fail(f"{kind} parts cannot be sent in turns of role 'model' to this model", where)
    return assistant_messages(texts, calls)


def _native_tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    out = []
    for i, tool in enumerate(as_list(tools, "tools")):
        param = f"tools.{i}"
        tool = as_dict(tool, param)
        others = sorted(key for key, value in tool.items() if key not in _FUNCTION_TOOL_KEYS and value is not None)
        if others:
            fail(f"{', '.join(short(key) for key in others)} tools run inside Gemini's API only", param)
        declarations = _field(tool, "functionDeclarations")
        declarations = [] if declarations is None else as_list(declarations, f"{param}.functionDeclarations")
        for j, declaration in enumerate(declarations):
            out.append(_native_declaration(declaration, f"{param}.functionDeclarations.{j}"))
    return out


def _native_declaration(declaration: Any, param: str) -> dict[str, Any]:
    declaration = as_dict(declaration, param)
    function: dict[str, Any] = {"name": as_str(_field(declaration, "name"), f"{param}.name", non_empty=True)}
    description = _field(declaration, "description")
    if description is not None:
        function["description"] = as_str(description, f"{param}.description")
    json_schema = _field(declaration, "parametersJsonSchema")
    if json_schema is not None:
        function["parameters"] = _encodable(as_dict(json_schema, f"{param}.parametersJsonSchema"), param)
    elif _field(declaration, "parameters") is not None:
        schema = _json_schema(_field(declaration, "parameters"), f"{param}.parameters", 0)
        function["parameters"] = _encodable(schema, f"{param}.parameters")
    else:
        function["parameters"] = {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _encodable(schema: dict[str, Any], param: str) -> dict[str, Any]:
    """A schema passed on, once checked to encode (orjson refuses nesting past 255 levels, which JSON a
    client sent may have): the body must not fail later, when it is encoded for the upstream."""
    dumps_checked(schema, param)
    return schema


def _json_schema(schema: Any, param: str, depth: int) -> dict[str, Any]:
    """A Gemini `Schema` (OpenAPI 3.0 subset, upper-case types, `nullable`) as JSON Schema."""
    schema = as_dict(schema, param)
    if depth > _MAX_SCHEMA_DEPTH:
        fail("is nested too deeply", param)
    out: dict[str, Any] = {}
    nullable = False
    for key, value in schema.items():
        key = _camel(key)
        if key == "type":
            if isinstance(value, str) and value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
            elif not isinstance(value, str):
                out["type"] = value
        elif key == "nullable":
            nullable = value is True
        elif key == "properties":
            properties = as_dict(value, f"{param}.properties")
            out[key] = {
                name: _json_schema(sub, f"{param}.properties.{name}", depth + 1) for name, sub in properties.items()
            }
        elif key == "items":
            out[key] = _json_schema(value, f"{param}.items", depth + 1)
        elif key == "anyOf":
            members = as_list(value, f"{param}.anyOf")
            out[key] = [_json_schema(sub, f"{param}.anyOf.{k}", depth + 1) for k, sub in enumerate(members)]
        elif key == "example":
            out["examples"] = [value]
        elif key in _INT64_SCHEMA_KEYS and isinstance(value, str) and value.isdigit():
            out[key] = int(value)
        elif key != "propertyOrdering":  # Gemini's own hint for output order: no JSON Schema meaning
            out[key] = value
    if nullable:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif isinstance(out.get("anyOf"), list):
            out["anyOf"].append({"type": "null"})
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _native_tool_config(config: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any] | None:
    """The tool_choice of a toolConfig; with mode ANY and several allowed names, `tools` is narrowed to
    them (OpenAI cannot force a choice among a subset any other way)."""
    if config is None:
        return None
    calling = _field(as_dict(config, "toolConfig"), "functionCallingConfig")
    if calling is None:
        return None
    param = "toolConfig.functionCallingConfig"
    calling = as_dict(calling, param)
    mode = _field(calling, "mode")
    mode = "AUTO" if mode is None else as_str(mode, f"{param}.mode").upper()
    if mode not in _TOOL_MODES:
        fail(f"must be one of {', '.join(_TOOL_MODES)}", f"{param}.mode")
    choice: str | dict[str, Any] = _TOOL_MODES[mode]
    allowed = _field(calling, "allowedFunctionNames")
    if allowed is None or mode != "ANY":
        return choice
    allowed = as_list(allowed, f"{param}.allowedFunctionNames")
    names = [as_str(name, f"{param}.allowedFunctionNames.{k}") for k, name in enumerate(allowed)]
    declared = {tool["function"]["name"] for tool in tools}
    for name in names:
        if name not in declared:
            fail(f"{short(name)} is not a declared function", f"{param}.allowedFunctionNames")
    if len(set(names)) == 1:
        return {"type": "function", "function": {"name": names[0]}}
    if names:
        tools[:] = [tool for tool in tools if tool["function"]["name"] in names]
    return choice


def _native_generation_config(config: dict[str, Any]) -> dict[str, Any]:
    chat: dict[str, Any] = {}
    for gemini_name, chat_name, kind in _GENERATION_FIELDS:
        value = _field(config, gemini_name)
        if value is not None:
            chat[chat_name] = _checked(value, kind, f"generationConfig.{gemini_name}")
    stops = _field(config, "stopSequences")
    if stops is not None:
        param = "generationConfig.stopSequences"
        chat["stop"] = [as_str(stop, f"{param}.{k}") for k, stop in enumerate(as_list(stops, param))]
    top_k = _field(config, "topK")
    if top_k is not None:
        _checked(top_k, "number", "generationConfig.topK")  # OpenAI has no top_k: checked, then dropped
    mime_type = _field(config, "responseMimeType")
    if mime_type is not None:
        mime_type = as_str(mime_type, "generationConfig.responseMimeType")
        if mime_type not in ("", "text/plain", _JSON_MIME):
            fail(f"{short(mime_type)} replies cannot be produced by this model", "generationConfig.responseMimeType")
    json_schema = _field(config, "responseJsonSchema")
    schema = _field(config, "responseSchema")
    if json_schema is not None:
        param = "generationConfig.responseJsonSchema"
        schema = _encodable(as_dict(json_schema, param), param)
    elif schema is not None:
        param = "generationConfig.responseSchema"
        schema = _encodable(_json_schema(schema, param, 0), param)
    if schema is not None:
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    elif mime_type == _JSON_MIME:
        chat["response_format"] = {"type": "json_object"}
    # thinkingConfig, responseModalities, speechConfig, mediaResolution, logprobs: no portable equivalent.
    return chat


# ---------------------------------------------------------------------------------- requests: chat → Gemini


def image_urls_to_fetch(body: dict[str, Any]) -> list[str]:
    """The http(s) image URLs of an internal chat body, each once, in order: Gemini takes images only inline
    (or from its own file store), so the provider fetches these and passes them to `chat_to_gemini`.
    Malformed bodies yield what can be found; `chat_to_gemini` reports what is wrong with them."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return []
    return list(dict.fromkeys(http_image_urls(body)))


def chat_to_gemini(body: dict[str, Any], inline_images: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """The internal chat body as a generateContent request (the model goes in the URL, not the body).

    `inline_images` maps each http(s) image URL of the body (`image_urls_to_fetch`) to its fetched (mime
    type, base64 data). Fields Gemini lacks (user, logit_bias, logprobs, stream_options, store, metadata,
    parallel_tool_calls, service_tier, ...) are dropped: the request is built from the fields it knows.
    """
    if not isinstance(body, dict):
        fail("the request body must be a JSON object", None)
    system, contents = _chat_contents(as_list(body.get("messages"), "messages", non_empty=True), inline_images)
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    declarations = _chat_tools(body.get("tools"))
    calling = _chat_tool_choice(body.get("tool_choice"))
    if declarations:
        request["tools"] = [{"functionDeclarations": declarations}]
        if calling is not None:
            request["toolConfig"] = {"functionCallingConfig": calling}
    generation = _chat_generation_config(body)
    if generation:
        request["generationConfig"] = generation
    return request


def _chat_contents(
    messages: list[Any], inline_images: Mapping[str, tuple[str, str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Internal messages as (systemInstruction parts, Gemini turns with consecutive same roles merged)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool-call id → function name, as the conversation goes
    legacy_name: str | None = None  # the name of the last legacy `function_call`
    for _, param, message, role in chat_messages(messages):
        if role in ("system", "developer"):
            system.extend(_chat_parts(message.get("content"), f"{param}.content", inline_images, text_only=True))
            continue
        if role == "user":
            gemini_role = "user"
            parts = _chat_parts(message.get("content"), f"{param}.content", inline_images)
        elif role == "assistant":
            gemini_role = "model"
            parts = _chat_parts(message.get("content"), f"{param}.content", inline_images, text_only=True)
            for k, call in enumerate(as_list(message.get("tool_calls") or [], f"{param}.tool_calls")):
                where = f"{param}.tool_calls.{k}"
                call = as_dict(call, where)
                part = _function_call(call.get("function"), f"{where}.function")
                call_names[as_str(call.get("id"), f"{where}.id", non_empty=True)] = part["functionCall"]["name"]
                parts.append(part)
            if message.get("function_call") is not None:  # legacy functions: the call has no id
                part = _function_call(message["function_call"], f"{param}.function_call")
                legacy_name = part["functionCall"]["name"]
                parts.append(part)
        elif role == "tool":
            gemini_role = "user"
            call_id = as_str(message.get("tool_call_id"), f"{param}.tool_call_id", non_empty=True)
            if call_id not in call_names:
                fail(f"no earlier assistant tool call has the id {short(call_id)}", f"{param}.tool_call_id")
            parts = [_function_response(call_names[call_id], message.get("content"), f"{param}.content")]
        else:  # a legacy function result
            gemini_role = "user"
            name = message.get("name")
            name = as_str(name, f"{param}.name", non_empty=True) if name is not None else legacy_name
            if name is None:
                fail("a function message must name its function or follow a function_call", param)
            parts = [_function_response(name, message.get("content"), f"{param}.content")]
        if not parts:
            continue  # a message left with no parts (empty text): Gemini refuses empty parts
        if turns and turns[-1]["role"] == gemini_role:
            turns[-1]["parts"].extend(parts)  # consecutive tool results, or a tool result and the user's text
        else:
            turns.append({"role": gemini_role, "parts": parts})
    if not turns:
        # Gemini refuses a request without contents, which OpenAI allows (a system prompt alone).
        turns.append({"role": "user", "parts": [{"text": PLACEHOLDER_USER_TEXT}]})
    return system, turns


def _chat_parts(
    content: Any, param: str, inline_images: Mapping[str, tuple[str, str]], *, text_only: bool = False
) -> list[dict[str, Any]]:
    """Message content (a string, a list of parts or null) as Gemini parts, empty texts left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    parts = []
    for j, part in enumerate(as_list(content, param)):
        where = f"{param}.{j}"
        part = as_dict(part, where)
        kind = kind_of(part.get("type"))
        if kind in ("text", "refusal"):  # an assistant's refusal part is text it said
            text = as_str(part.get(kind), f"{where}.{kind}")
            if text.strip():
                parts.append({"text": text})
        elif kind == "image_url" and not text_only:
            parts.append(_image_part(part.get("image_url"), f"{where}.image_url", inline_images))
        elif kind == "input_audio" and not text_only:
            parts.append(_audio_part(part.get("input_audio"), f"{where}.input_audio"))
        elif kind == "file" and not text_only:
            parts.append(_file_part(part.get("file"), f"{where}.file"))
        else:
            fail(f"content parts of type {short(part.get('type'))} cannot be sent to a Gemini model here", where)
    return parts


def _image_part(image_url: Any, param: str, inline_images: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    mime_type, data = read_image_url(image_url, param)
    if mime_type is None:  # an http(s) URL, which the provider fetched
        fetched = inline_images.get(data)
        if fetched is None:
            fail(f"the image {short(data)} could not be fetched for the Gemini model", f"{param}.url")
        mime_type, data = fetched
    return {"inlineData": {"mimeType": mime_type, "data": data}}


def _audio_part(audio: Any, param: str) -> dict[str, Any]:
    audio = as_dict(audio, param)
    audio_format = as_str(audio.get("format"), f"{param}.format")
    if audio_format not in _AUDIO_MIME_TYPES:
        fail(f"must be one of {', '.join(_AUDIO_MIME_TYPES)}", f"{param}.format")
    data = as_str(audio.get("data"), f"{param}.data", non_empty=True)
    return {"inlineData": {"mimeType": _AUDIO_MIME_TYPES[audio_format], "data": data}}


def _file_part(file: Any, param: str) -> dict[str, Any]:
    """An OpenAI `file` part (a PDF, say) sent inline; uploaded file ids belong to OpenAI's file store."""
    file_data = as_dict(file, param).get("file_data")
    if file_data is None:
        fail("only files sent inline as file_data can be sent to a Gemini model", param)
    header, comma, data = as_str(file_data, f"{param}.file_data").partition(",")
    if not (comma and header.startswith("data:") and header.endswith(";base64") and data):
        fail("must be a data URI: data:<media type>;base64,<data>", f"{param}.file_data")
    mime_type = header[len("data:") : -len(";base64")]
    if not mime_type:
        fail("must name its media type", f"{param}.file_data")
    return {"inlineData": {"mimeType": mime_type, "data": data}}


def _function_call(function: Any, param: str) -> dict[str, Any]:
    name, args = read_function_call(function, param)
    return {"functionCall": {"name": name, "args": args}}


def _function_response(name: str, content: Any, param: str) -> dict[str, Any]:
    """A tool result as a functionResponse: Gemini wants an object, so text that is not one is wrapped."""
    if content is None or isinstance(content, str):
        text = content or ""
    else:
        texts = []
        for k, part in enumerate(as_list(content, param)):
            part = as_dict(part, f"{param}.{k}")
            if part.get("type") != "text":
                fail("tool results may hold text parts only", f"{param}.{k}.type")
            texts.append(as_str(part.get("text"), f"{param}.{k}.text"))
        text = "".join(texts)
    response: Any = None
    if text.lstrip().startswith("{"):
        try:
            response = orjson.loads(text)
        except orjson.JSONDecodeError:
            response = None
    if not isinstance(response, dict):
        response = {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _chat_tools(tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for tool in function_tools(tools, _TARGET):
        declaration: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            declaration["description"] = tool.description
        if tool.parameters is not None:
            parameters = clean_schema(tool.parameters, f"{tool.param}.function.parameters")
            # Gemini refuses an OBJECT without properties ("should be non-empty for OBJECT type"): a function
            # without parameters has no `parameters` at all.
            if parameters.get("properties"):
                declaration["parameters"] = {**parameters, "type": "object"}
        declarations.append(declaration)
    return declarations


def _chat_tool_choice(choice: Any) -> dict[str, Any] | None:
    checked = read_tool_choice(choice, _TARGET)
    if checked is None:
        return None
    mode, name = checked
    if mode == "function":
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    return {"mode": _GEMINI_TOOL_MODES[mode]}


def _chat_generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for gemini_name, chat_name, kind in _GENERATION_FIELDS:
        if chat_name == "max_tokens":
            continue  # below: max_completion_tokens and max_tokens both name it
        if body.get(chat_name) is not None:
            config[gemini_name] = _checked(body[chat_name], kind, chat_name)
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None:
            config["maxOutputTokens"] = _checked(body[name], "positive", name)
            break
    if body.get("top_k") is not None:  # not OpenAI's, but clients pass it (extra_body) for Gemini
        config["topK"] = _checked(body["top_k"], "integer", "top_k")
    stops = [item for item in read_stop(body.get("stop")) if item]
    if stops:
        config["stopSequences"] = stops
    config.update(_chat_response_format(body.get("response_format")))
    thinking = _chat_thinking(body.get("reasoning_effort"))
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _chat_response_format(response_format: Any) -> dict[str, Any]:
    json_format = read_response_format(response_format)
    if json_format is None:
        return {}
    if json_format.schema is None:
        return {"responseMimeType": _JSON_MIME}
    return {
        "responseMimeType": _JSON_MIME,
        "responseSchema": clean_schema(json_format.schema, "response_format.json_schema.schema"),
    }


def _chat_thinking(effort: Any) -> dict[str, Any] | None:
    if effort is None or effort in _NO_THINKING:
        return None
    if not isinstance(effort, str) or effort not in _THINKING_BUDGETS:
        fail(f"must be one of {', '.join([*_NO_THINKING, *_THINKING_BUDGETS])}", "reasoning_effort")
    return {"thinkingBudget": _THINKING_BUDGETS[effort], "includeThoughts": True}


# ------------------------------------------------------------------------------------------ schema cleaning


def clean_schema(schema: dict[str, Any], param: str = "schema") -> dict[str, Any]:
    """A JSON Schema rewritten into what Gemini's `Schema` accepts (for function parameters and
    `responseSchema`); the input is not changed.

    - local references (`#/$defs/X`, `#/definitions/X`, `#`) are inlined, `_MAX_REF_DEPTH` deep; beyond
      that (a recursive schema) the reference becomes a free-form object;
    - `type: [T, "null"]` becomes `type: T, nullable: true`, several non-null types an `anyOf`; `anyOf` /
      `oneOf` members of type null become `nullable`, and an `anyOf` left with one member is that member;
      `allOf` members are merged into one schema;
    - `const` becomes a one-value `enum`; enums hold strings only in Gemini (non-string ones are dropped,
      a `null` member becomes `nullable`), and a schema with an enum is a string;
    - `format` survives only where Gemini accepts it (strings: enum, date-time; numbers: float, double;
      integers: int32, int64); `required` keeps only declared properties; empty `properties` go (Gemini
      refuses an OBJECT with empty properties), and an array gets string `items` when it names none (it
      refuses arrays without an item type);
    - every other keyword (`$schema`, `additionalProperties`, `examples`, `default`, `not`, ...) is dropped.
      Property names are data, not keywords: a property called `default` or `format` is kept.

    A schema nested more than `_MAX_SCHEMA_DEPTH` deep, or one that grows past `_MAX_SCHEMA_NODES` nodes
    when its references are inlined, is a 400.
    """
    if not isinstance(schema, dict):
        fail("must be an object", param)
    return _SchemaCleaner(schema).clean(schema, param, 0, 0)


class _SchemaCleaner:
    __slots__ = ("_defs", "_nodes", "_root")

    def __init__(self, root: dict[str, Any]) -> None:
        self._root = root
        self._defs: dict[str, Any] = {}
        for key in ("definitions", "$defs"):
            if isinstance(root.get(key), dict):
                self._defs.update((f"#/{key}/{name}", target) for name, target in root[key].items())
        self._nodes = 0

    def _target(self, ref: str) -> dict[str, Any] | None:
        if ref == "#":
            return self._root
        name = ref.replace("~1", "/").replace("~0", "~") if "~" in ref else ref
        target = self._defs.get(name)
        return target if isinstance(target, dict) else None

    def clean(self, node: Any, param: str, depth: int, ref_depth: int) -> dict[str, Any]:
        if depth > _MAX_SCHEMA_DEPTH:
            fail("is nested too deeply", param)
        self._nodes += 1
        if self._nodes > _MAX_SCHEMA_NODES:
            fail("is too large once its references are inlined", param)
        if not isinstance(node, dict):
            return {}  # a boolean schema (true: anything): no constraint Gemini can express
        ref = node.get("$ref")
        if isinstance(ref, str):
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            target = self._target(ref)
            if target is None:
                node = siblings  # a remote or unknown reference: what is said beside it is all we know
            elif ref_depth >= _MAX_REF_DEPTH:
                node = {"type": "object", **siblings}
            else:
                return self.clean({**target, **siblings}, param, depth, ref_depth + 1)
        out: dict[str, Any] = {}
        self._type(node.get("type"), out)
        if "const" in node and "enum" not in node:
            node = {**node, "enum": [node["const"]]}
        for key, value in node.items():
            if key in _SCHEMA_KEYS and key not in _SCHEMA_STRUCTURE_KEYS:
                out[key] = value
        if node.get("nullable") is True:
            out["nullable"] = True
        properties = node.get("properties")
        if isinstance(properties, dict) and properties:
            out["properties"] = {
                name: self.clean(sub, f"{param}.properties.{name}", depth + 1, ref_depth)
                for name, sub in properties.items()
            }
        if isinstance(node.get("items"), dict):
            out["items"] = self.clean(node["items"], f"{param}.items", depth + 1, ref_depth)
        self._any_of(node, out, param, depth, ref_depth)
        if isinstance(node.get("allOf"), list):
            for k, member in enumerate(node["allOf"]):
                self._merge(out, self.clean(member, f"{param}.allOf.{k}", depth + 1, ref_depth))
        required = [*out.pop("required", ()), *(node["required"] if isinstance(node.get("required"), list) else ())]
        declared = out.get("properties", {})
        required = [name for name in required if isinstance(name, str) and name in declared]
        if required:
            out["required"] = list(dict.fromkeys(required))
        self._enum(node.get("enum"), out)
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in _SCHEMA_FORMATS.get(out.get("type"), ()):
            out["format"] = fmt
        if out.get("type") == "array":
            items = out.setdefault("items", {})
            if "type" not in items and "anyOf" not in items:
                items["type"] = "string"
        return out

    def _type(self, kind: Any, out: dict[str, Any]) -> None:
        if isinstance(kind, str):
            if kind == "null":
                out["nullable"] = True
            else:
                out["type"] = kind
        elif isinstance(kind, list):
            kinds = list(dict.fromkeys(k for k in kind if isinstance(k, str) and k != "null"))
            if "null" in kind:
                out["nullable"] = True
            if len(kinds) == 1:
                out["type"] = kinds[0]
            elif kinds:
                out["anyOf"] = [{"type": k} for k in kinds]

    def _any_of(self, node: dict[str, Any], out: dict[str, Any], param: str, depth: int, ref_depth: int) -> None:
        members: list[dict[str, Any]] = []
        for key in ("anyOf", "oneOf"):  # Gemini has no oneOf: "any of" is the closest it can say
            if isinstance(node.get(key), list):
                for k, member in enumerate(node[key]):
                    if isinstance(member, dict) and member.get("type") == "null" and len(member) == 1:
                        out["nullable"] = True
                        continue
                    members.append(self.clean(member, f"{param}.{key}.{k}", depth + 1, ref_depth))
        if len(members) == 1:
            self._merge(out, members[0])
        elif members:
            out["anyOf"] = [*out.get("anyOf", ()), *members]

    @staticmethod
    def _merge(out: dict[str, Any], member: dict[str, Any]) -> None:
        """Fold a cleaned member schema into `out`: properties and required are united, other keys that
        `out` already has win (a field's own description over its type's)."""
        for key, value in member.items():
            if key == "properties":
                out["properties"] = {**value, **out.get("properties", {})}
            elif key == "required":
                out["required"] = list(dict.fromkeys([*out.get("required", ()), *value]))
            else:
                out.setdefault(key, value)

    @staticmethod
    def _enum(values: Any, out: dict[str, Any]) -> None:
        if not isinstance(values, list):
            return
        if None in values:
            out["nullable"] = True
        strings = [value for value in values if value is not None]
        if strings and all(isinstance(value, str) for value in strings):
            out["enum"] = strings
            if out.get("type") not in (None, "string"):
                return  # a string enum on another type: kept as the client wrote it
            out["type"] = "string"


# -------------------------------------------------------------------------------------------------- usage


def usage_from_gemini(metadata: dict[str, Any]) -> Usage:
    """Gemini's usageMetadata in OpenAI's convention. promptTokenCount already includes the cached tokens
    (and toolUsePromptTokenCount, the tool results a server tool read, is prompt too); thinking tokens are
    output."""
    prompt = token_count(metadata.get("promptTokenCount")) + token_count(metadata.get("toolUsePromptTokenCount"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=token_count(metadata.get("candidatesTokenCount"))
        + token_count(metadata.get("thoughtsTokenCount")),
        cached_tokens=min(token_count(metadata.get("cachedContentTokenCount")), prompt),
    )


def usage_to_gemini(usage: Usage) -> dict[str, int]:
    metadata = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens,
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cached_tokens > 0:
        metadata["cachedContentTokenCount"] = usage.cached_tokens
    return metadata


# -------------------------------------------------------------------------------------------------- replies


def _index(item: dict[str, Any], position: int) -> int:
    """A candidate's or a choice's `index`; where it is missing or invalid, its position stands in (Gemini
    leaves a zero `index` out: protobuf JSON omits defaults)."""
    index = item.get("index")
    return index if is_int(index) and index >= 0 else position


def _candidate_parts(candidate: dict[str, Any]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """A candidate's (texts, thoughts, functionCall objects), empty texts left out."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        if isinstance(text, str) and text:
            (thoughts if part.get("thought") is True else texts).append(text)
        if isinstance(part.get("functionCall"), dict):
            calls.append(part["functionCall"])
    return texts, thoughts, calls


def _tool_call(call: dict[str, Any], candidate: int, number: int) -> dict[str, Any]:
    call_id = call.get("id")
    call_id = call_id if isinstance(call_id, str) and call_id else f"call_{candidate}_{number}"
    name = call.get("name") if isinstance(call.get("name"), str) else ""
    args = call.get("args") if isinstance(call.get("args"), dict) else {}
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": orjson.dumps(args).decode()}}


def _finish_reason(reason: Any, called: bool) -> str:
    finish = _FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if called and finish == "stop" else finish


def _completion_id(response_id: Any) -> str:
    if isinstance(response_id, str) and response_id:
        return response_id if response_id.startswith("chatcmpl-") else f"chatcmpl-{response_id}"
    return f"chatcmpl-{uuid.uuid4().hex}"


def _blocked_prompt(feedback: Any) -> str | None:
    """The text of a blocked prompt's reply (None when the prompt was not blocked)."""
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return _BLOCKED_PROMPT.format(reason) if isinstance(reason, str) and reason else None


def gemini_reply_to_chat(reply: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage | None]:
    """A GenerateContentResponse as a `chat.completion` (one choice per candidate), and its usage (None when
    it reports none). ValueError when it is not a JSON object."""
    if not isinstance(reply, dict):
        raise ValueError("the upstream reply is not a GenerateContentResponse")
    choices = []
    candidates = reply.get("candidates")
    for position, candidate in enumerate(candidates if isinstance(candidates, list) else ()):
        if not isinstance(candidate, dict):
            continue
        index = _index(candidate, position)
        texts, thoughts, calls = _candidate_parts(candidate)
        tool_calls = [_tool_call(call, index, number) for number, call in enumerate(calls)]
        reason = candidate.get("finishReason")
        finish_reason = _finish_reason(reason, bool(tool_calls))
        content = "".join(texts) if texts else None
        if finish_reason == "content_filter" and content is None:
            content = _BLOCKED_REPLY.format(reason)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if thoughts:
            message["reasoning_content"] = "".join(thoughts)
        if tool_calls:
            message["tool_calls"] = tool_calls
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason})
    if not choices:
        blocked = _blocked_prompt(reply.get("promptFeedback"))
        message = {"role": "assistant", "content": blocked, "refusal": None}
        finish_reason = "content_filter" if blocked else "stop"
        choices.append({"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason})
    metadata = reply.get("usageMetadata")
    usage = usage_from_gemini(metadata) if isinstance(metadata, dict) else None
    model_version = reply.get("modelVersion")
    completion: dict[str, Any] = {
        "id": _completion_id(reply.get("responseId")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_version if isinstance(model_version, str) and model_version else model,
        "choices": choices,
    }
    if usage is not None:
        completion["usage"] = usage_to_openai(usage)
    return completion, usage


def _response_id(completion_id: Any) -> str:
    completion_id = completion_id if isinstance(completion_id, str) else ""
    return completion_id.removeprefix("chatcmpl-")


def _text_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat message's (or delta's) reasoning and text as Gemini parts, the thought first; content given
    as parts is joined."""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    said = (content_text(message.get("content")), message.get("refusal"))
    text = "".join(value for value in said if isinstance(value, str))
    parts: list[dict[str, Any]] = []
    if isinstance(reasoning, str) and reasoning:
        parts.append({"text": reasoning, "thought": True})
    if text:
        parts.append({"text": text})
    return parts


def _function_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name if isinstance(name, str) else "", "args": arguments_object(arguments)}
    if isinstance(call_id, str) and call_id:
        call["id"] = call_id  # the client echoes it in its functionResponse, which then finds its call by id
    return {"functionCall": call}


def _gemini_finish_reason(finish_reason: Any) -> str:
    return _GEMINI_FINISH_REASONS.get(finish_reason, "STOP") if isinstance(finish_reason, str) else "STOP"


def chat_to_gemini_reply(completion: dict[str, Any], usage: Usage, model: str) -> dict[str, Any]:
    """A `chat.completion` (from any upstream) as a GenerateContentResponse for `model`."""
    candidates = []
    choices = completion.get("choices")
    for position, choice in enumerate(choices if isinstance(choices, list) else ()):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        parts = _text_parts(message)
        for call_id, function in message_tool_calls(message):
            parts.append(_function_call_part(call_id, function.get("name"), function.get("arguments")))
        candidates.append(
            {
                "content": {"role": "model", "parts": parts or [{"text": ""}]},
                "finishReason": _gemini_finish_reason(choice.get("finish_reason")),
                "index": _index(choice, position),
            }
        )
    return {
        "candidates": candidates,
        "usageMetadata": usage_to_gemini(usage),
        "modelVersion": model,
        "responseId": _response_id(completion.get("id")),
    }


def _reply_texts(reply: dict[str, Any]) -> list[str]:
    """Generated text of a GenerateContentResponse (for counting tokens offline): texts, thoughts, calls."""
    texts: list[str] = []
    candidates = reply.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else ():
        if not isinstance(candidate, dict):
            continue
        said, thoughts, calls = _candidate_parts(candidate)
        texts += thoughts + said
        for call in calls:
            if isinstance(call.get("name"), str):
                texts.append(call["name"])
            if isinstance(call.get("args"), dict) and call["args"]:
                texts.append(orjson.dumps(call["args"]).decode())
    return texts


def gemini_reply_usage(body: bytes) -> tuple[Usage | None, list[str]]:
    """A native reply's usage, and (only when it reports none) its generated texts."""
    reply = orjson.loads(body)
    if not isinstance(reply, dict):
        raise ValueError("the upstream reply is not a JSON object")
    if isinstance(reply.get("usageMetadata"), dict):
        return usage_from_gemini(reply["usageMetadata"]), []
    return None, _reply_texts(reply)


# -------------------------------------------------------------------------------------------------- streams


def _error_text(error: Any) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    return message if isinstance(message, str) and message else orjson.dumps(error).decode()


class GeminiToChatStream:
    """Decodes a Gemini SSE stream (`:streamGenerateContent?alt=sse`) into internal chunks (a StreamDecoder).

    Each event is a whole GenerateContentResponse holding the next parts of each candidate; a candidate is a
    choice. Gemini sends a function call whole in one part, so it becomes one complete tool-call delta. A
    stream has no terminator: it ends properly with a finishReason (or a blocked prompt). usageMetadata is
    cumulative, so the latest one is the stream's usage.

    The usual event, one piece of text, may take the compiled path instead (`compiled_text_deltas`,
    relay/_eventscan.c), which keeps its usageMetadata as the JSON it came in; whichever of the two saw the later
    one holds the stream's usage.
    """

    __slots__ = (
        "_called",
        "_calls",
        "_compiled",
        "_created",
        "_id",
        "_metadata",
        "_model",
        "_said",
        "_started",
        "done",
        "error_message",
        "text_chunk_version",
    )

    def __init__(self, model: str) -> None:
        # Counts the changes to what `text_chunk` gives: the model, and the first candidate's first text (the id is
        # set by then, and not changed after).
        self.text_chunk_version = 0
        self._compiled: Any = None  # the compiled path, where compiled_text_deltas made one
        self._metadata: dict[str, Any] | None = None  # the latest usageMetadata, read once the stream ends
        self.done = False
        self.error_message: str | None = None
        self._model = model
        self._id = ""  # the upstream's responseId names the completion; a random one only if it sends none
        self._created = int(time.time())
        self._started: set[int] = set()  # choices whose role was sent
        self._said: set[int] = set()  # choices that produced text
        self._called: set[int] = set()  # choices that called a function, now or in an earlier event
        self._calls: dict[int, int] = {}  # choice → tool calls so far (OpenAI's tool-call `index`)

    @property
    def usage(self) -> Usage | None:
        """The stream's usage: Gemini repeats a cumulative usageMetadata on every event, so only the last one
        is converted, when it is asked for."""
        relayed = self._compiled.usage if self._compiled is not None else None
        if relayed is not None:
            return usage_from_gemini(orjson.loads(relayed))
        return usage_from_gemini(self._metadata) if self._metadata is not None else None

    def text_chunk(self, text: str) -> dict[str, Any] | None:
        """The chunk a response holding only `text` for the first candidate gives in the stream's current state;
        None until that candidate has had a text (its first chunk, which also carries its role and sets the
        completion's id, differs, and the Python path keeps that it spoke)."""
        if 0 not in self._said:
            return None
        return choice_chunk(self._id, self._created, self._model, 0, {"content": text}, None)

    def compiled_text_deltas(
        self, texts: list[str | bytes], secrets: tuple[bytes, ...], partial: bytearray
    ) -> Callable[[bytes], bytes | None] | None:
        """The compiled path for this stream's usual event, one piece of text (relay/_eventscan.c); None when
        the extension was not built. TranslatingTap sets its template from `text_chunk`."""
        if GeminiTextDeltas is None:
            return None
        self._compiled = GeminiTextDeltas(texts, secrets, partial)
        self._compiled.model = orjson.dumps(self._model)[1:-1]
        return self._compiled

    def _chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
        if not self._id:
            self._id = _completion_id(None)
        return choice_chunk(self._id, self._created, self._model, index, delta, finish_reason)

    def feed(self, event: bytes) -> list[dict[str, Any]]:
        data = sse_json(event)
        if not isinstance(data, dict):
            return []
        if data.get("error") is not None:
            self.error_message = _error_text(data["error"])
            return []
        if not self._id and isinstance(data.get("responseId"), str) and data["responseId"]:
            self._id = _completion_id(data["responseId"])
        model = data.get("modelVersion")
        if isinstance(model, str) and model and model != self._model:
            self._model = model
            self.text_chunk_version += 1
            if self._compiled is not None:
                self._compiled.model = orjson.dumps(model)[1:-1]
        metadata = data.get("usageMetadata")
        if isinstance(metadata, dict):
            self._metadata = metadata
            if self._compiled is not None:
                self._compiled.usage = None  # this one is the later
        chunks: list[dict[str, Any]] = []
        candidates = data.get("candidates")
        if isinstance(candidates, list) and candidates:
            for position, candidate in enumerate(candidates):
                if isinstance(candidate, dict):
                    chunks += self._candidate(candidate, position)
            return chunks
        blocked = _blocked_prompt(data.get("promptFeedback"))
        if blocked is not None:
            self.done = True
            chunks.append(self._chunk(0, {"content": blocked}, "content_filter"))
        return chunks

    def _candidate(self, candidate: dict[str, Any], position: int) -> list[dict[str, Any]]:
        index = _index(candidate, position)
        texts, thoughts, calls = _candidate_parts(candidate)
        delta: dict[str, Any] = {}
        if thoughts:
            delta["reasoning_content"] = "".join(thoughts)
        if texts:
            delta["content"] = "".join(texts)
            if index not in self._said:
                self._said.add(index)
                self.text_chunk_version += 1
        if calls:
            self._called.add(index)
            first = self._calls.get(index, 0)
            self._calls[index] = first + len(calls)
            delta["tool_calls"] = [
                {"index": first + k, **_tool_call(call, index, first + k)} for k, call in enumerate(calls)
            ]
        reason = candidate.get("finishReason")
        finished = isinstance(reason, str) and reason not in ("", "FINISH_REASON_UNSPECIFIED")
        # The first chunk of a choice carries its role: one of its own unless the finish chunk follows now.
        chunks = [self._chunk(index, delta)] if delta or not (finished or index in self._started) else []
        if finished:
            self.done = True
            finish_reason = _finish_reason(reason, index in self._called)
            final: dict[str, Any] = {}
            if finish_reason == "content_filter" and index not in self._said:
                final["content"] = _BLOCKED_REPLY.format(reason)
            chunks.append(self._chunk(index, final, finish_reason))
        return chunks


class ChatToGeminiStream:
    """Encodes internal chunks for a Gemini client as `data:` events (a StreamEncoder), as Gemini answers
    `:streamGenerateContent?alt=sse` (what the google-genai SDK asks for; the relay re-frames the events as a
    JSON array for a client that did not ask for SSE).

    Text and thoughts go out as they come; a tool call arrives in argument fragments but Gemini sends calls
    whole, so calls are gathered and sent when their choice finishes (or at the end). `finish` sends the
    last event: each candidate's finishReason and the usage.
    """

    __slots__ = (
        "_call_keys",
        "_calls",
        "_choices",
        "_finish",
        "_last_call",
        "_model",
        "_response_id",
    )

    def __init__(self, model: str) -> None:
        self._model = model
        self._response_id = ""
        self._choices: list[int] = []  # candidate indexes seen, in order
        self._finish: dict[int, Any] = {}  # candidate → the finish_reason it reported
        self._calls: dict[int, list[list[Any]]] = {}  # candidate → its calls: [id, name, argument fragments]
        self._call_keys: dict[int, dict[Any, int]] = {}  # candidate → call index (or id) → position in _calls
        self._last_call: dict[int, int] = {}  # candidate → the call that fragments with neither index nor id join

    def _event(self, candidates: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        payload: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            payload["usageMetadata"] = usage_to_gemini(usage)
        payload["modelVersion"] = self._model
        payload["responseId"] = self._response_id
        return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if not self._response_id and isinstance(chunk.get("id"), str):
            self._response_id = _response_id(chunk["id"])
        choices = chunk.get("choices")
        candidates = []
        for position, choice in enumerate(choices if isinstance(choices, list) else ()):
            if not isinstance(choice, dict):
                continue
            index = _index(choice, position)
            if index not in self._choices:
                self._choices.append(index)
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            parts = _text_parts(delta)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    self._gather(index, call)
            if choice.get("finish_reason"):
                self._finish[index] = choice["finish_reason"]
                parts += self._call_parts(index)
            if parts:
                candidates.append({"content": {"role": "model", "parts": parts}, "index": index})
        return self._event(candidates) if candidates else b""

    def _gather(self, index: int, call: dict[str, Any]) -> None:
        calls = self._calls.setdefault(index, [])
        keys = self._call_keys.setdefault(index, {})
        number, call_id = call.get("index"), call.get("id")
        call_id = call_id if isinstance(call_id, str) and call_id else None
        # OpenAI sends id and name only in a call's first fragment, keyed by index; some servers leave the
        # index out, others reuse index 0 for every call with a new id: a new index or a new id is a new call,
        # and later fragments under the reused index belong to the newest call.
        key = number if is_int(number) else call_id
        position = keys.get(key) if key is not None else self._last_call.get(index)
        if position is None or (call_id is not None and calls[position][0] not in (None, call_id)):
            calls.append([call_id, None, []])
            position = len(calls) - 1
            if key is not None:
                keys[key] = position
        self._last_call[index] = position
        entry = calls[position]
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        if entry[0] is None:
            entry[0] = call_id
        if entry[1] is None and isinstance(function.get("name"), str) and function["name"]:
            entry[1] = function["name"]
        if isinstance(function.get("arguments"), str):
            entry[2].append(function["arguments"])

    def _call_parts(self, index: int) -> list[dict[str, Any]]:
        calls = self._calls.pop(index, [])
        self._call_keys.pop(index, None)
        self._last_call.pop(index, None)
        return [_function_call_part(call_id, name, "".join(fragments)) for call_id, name, fragments in calls]

    def finish(self, usage: Usage) -> bytes:
        candidates = []
        for index in self._choices or [0]:
            parts = self._call_parts(index) or [{"text": ""}]  # calls of a choice that never reported finishing
            candidates.append(
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": _gemini_finish_reason(self._finish.get(index)),
                    "index": index,
                }
            )
        return self._event(candidates, usage)


class GeminiPassthroughTap:
    """Relays a Gemini SSE stream to a Gemini client unchanged, reading usage on the side (a StreamTap; the
    relay re-frames the events as a JSON array for a client that did not ask for SSE).

    This is the hot path: an event is searched for two byte strings, and only events holding
    `"finishReason"` or `"blockReason"` (one per stream) are parsed as they pass; usage is parsed when it is
    read, from the last event that carries it (Gemini's usageMetadata is cumulative).
    """

    error_message: str | None = None  # an upstream error event is relayed as it came

    def __init__(self) -> None:
        self.done = False
        self._events: list[bytes] = []
        self._usage_events: list[bytes] = []
        self._usage: Usage | None = None
        self._usage_read = 0  # how many of _usage_events `_usage` has considered

    @property
    def usage(self) -> Usage | None:
        if self._usage_read < len(self._usage_events):
            for event in reversed(self._usage_events[self._usage_read :]):
                data = sse_json(event)
                if isinstance(data, dict) and isinstance(data.get("usageMetadata"), dict):
                    self._usage = usage_from_gemini(data["usageMetadata"])
                    break
            self._usage_read = len(self._usage_events)
        return self._usage

    def feed(self, event: bytes) -> bytes | None:
        self._events.append(event)
        if event.find(b'"usageMetadata"') >= 0:
            self._usage_events.append(event)
        if not self.done and (event.find(b'"finishReason"') >= 0 or event.find(b'"blockReason"') >= 0):
            self.done = self._ends_stream(event)
        return event

    @staticmethod
    def _ends_stream(event: bytes) -> bool:
        data = sse_json(event)
        if not isinstance(data, dict):
            return False
        if _blocked_prompt(data.get("promptFeedback")) is not None:
            return True
        candidates = data.get("candidates")
        return any(
            isinstance(candidate, dict) and isinstance(candidate.get("finishReason"), str)
            for candidate in (candidates if isinstance(candidates, list) else ())
        )

    def finish(self, usage: Usage) -> bytes:
        return b""  # the upstream's last event (with its finishReason) already ended the stream

    def completion_texts(self) -> list[str]:
        texts = []
        for event in self._events:
            data = sse_json(event)
            if isinstance(data, dict):
                texts += _reply_texts(data)
        return texts


# --------------------------------------------------------------------------------------------------- errors


def _error_status(error: RelayError) -> tuple[int, str]:
    if error.code == "insufficient_quota":
        return 429, "RESOURCE_EXHAUSTED"
    return error_status(error.status, _ERROR_STATUSES, "INTERNAL", "INVALID_ARGUMENT")


def _error_body(error: RelayError) -> bytes:
    status, name = _error_status(error)
    return orjson.dumps({"error": {"code": status, "message": error.message, "status": name}})


def gemini_error(error: RelayError) -> tuple[int, bytes]:
    """The HTTP status and Google-shaped body of an error (google-genai raises ClientError/ServerError from
    its `code`, `message` and `status`)."""
    return _error_status(error)[0], _error_body(error)


def gemini_stream_error(error: RelayError) -> bytes:
    """The event that ends an SSE stream which failed after it began: the google-genai SDK raises an
    APIError for a `data:` event whose object is `{"error": ...}`."""
    return b"data: " + _error_body(error) + b"\r\n\r\n"
