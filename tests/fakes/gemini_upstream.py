"""A fake Gemini upstream that speaks the Generative Language API (Google AI Studio) wire format.

The twin of `tests.fakes.openai_upstream.FakeOpenAI` and `tests.fakes.anthropic_upstream.FakeAnthropic`: an
aiohttp app on its own event loop in a background thread, on 127.0.0.1 and an ephemeral port, answering
deterministically and recording every request (`Received.path` holds the query string too, so a test sees
`?alt=sse` and a `?key=`). `base_url` is what the google-genai SDK takes as `http_options.base_url`: without the
API version. Every JSON field on the wire is camelCase, as Google sends it.

    POST /{v}/models/{model}:generateContent        a GenerateContentResponse
    POST /{v}/models/{model}:streamGenerateContent  ?alt=sse: one `data: <GenerateContentResponse>\\r\\n\\r\\n` event
                                                    per write (Google ends SSE lines with CRLF); without alt=sse
                                                    the JSON-array form `[{...}\\r\\n,{...}\\r\\n]`, written
                                                    element by element (application/json)
    POST /{v}/models/{model}:countTokens            {"totalTokens": N}, from {"contents": [...]} or from
                                                    {"generateContentRequest": {"model": "models/...", ...}}
    GET  /{v}/models                                {"models": [...]} (MODELS; pageSize / pageToken paginate)
    GET  /{v}/models/{model}                        one of MODELS, or 404 NOT_FOUND
    GET  /img/red.png, /img/redirect                a real 1x1 red PNG, and a 302 to it (no key needed), so
                                                    gateway tests can fetch an image from an http URL

{v} is v1beta or v1 (anything else: 404 NOT_FOUND). The key goes in the `x-goog-api-key` header or the `?key=`
query parameter; a missing or wrong key is 400 INVALID_ARGUMENT "API key not valid. Please pass a valid API
key." (reason API_KEY_INVALID), as Google answers. Errors are `{"error": {"code", "message", "status"}}`.

Requests are validated as strictly as the real API validates them (400 INVALID_ARGUMENT naming the problem,
with Google's wording where it has one), so a gateway's bad translation fails a test instead of passing. Like
Google's proto3 JSON parser, it takes a known field by its camelCase name or by its snake_case proto name
(the google-genai SDK itself sends inlineData.mime_type and thinkingConfig.include_thoughts), refuses both
spellings in one object, and never renames the keys of function args, a functionResponse's response or a
schema's properties:

    top level         only contents, systemInstruction, generationConfig, tools, toolConfig, safetySettings,
                      cachedContent; `messages`, `max_tokens`, `model`, `stream`... are unknown names
    contents          a non-empty list of {role: "user" | "model", parts: non-empty list}; a missing role, and
                      "system", "assistant" and "tool" roles, are refused ("Please use a valid role: user, model.")
    parts             exactly one of text (non-empty) / inlineData {mimeType, data: base64} / fileData
                      {mimeType?, fileUri} / functionCall {name, args?: object, id?} / functionResponse
                      {name, response: object, id?}, plus `thought: true` (text only) and `thoughtSignature`;
                      anything else (image_url, type, tool_calls, content...) is an unknown name
    function turns    functionCall parts only in model turns, right after a user turn; functionResponse parts
                      only in the user turn right after a model turn with functionCall parts, one response
                      per call, each naming one of that turn's calls
    systemInstruction {parts: [{text}], role?}
    tools             [{functionDeclarations: [{name, description?, parameters? | parametersJsonSchema?}]}]
                      (or googleSearch / codeExecution / urlContext); unique names; a parameter schema (and
                      generationConfig.responseSchema) holding `$schema`, `additionalProperties`, `$ref`,
                      `$defs` or `const` at any depth, or a `type` given as a list, is refused
    toolConfig        {functionCallingConfig: {mode: AUTO | ANY | NONE | VALIDATED, allowedFunctionNames?}}
                      (names only with ANY / VALIDATED, and only declared ones)
    generationConfig  temperature (0..2), topP (0..1), topK, candidateCount (1..8), maxOutputTokens (>= 1),
                      stopSequences (<= 5 strings), responseMimeType, responseSchema / responseJsonSchema
                      (application/json or text/x.enum), presencePenalty, frequencyPenalty, seed,
                      thinkingConfig {thinkingBudget?, includeThoughts?, thinkingLevel?}, responseLogprobs,
                      logprobs (0..20)
    safetySettings    [{category: HARM_CATEGORY_*, threshold}]; cachedContent "cachedContents/<id>"

The reply is "You said: <words of the last user turn's text, directives removed>", plus " (N images)" when
that turn has N inlineData / fileData parts; candidate i > 0 (candidateCount) appends " #<i>". maxOutputTokens
truncates it to that many words (finishReason MAX_TOKENS); a reply word listed in stopSequences cuts the text
just before it (finishReason STOP). Usage counts words:

    promptTokenCount         3 + sum over contents of (3 + words of its text parts) + words of the
                             systemInstruction text, + N with #fake:cached=N (cachedContentTokenCount N is
                             included in promptTokenCount, as Google reports it)
    candidatesTokenCount     words of every candidate's non-thought text, plus the words of each functionCall's
                             args as `json.dumps` writes them ({"city": "Paris", "n": 0} is 4 words); omitted
                             when 0 (safety, blocked), as proto3 JSON omits zeros
    thoughtsTokenCount       words of THINKING_TEXT per candidate, whenever the model thinks (#fake:thinking,
                             thinkingConfig.includeThoughts, or thinkingConfig.thinkingBudget > 0), even when the
                             thought itself is not returned
    totalTokenCount          promptTokenCount + candidatesTokenCount + thoughtsTokenCount
    countTokens              totalTokens = promptTokenCount without the cache

Without a directive the reply adapts to the request, as Gemini does: generationConfig.responseMimeType
application/json answers JSON_REPLY; thinkingConfig.includeThoughts opens the reply with the part
{"text": THINKING_TEXT, "thought": true}. Directives (`#fake:NAME` or `#fake:NAME=VALUE`) in the last user turn's
text steer it:

    #fake:tools / tools=N   TOOLS_PREAMBLE text, then 1 (N) functionCall parts: the request's first function
                            declaration (or get_weather), args {"city": "Paris", "n": i}, no id; finishReason
                            STOP (Gemini reports STOP after a function call too). Streamed: the text in one chunk,
                            every call in the next, then a last chunk with finishReason STOP and no parts
                            (content {"role": "model"}), so a gateway must remember it saw a call
    #fake:json              JSON_REPLY as the text
    #fake:thinking          the thought part, as includeThoughts gives it
    #fake:safety            a candidate without content, finishReason SAFETY, safetyRatings SAFETY_RATINGS
    #fake:blocked           no candidates at all: promptFeedback {blockReason: SAFETY, safetyRatings} (HTTP 200)
    #fake:error=CODE        a Google error of that status: 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED (the message
                            holds GEMINI_UPSTREAM_SECRET), 403 PERMISSION_DENIED, 404 NOT_FOUND, 429
                            RESOURCE_EXHAUSTED (details: RetryInfo retryDelay "7s"), 500 INTERNAL, 503
                            UNAVAILABLE, 504 DEADLINE_EXCEEDED
    #fake:sleep=SECS        wait before answering (timeouts)
    #fake:cut               stream two chunks, then drop the connection
    #fake:slow              stream a " tick" chunk every 100 ms for 10 s (client-disconnect tests)
    #fake:cached=N          cachedContentTokenCount N (included in promptTokenCount)
    #fake:chunks=N          split the reply text into N chunks (default: one chunk per word)

Streamed, every chunk carries usageMetadata, with the counts so far (cumulative: the last chunk's are the final
ones, a gateway must not add them up), modelVersion and the same responseId; finishReason comes only on the last
chunk. countTokens honours error= and sleep=. Every stream ends counted in `state.completed_streams` or, when
the client leaves, `state.cancelled_streams`.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import png_bytes
from tests.fakes.server import FakeServer, Received

GEMINI_UPSTREAM_SECRET = "AIzaFAKE-gemini-upstream-SECRET-0123456789abcd"

_DIRECTIVE = re.compile(r"#fake:([a-z_]+)(?:=(\S+))?")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_BASE64_URLSAFE = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")

VERSIONS = ("v1beta", "v1")
THINKING_TEXT = "Let me think about this."
TOOLS_PREAMBLE = "Let me check."
DEFAULT_TOOL = "get_weather"
JSON_REPLY = '{"answer": "yes", "n": 1}'
RETRY_DELAY = "7s"
SLOW_TICKS = 100
RED_PNG = png_bytes()
SAFETY_RATINGS: list[dict[str, Any]] = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
]

# What GET /{v}/models lists, in the Generative Language API's own Model shape.
MODELS: tuple[dict[str, Any], ...] = (
    {
        "name": "models/gemini-2.0-flash",
        "version": "2.0",
        "displayName": "Gemini 2.0 Flash",
        "description": "Gemini 2.0 Flash",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "maxTemperature": 2,
        "topP": 0.95,
        "topK": 40,
    },
    {
        "name": "models/gemini-2.0-flash-lite",
        "version": "2.0",
        "displayName": "Gemini 2.0 Flash-Lite",
        "description": "Gemini 2.0 Flash-Lite",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "maxTemperature": 2,
        "topP": 0.95,
        "topK": 40,
    },
    {
        "name": "models/gemini-2.5-flash",
        "version": "001",
        "displayName": "Gemini 2.5 Flash",
        "description": "Stable version of Gemini 2.5 Flash",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "maxTemperature": 2,
        "topP": 0.95,
        "topK": 64,
        "thinking": True,
    },
    {
        "name": "models/gemini-2.5-pro",
        "version": "2.5",
        "displayName": "Gemini 2.5 Pro",
        "description": "Stable release of Gemini 2.5 Pro",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "maxTemperature": 2,
        "topP": 0.95,
        "topK": 64,
        "thinking": True,
    },
)

GENERATE_FIELDS = (
    "contents",
    "systemInstruction",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
)
GENERATION_CONFIG_FIELDS = (
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "thinkingConfig",
    "responseLogprobs",
    "logprobs",
)
RESPONSE_MIME_TYPES = ("text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum")
PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
PART_FIELDS = (*PART_DATA, "thought", "thoughtSignature")
TOOL_KINDS = ("functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext")
DECLARATION_FIELDS = (
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
)
FUNCTION_CALLING_MODES = ("AUTO", "ANY", "NONE", "VALIDATED")
SCHEMA_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")
FORBIDDEN_SCHEMA_KEYS = ("$schema", "additionalProperties", "$ref", "$defs", "const")
HARM_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
)
HARM_THRESHOLDS = (
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
)

# google.rpc.Code names of the HTTP statuses Google answers with.
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# What `#fake:error=CODE` answers with ({model} and {version} are filled in).
ERROR_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: (
        f"API key {GEMINI_UPSTREAM_SECRET} is not valid: request had invalid authentication credentials. Expected "
        "OAuth 2 access token, login cookie or other valid authentication credential."
    ),
    403: "The caller does not have permission",
    404: (
        "models/{model} is not found for API version {version}, or is not supported for generateContent. Call "
        "ListModels to see the list of available models and their supported methods."
    ),
    429: (
        "You exceeded your current quota, please check your plan and billing details. For more information on this "
        "error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
    ),
    500: (
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting"
    ),
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}
PROTO = "type.googleapis.com/google.ai.generativelanguage.v1beta."
INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."


class Invalid(Exception):
    """A request the real API refuses with 400 INVALID_ARGUMENT; the message names the problem."""


def error_body(code: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": STATUSES.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


def _google_error(code: int, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
    return web.json_response(error_body(code, message, details), status=code)


def _directed_error(code: int, model: str, version: str) -> web.Response:
    message = ERROR_MESSAGES.get(code, f"fake error {code}").format(model=model, version=version)
    details = (
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": RETRY_DELAY}] if code == 429 else None
    )
    return _google_error(code, message, details)


def _invalid_key() -> web.Response:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
    ]
    return _google_error(400, INVALID_KEY_MESSAGE, details)


# ---- counting ---------------------------------------------------------------------------------------------------


def words_in(text: str) -> int:
    return len(text.split())


def text_of(content: Any) -> str:
    """The text parts of a content (or of systemInstruction), joined by spaces."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return " ".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def prompt_tokens_of(body: dict[str, Any]) -> int:
    """3 + (3 + words of its text parts) per content + words of the systemInstruction text (no cache)."""
    contents = body.get("contents") or []
    return 3 + sum(3 + words_in(text_of(c)) for c in contents) + words_in(text_of(body.get("systemInstruction")))


def output_tokens_of(parts: list[dict[str, Any]]) -> tuple[int, int]:
    """(candidate tokens, thought tokens) of some reply parts: words of text, words of each call's args JSON."""
    candidates = thoughts = 0
    for part in parts:
        if "functionCall" in part:
            candidates += words_in(json.dumps(part["functionCall"].get("args", {})))
        elif part.get("thought"):
            thoughts += words_in(part["text"])
        else:
            candidates += words_in(part["text"])
    return candidates, thoughts


def usage_metadata(prompt: int, candidates: int, thoughts: int, cached: int) -> dict[str, Any]:
    """Google's usageMetadata: zero counts are left out, as proto3 JSON leaves them out."""
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt + candidates + thoughts
    if cached:
        usage["cachedContentTokenCount"] = cached
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


# ---- validation (raises Invalid) ---------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _unknown(key: str, where: str) -> Invalid:
    at = f" at '{where}'" if where else ""
    return Invalid(f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.')


def _only(value: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in value:
        if key not in allowed:
            raise _unknown(key, where)


def _bad_value(where: str, kind: str, value: Any) -> Invalid:
    return Invalid(f"Invalid value at '{where}' ({kind}), {json.dumps(value)}")


def _object(value: Any, where: str, kind: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_value(where, PROTO + kind, value)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"Invalid JSON payload received. Proto field '{where}' is repeating: expected a list.")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


def _is_base64(data: Any) -> bool:
    if not isinstance(data, str) or not data:
        return False
    if _BASE64.match(data) and len(data) % 4 == 0:
        return True
    # Google decodes the web-safe alphabet too, padding optional.
    return bool(_BASE64_URLSAFE.match(data)) and len(data.rstrip("=")) % 4 != 1


# Every field name the request messages know, in lowerCamelCase. Google parses requests as proto3 JSON, which takes
# a field by its lowerCamelCase JSON name or by its original snake_case name (the google-genai SDK itself sends
# inlineData.mime_type, fileData.file_uri, thinkingConfig.include_thoughts, Schema.max_items...).
KNOWN_FIELDS = frozenset(
    {
        *GENERATE_FIELDS,
        *GENERATION_CONFIG_FIELDS,
        *PART_FIELDS,
        *TOOL_KINDS,
        *DECLARATION_FIELDS,
        "generateContentRequest",
        "mimeType",
        "fileUri",
        "functionCallingConfig",
        "allowedFunctionNames",
        "thinkingBudget",
        "includeThoughts",
        "thinkingLevel",
        "anyOf",
        "oneOf",
        "allOf",
        "prefixItems",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "propertyOrdering",
        "additionalProperties",
    }
)
# Values that are google.protobuf.Struct / Value (or JSON Schema taken as such): their keys are data, not fields.
_OPAQUE = frozenset({"args", "parametersJsonSchema", "responseJsonSchema", "example", "default"})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def normalize(value: Any, parent: str = "") -> Any:
    """The request with every snake_case field name the API knows spelled in lowerCamelCase, as proto3 JSON
    parsing takes either; unknown names are kept as sent, so the 400 names them. Both spellings of one field
    in one object are refused, as Google refuses them."""
    if isinstance(value, list):
        return [normalize(item, parent) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, child in value.items():
        if parent == "properties":
            # A Schema's properties map: the keys are property names, the values schemas.
            name, normalized = key, normalize(child)
        else:
            name = _camel(key) if "_" in key and _camel(key) in KNOWN_FIELDS else key
            opaque = name in _OPAQUE or (name == "response" and parent == "functionResponse")
            normalized = child if opaque else normalize(child, name)
        if name in out:
            raise Invalid(f'Invalid JSON payload received. Duplicate value for field "{name}" (also sent as "{key}").')
        out[name] = normalized
    return out


def validate_generate(body: Any, extra_fields: tuple[str, ...] = ()) -> None:
    """A GenerateContentRequest body (countTokens' generateContentRequest adds `model`)."""
    if not isinstance(body, dict):
        raise Invalid("Invalid JSON payload received. Expected an object.")
    _only(body, GENERATE_FIELDS + extra_fields, "")
    _validate_contents(body.get("contents"))
    if "systemInstruction" in body:
        _validate_system_instruction(body["systemInstruction"])
    names = _validate_tools(body.get("tools"))
    if "toolConfig" in body:
        _validate_tool_config(body["toolConfig"], names)
    if "generationConfig" in body:
        _validate_generation_config(body["generationConfig"])
    if "safetySettings" in body:
        _validate_safety_settings(body["safetySettings"])
    if "cachedContent" in body and not (
        isinstance(body["cachedContent"], str) and body["cachedContent"].startswith("cachedContents/")
    ):
        raise Invalid("* GenerateContentRequest.cached_content: must be of the form cachedContents/{cachedContent}")


def _validate_contents(contents: Any) -> None:
    if contents is None or (isinstance(contents, list) and not contents):
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(_list(contents, "contents")):
        where = f"contents[{i}]"
        _object(content, where, "Content")
        _only(content, ("role", "parts"), where)
        if content.get("role") not in ("user", "model"):
            raise Invalid("Please use a valid role: user, model.")
        parts = content.get("parts")
        if parts is None or (isinstance(parts, list) and not parts):
            raise Invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
        for j, part in enumerate(_list(parts, f"{where}.parts")):
            _validate_part(part, f"{where}.parts[{j}]")
    _validate_function_turns(contents)


def _validate_part(part: Any, where: str) -> None:
    _object(part, where, "Part")
    _only(part, PART_FIELDS, where)
    present = [key for key in PART_DATA if key in part]
    if not present:
        raise Invalid(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
        )
    if len(present) > 1:
        raise Invalid(
            f"Invalid value at '{where}' (oneof), oneof field 'data' is already set. Cannot set '{present[1]}'"
        )
    kind = present[0]
    value = part[kind]
    if "thought" in part:
        if not isinstance(part["thought"], bool):
            raise _bad_value(f"{where}.thought", "TYPE_BOOL", part["thought"])
        if part["thought"] and kind != "text":
            raise Invalid(f"* GenerateContentRequest.{where}.thought: only text parts can be thoughts")
    if "thoughtSignature" in part and not _is_base64(part["thoughtSignature"]):
        raise Invalid(f"Invalid value at '{where}.thought_signature' (TYPE_BYTES), Base64 decoding failed")
    if kind == "text":
        if not isinstance(value, str):
            raise _bad_value(f"{where}.text", "TYPE_STRING", value)
        if not value:
            raise Invalid(
                f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
            )
    elif kind == "inlineData":
        inner = f"{where}.inline_data"
        _only(_object(value, inner, "Blob"), ("mimeType", "data"), inner)
        if not isinstance(value.get("mimeType"), str) or "/" not in value["mimeType"]:
            raise Invalid(f"* GenerateContentRequest.{inner}.mime_type: a valid MIME type is required")
        if not _is_base64(value.get("data")):
            data = json.dumps(value.get("data"))
            raise Invalid(f"Invalid value at '{inner}.data' (TYPE_BYTES), Base64 decoding failed for {data}")
    elif kind == "fileData":
        inner = f"{where}.file_data"
        _only(_object(value, inner, "FileData"), ("mimeType", "fileUri"), inner)
        if not isinstance(value.get("fileUri"), str) or not value["fileUri"]:
            raise Invalid(f"* GenerateContentRequest.{inner}.file_uri: file_uri is not specified")
        if "mimeType" in value and not (isinstance(value["mimeType"], str) and "/" in value["mimeType"]):
            raise Invalid(f"* GenerateContentRequest.{inner}.mime_type: a valid MIME type is required")
    elif kind == "functionCall":
        inner = f"{where}.function_call"
        _only(_object(value, inner, "FunctionCall"), ("name", "args", "id"), inner)
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise Invalid(f"* GenerateContentRequest.{inner}.name: name is not specified")
        if "args" in value and not isinstance(value["args"], dict):
            raise _bad_value(f"{inner}.args", "type.googleapis.com/google.protobuf.Struct", value["args"])
    else:
        inner = f"{where}.function_response"
        _only(_object(value, inner, "FunctionResponse"), ("name", "response", "id"), inner)
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise Invalid(f"* GenerateContentRequest.{inner}.name: name is not specified")
        if not isinstance(value.get("response"), dict):
            raise _bad_value(f"{inner}.response", "type.googleapis.com/google.protobuf.Struct", value.get("response"))


def _names(content: dict[str, Any], kind: str) -> list[str]:
    return [part[kind]["name"] for part in content["parts"] if kind in part]


def _validate_function_turns(contents: list[dict[str, Any]]) -> None:
    """Calls come from the model right after a user turn; the next user turn answers each of them."""
    previous: dict[str, Any] | None = None
    for i, content in enumerate(contents):
        calls = _names(content, "functionCall")
        responses = _names(content, "functionResponse")
        if calls and (content["role"] != "model" or previous is None or previous["role"] != "user"):
            raise Invalid(
                "Please ensure that function call turn comes immediately after a user turn or after a function "
                f"response turn. (contents[{i}])"
            )
        if responses:
            asked = _names(previous, "functionCall") if previous is not None else []
            if content["role"] != "user" or not asked:
                raise Invalid(
                    f"Please ensure that function response turn comes immediately after a function call turn. "
                    f"(contents[{i}])"
                )
            if len(responses) != len(asked):
                raise Invalid(
                    "Please ensure that the number of function response parts is equal to the number of function "
                    f"call parts of the function call turn. (contents[{i}]: {len(responses)} responses, "
                    f"{len(asked)} calls)"
                )
            for name in responses:
                if name not in asked:
                    raise Invalid(
                        f"Please ensure that function response turn comes immediately after a function call turn. "
                        f"(contents[{i}]: function response {name!r} answers no function call of the turn before)"
                    )
        previous = content


def _validate_system_instruction(system: Any) -> None:
    _object(system, "system_instruction", "Content")
    _only(system, ("role", "parts"), "system_instruction")
    if "role" in system and not isinstance(system["role"], str):
        raise _bad_value("system_instruction.role", "TYPE_STRING", system["role"])
    parts = system.get("parts")
    if not isinstance(parts, list) or not parts:
        raise Invalid("* GenerateContentRequest.system_instruction.parts: contents.parts must not be empty.")
    for j, part in enumerate(parts):
        where = f"system_instruction.parts[{j}]"
        _object(part, where, "Part")
        _only(part, ("text",), where)
        if not isinstance(part.get("text"), str) or not part["text"]:
            raise Invalid(f"* GenerateContentRequest.{where}.text: system instruction parts must be non-empty text")


def _validate_schema(schema: Any, where: str) -> None:
    """A function parameter or response schema: Google's Schema knows none of the JSON Schema extras."""
    _object(schema, where, "Schema")
    for key in schema:
        if key in FORBIDDEN_SCHEMA_KEYS:
            raise _unknown(key, where)
    if "type" in schema:
        kind = schema["type"]
        if isinstance(kind, list):
            raise Invalid(
                f"Invalid JSON payload received. Proto field is not repeating, cannot start list at '{where}.type'."
            )
        if not isinstance(kind, str) or kind.lower() not in SCHEMA_TYPES:
            raise _bad_value(f"{where}.type", PROTO + "Type", kind)
    properties = schema.get("properties")
    if properties is not None:
        for name, child in _object(properties, f"{where}.properties", "Schema").items():
            _validate_schema(child, f"{where}.properties[{name}]")
    if "items" in schema:
        if isinstance(schema["items"], list):
            raise Invalid(
                f"Invalid JSON payload received. Proto field is not repeating, cannot start list at '{where}.items'."
            )
        _validate_schema(schema["items"], f"{where}.items")
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in schema:
            for k, child in enumerate(_list(schema[key], f"{where}.{_snake(key)}")):
                _validate_schema(child, f"{where}.{_snake(key)}[{k}]")
    if "not" in schema:
        _validate_schema(schema["not"], f"{where}.not")


def _validate_tools(tools: Any) -> list[str]:
    """The names of the declared functions."""
    if tools is None:
        return []
    names: list[str] = []
    for i, tool in enumerate(_list(tools, "tools")):
        where = f"tools[{i}]"
        _only(_object(tool, where, "Tool"), TOOL_KINDS, where)
        if not tool:
            raise Invalid(f"* GenerateContentRequest.{where}: a tool must declare functions or name a built-in tool")
        for kind in TOOL_KINDS[1:]:
            if kind in tool:
                _object(tool[kind], f"{where}.{_snake(kind)}", kind[0].upper() + kind[1:])
        if "functionDeclarations" not in tool:
            continue
        declarations = _list(tool["functionDeclarations"], f"{where}.function_declarations")
        for j, declaration in enumerate(declarations):
            inner = f"{where}.function_declarations[{j}]"
            _only(_object(declaration, inner, "FunctionDeclaration"), DECLARATION_FIELDS, inner)
            name = declaration.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                raise Invalid(
                    f"* GenerateContentRequest.{inner}.name: Invalid function name. Must start with a letter or an "
                    "underscore. Must be alphanumeric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or "
                    "dashes (-), with a maximum length of 64."
                )
            if name in names:
                raise Invalid(f"* GenerateContentRequest.tools: Duplicate function declaration found: {name}")
            names.append(name)
            if "description" in declaration and not isinstance(declaration["description"], str):
                raise _bad_value(f"{inner}.description", "TYPE_STRING", declaration["description"])
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise Invalid(
                    f"* GenerateContentRequest.{inner}: parameters and parameters_json_schema cannot both be set"
                )
            for key in ("parameters", "parametersJsonSchema", "response", "responseJsonSchema"):
                if key in declaration:
                    _validate_schema(declaration[key], f"{inner}.{_snake(key)}")
    return names


def _validate_tool_config(config: Any, names: list[str]) -> None:
    _only(_object(config, "tool_config", "ToolConfig"), ("functionCallingConfig",), "tool_config")
    if "functionCallingConfig" not in config:
        return
    where = "tool_config.function_calling_config"
    calling = _object(config["functionCallingConfig"], where, "FunctionCallingConfig")
    _only(calling, ("mode", "allowedFunctionNames"), where)
    mode = calling.get("mode", "AUTO")
    if mode not in FUNCTION_CALLING_MODES:
        raise _bad_value(f"{where}.mode", PROTO + "Mode", mode)
    if "allowedFunctionNames" in calling:
        allowed = _list(calling["allowedFunctionNames"], f"{where}.allowed_function_names")
        if mode not in ("ANY", "VALIDATED"):
            raise Invalid(
                f"* GenerateContentRequest.{where}.allowed_function_names: only allowed when mode is ANY or VALIDATED."
            )
        for name in allowed:
            if name not in names:
                raise Invalid(
                    f"* GenerateContentRequest.{where}.allowed_function_names: function {name!r} is not declared."
                )
    if mode in ("ANY", "VALIDATED") and not names:
        raise Invalid(f"* GenerateContentRequest.{where}.mode: {mode} requires function declarations.")


def _number_in(config: dict[str, Any], key: str, low: float | None, high: float | None, integer: bool) -> None:
    if key not in config:
        return
    value = config[key]
    where = f"generation_config.{_snake(key)}"
    if not (_is_int(value) if integer else _is_number(value)):
        raise _bad_value(where, "TYPE_INT32" if integer else "TYPE_FLOAT", value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise Invalid(f"* GenerateContentRequest.{where}: {key} must be in the range {bounds}, got {value}")


def _validate_generation_config(config: Any) -> None:
    where = "generation_config"
    _only(_object(config, where, "GenerationConfig"), GENERATION_CONFIG_FIELDS, where)
    _number_in(config, "temperature", 0, 2, integer=False)
    _number_in(config, "topP", 0, 1, integer=False)
    _number_in(config, "topK", 0, None, integer=True)
    _number_in(config, "candidateCount", 1, 8, integer=True)
    _number_in(config, "maxOutputTokens", 1, None, integer=True)
    _number_in(config, "presencePenalty", None, None, integer=False)
    _number_in(config, "frequencyPenalty", None, None, integer=False)
    _number_in(config, "seed", None, None, integer=True)
    _number_in(config, "logprobs", 0, 20, integer=True)
    if "responseLogprobs" in config and not isinstance(config["responseLogprobs"], bool):
        raise _bad_value(f"{where}.response_logprobs", "TYPE_BOOL", config["responseLogprobs"])
    if "stopSequences" in config:
        stops = _list(config["stopSequences"], f"{where}.stop_sequences")
        if not all(isinstance(s, str) and s for s in stops):
            raise Invalid(f"* GenerateContentRequest.{where}.stop_sequences: stop sequences must be non-empty strings")
        if len(stops) > 5:
            raise Invalid(f"* GenerateContentRequest.{where}.stop_sequences: at most 5 stop sequences are allowed")
    mime = config.get("responseMimeType", "text/plain")
    if mime not in RESPONSE_MIME_TYPES:
        raise Invalid(
            f"* GenerateContentRequest.{where}.response_mime_type: allowed mimetypes are `text/plain`, "
            "`application/json`, `application/xml`, `application/yaml` and `text/x.enum`."
        )
    if "responseSchema" in config and "responseJsonSchema" in config:
        raise Invalid(f"* GenerateContentRequest.{where}: response_schema and response_json_schema cannot both be set")
    if "responseSchema" in config:
        _validate_schema(config["responseSchema"], f"{where}.response_schema")
    if "responseJsonSchema" in config:
        _object(config["responseJsonSchema"], f"{where}.response_json_schema", "Value")
    if ("responseSchema" in config or "responseJsonSchema" in config) and mime not in (
        "application/json",
        "text/x.enum",
    ):
        raise Invalid(
            f"* GenerateContentRequest.{where}.response_mime_type: a response schema needs response_mime_type "
            "application/json or text/x.enum"
        )
    if "thinkingConfig" in config:
        inner = f"{where}.thinking_config"
        thinking = _object(config["thinkingConfig"], inner, "ThinkingConfig")
        _only(thinking, ("thinkingBudget", "includeThoughts", "thinkingLevel"), inner)
        if "thinkingBudget" in thinking and not _is_int(thinking["thinkingBudget"]):
            raise _bad_value(f"{inner}.thinking_budget", "TYPE_INT32", thinking["thinkingBudget"])
        if "includeThoughts" in thinking and not isinstance(thinking["includeThoughts"], bool):
            raise _bad_value(f"{inner}.include_thoughts", "TYPE_BOOL", thinking["includeThoughts"])
        if "thinkingLevel" in thinking and thinking["thinkingLevel"] not in ("MINIMAL", "LOW", "MEDIUM", "HIGH"):
            raise _bad_value(f"{inner}.thinking_level", "ThinkingLevel", thinking["thinkingLevel"])


def _validate_safety_settings(settings: Any) -> None:
    for i, setting in enumerate(_list(settings, "safety_settings")):
        where = f"safety_settings[{i}]"
        _only(_object(setting, where, "SafetySetting"), ("category", "threshold"), where)
        if setting.get("category") not in HARM_CATEGORIES:
            raise _bad_value(
                f"{where}.category",
                PROTO + "HarmCategory",
                setting.get("category"),
            )
        if setting.get("threshold") not in HARM_THRESHOLDS:
            raise _bad_value(
                f"{where}.threshold",
                PROTO + "HarmBlockThreshold",
                setting.get("threshold"),
            )


def validate_count_tokens(body: Any) -> dict[str, Any]:
    """The GenerateContentRequest-shaped body whose prompt countTokens counts."""
    if not isinstance(body, dict):
        raise Invalid("Invalid JSON payload received. Expected an object.")
    _only(body, ("contents", "generateContentRequest"), "")
    if "contents" in body and "generateContentRequest" in body:
        raise Invalid("* CountTokensRequest: contents and generate_content_request cannot both be set")
    if "generateContentRequest" not in body:
        _validate_contents(body.get("contents"))
        return body
    inner = body["generateContentRequest"]
    validate_generate(inner, extra_fields=("model",))
    model = inner.get("model")
    if not isinstance(model, str) or not model.startswith("models/") or len(model) == len("models/"):
        raise Invalid("* CountTokensRequest.generate_content_request.model: unexpected model name format")
    return inner


# ---- the reply ---------------------------------------------------------------------------------------------------


def _last_user(contents: list[dict[str, Any]]) -> dict[str, Any]:
    return next((c for c in reversed(contents) if c.get("role") == "user"), {})


def directives_of(contents: list[dict[str, Any]]) -> dict[str, str]:
    return {name: value or "" for name, value in _DIRECTIVE.findall(text_of(_last_user(contents)))}


def thinks(body: dict[str, Any], directives: dict[str, str]) -> tuple[bool, bool]:
    """(whether the model thinks, whether it shows the thought)."""
    thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    shown = "thinking" in directives or thinking.get("includeThoughts") is True
    budget = thinking.get("thinkingBudget")
    return shown or (_is_int(budget) and budget > 0), shown


def reply_text(body: dict[str, Any], index: int) -> tuple[str, str]:
    """The text of candidate `index` and its finishReason."""
    config = body.get("generationConfig") or {}
    last_user = _last_user(body["contents"])
    parts = last_user.get("parts") or []
    images = sum(1 for p in parts if "inlineData" in p or "fileData" in p)
    echo = _DIRECTIVE.sub("", text_of(last_user)).split()
    words = ["You", "said:", *echo] + ([f"({images}", "images)"] if images else []) + ([f"#{index}"] if index else [])
    limit = config.get("maxOutputTokens")
    limit = int(limit) if limit is not None else len(words)
    stops = config.get("stopSequences") or []
    # The model writes word by word: whichever comes first ends the reply, a stop sequence or maxOutputTokens.
    for position, word in enumerate(words[:limit]):
        if word in stops:
            return " ".join(words[:position]), "STOP"
    if len(words) > limit:
        return " ".join(words[:limit]), "MAX_TOKENS"
    return " ".join(words), "STOP"


def function_call_part(name: str, index: int) -> dict[str, Any]:
    return {"functionCall": {"name": name, "args": {"city": "Paris", "n": index}}}


def first_function(body: dict[str, Any]) -> str:
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            return declaration["name"]
    return DEFAULT_TOOL


def build_candidates(body: dict[str, Any], directives: dict[str, str]) -> list[tuple[list[dict[str, Any]], str]]:
    """Each candidate's parts and finishReason (not for safety / blocked)."""
    config = body.get("generationConfig") or {}
    _, shown = thinks(body, directives)
    candidates = []
    for index in range(int(config.get("candidateCount", 1))):
        parts: list[dict[str, Any]] = [{"text": THINKING_TEXT, "thought": True}] if shown else []
        finish = "STOP"
        if "tools" in directives:
            count = max(1, int(directives["tools"] or 1))
            name = first_function(body)
            parts.append({"text": TOOLS_PREAMBLE})
            parts.extend(function_call_part(name, i) for i in range(count))
        elif "json" in directives or config.get("responseMimeType") == "application/json":
            parts.append({"text": JSON_REPLY})
        else:
            text, finish = reply_text(body, index)
            if text:
                parts.append({"text": text})
        candidates.append((parts, finish))
    return candidates


def _content(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A model turn; without parts just the role, as Gemini sends a turn that ends with nothing new."""
    return {"role": "model", "parts": parts} if parts else {"role": "model"}


def _split(text: str, pieces: int | None) -> list[str]:
    """`text` as consecutive pieces of whole words (the first without, the others with a leading space)."""
    words = text.split(" ")
    per = max(1, -(-len(words) // max(pieces or len(words), 1)))
    return [("" if start == 0 else " ") + " ".join(words[start : start + per]) for start in range(0, len(words), per)]


def stream_pieces(parts: list[dict[str, Any]], chunks: int | None) -> list[list[dict[str, Any]]]:
    """The parts of one candidate, chunk by chunk: a thought alone, the text in pieces (the text before function
    calls whole), all the calls together, and after calls an empty last chunk."""
    calls = [p for p in parts if "functionCall" in p]
    pieces: list[list[dict[str, Any]]] = []
    for part in parts:
        if "functionCall" in part:
            continue
        if part.get("thought") or calls:
            pieces.append([part])
        else:
            pieces.extend([{"text": piece}] for piece in _split(part["text"], chunks))
    if calls:
        pieces.extend([calls, []])
    return pieces or [[]]


def _authenticate(request: web.Request) -> web.Response | None:
    """The key goes in `x-goog-api-key` (what the google-genai SDK sends) or in `?key=`; the header decides."""
    key = request.headers.get("x-goog-api-key", request.query.get("key"))
    if key != GEMINI_UPSTREAM_SECRET:
        return _invalid_key()
    return None


class FakeGemini(FakeServer):
    """The Gemini API under v1beta and v1; its base URL has no version, as google-genai takes it."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/img/red.png", self.red_png)
        app.router.add_get("/img/redirect", self.redirect)
        app.router.add_get("/{version}/models", self.list_models)
        app.router.add_get("/{version}/models/{model}", self.get_model)
        app.router.add_post("/{version}/models/{target}", self.dispatch)
        app.router.add_route("*", "/{tail:.*}", self.not_found)

    def error_response(self, status: int) -> web.Response:
        return _directed_error(status, "the-model", "v1beta")

    # ---- plumbing ---------------------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> bytes:
        raw = await request.read()
        self.state.requests.append(Received(request.path_qs, dict(request.headers), raw))
        return raw

    @staticmethod
    def _route_error(request: web.Request) -> web.Response | None:
        version = request.match_info["version"]
        if version not in VERSIONS:
            return _google_error(404, f"API version {version} is not supported. Use v1beta or v1.")
        return None

    async def not_found(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _google_error(404, f"Requested entity was not found: {request.method} {request.path}")

    async def red_png(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(body=RED_PNG, content_type="image/png")

    async def redirect(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPFound("/img/red.png")

    # ---- models -----------------------------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (refused := self._route_error(request) or _authenticate(request)) is not None:
            return refused
        try:
            size = int(request.query.get("pageSize") or 50)
            start = int(request.query.get("pageToken") or 0)
        except ValueError:
            return _google_error(400, "Invalid value for pageSize or pageToken.")
        if size < 1:
            return _google_error(400, "* ListModelsRequest.page_size: must be positive")
        reply: dict[str, Any] = {"models": list(MODELS[start : start + size])}
        if start + size < len(MODELS):
            reply["nextPageToken"] = str(start + size)
        return web.json_response(reply)

    async def get_model(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (refused := self._route_error(request) or _authenticate(request)) is not None:
            return refused
        name = f"models/{request.match_info['model']}"
        for model in MODELS:
            if model["name"] == name:
                return web.json_response(model)
        return _google_error(404, f"{name} is not found for API version {request.match_info['version']}")

    # ---- generateContent, streamGenerateContent, countTokens ---------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await self._record(request)
        if (refused := self._route_error(request) or _authenticate(request)) is not None:
            return refused
        model, _, method = request.match_info["target"].partition(":")
        handlers = {
            "generateContent": self.generate,
            "streamGenerateContent": self.generate,
            "countTokens": self.count_tokens,
        }
        if not model or method not in handlers:
            return _google_error(404, f"Method {method or '(none)'} is not found for models/{model}.")
        try:
            body = normalize(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return _google_error(400, "Invalid JSON payload received. Unexpected token.")
        except Invalid as problem:
            return _google_error(400, str(problem))
        return await handlers[method](request, body, model, method)

    @staticmethod
    async def _steer(contents: list[dict[str, Any]], model: str, version: str) -> web.Response | None:
        directives = directives_of(contents)
        if "sleep" in directives:
            await asyncio.sleep(float(directives["sleep"]))
        if "error" in directives:
            return _directed_error(int(directives["error"]), model, version)
        return None

    async def count_tokens(self, request: web.Request, body: Any, model: str, method: str) -> web.Response:
        try:
            counted = validate_count_tokens(body)
        except Invalid as problem:
            return _google_error(400, str(problem))
        if (steered := await self._steer(counted["contents"], model, request.match_info["version"])) is not None:
            return steered
        return web.json_response({"totalTokens": prompt_tokens_of(counted)})

    async def generate(self, request: web.Request, body: Any, model: str, method: str) -> web.StreamResponse:
        stream = method == "streamGenerateContent"
        alt = request.query.get("alt", "json")
        if stream and alt not in ("sse", "json"):
            return _google_error(400, f"Invalid value at 'alt' (TYPE_ENUM), \"{alt}\"")
        try:
            validate_generate(body)
        except Invalid as problem:
            return _google_error(400, str(problem))
        if (steered := await self._steer(body["contents"], model, request.match_info["version"])) is not None:
            return steered
        directives = directives_of(body["contents"])
        cached = int(directives.get("cached") or 0)
        prompt = prompt_tokens_of(body) + cached
        common = {"modelVersion": model, "responseId": f"fake-{next(self._ids)}"}
        if "blocked" in directives or "safety" in directives:
            if "blocked" in directives:
                reply = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": SAFETY_RATINGS}}
            else:
                reply = {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": SAFETY_RATINGS}]}
            reply = {**reply, "usageMetadata": usage_metadata(prompt, 0, 0, cached), **common}
            if stream:
                return await self._stream(request, [reply], directives, alt)
            return web.json_response(reply)

        candidates = build_candidates(body, directives)
        thinking, shown = thinks(body, directives)
        # A model that thinks without showing it still reports the thought's tokens.
        hidden_thoughts = words_in(THINKING_TEXT) * len(candidates) if thinking and not shown else 0
        if not stream:
            produced = [output_tokens_of(parts) for parts, _ in candidates]
            reply = {
                "candidates": [
                    {"content": _content(parts), "finishReason": finish, "index": index}
                    for index, (parts, finish) in enumerate(candidates)
                ],
                "usageMetadata": usage_metadata(
                    prompt,
                    sum(c for c, _ in produced),
                    sum(t for _, t in produced) + hidden_thoughts,
                    cached,
                ),
                **common,
            }
            return web.json_response(reply)

        chunk_count = int(directives["chunks"]) if directives.get("chunks") else None
        pieces = [stream_pieces(parts, chunk_count) for parts, _ in candidates]
        total = max(len(p) for p in pieces)
        chunks = []
        emitted: list[dict[str, Any]] = []
        for k in range(total):
            last = k == total - 1
            chunk_candidates = []
            for index, (candidate_pieces, (_, finish)) in enumerate(zip(pieces, candidates, strict=True)):
                if k >= len(candidate_pieces) and not last:
                    continue
                parts = candidate_pieces[k] if k < len(candidate_pieces) else []
                emitted.extend(parts)
                candidate: dict[str, Any] = {"content": _content(parts)}
                if last:
                    candidate["finishReason"] = finish
                candidate["index"] = index
                chunk_candidates.append(candidate)
            produced, thoughts = output_tokens_of(emitted)
            usage = usage_metadata(prompt, produced, thoughts + hidden_thoughts, cached)
            chunks.append({"candidates": chunk_candidates, "usageMetadata": usage, **common})
        return await self._stream(request, chunks, directives, alt)

    async def _stream(
        self, request: web.Request, chunks: list[dict[str, Any]], directives: dict[str, str], alt: str
    ) -> web.StreamResponse:
        sse = alt == "sse"
        content_type = "text/event-stream" if sse else "application/json; charset=UTF-8"
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        written = 0

        async def write(chunk: dict[str, Any]) -> None:
            nonlocal written
            data = orjson.dumps(chunk)
            if sse:
                await response.write(b"data: " + data + b"\r\n\r\n")
            else:
                await response.write((b"[" if written == 0 else b"\r\n,") + data)
            written += 1

        try:
            if "slow" in directives:
                tick = {**chunks[0], "candidates": [{"content": _content([{"text": " tick"}]), "index": 0}]}
                tick.pop("promptFeedback", None)
                for _ in range(SLOW_TICKS):
                    await write(tick)
                    await asyncio.sleep(0.1)
            for chunk in chunks:
                await write(chunk)
                if "cut" in directives and written == 2:
                    # Drop the connection mid-stream: no last chunk, no end of the chunked body.
                    request.transport.close()  # type: ignore[union-attr]
                    return response
            if not sse:
                await response.write(b"\r\n]")
            await response.write_eof()
            self.state.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.state.cancelled_streams += 1
            raise
        return response
