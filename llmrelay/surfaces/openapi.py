"""GET /openapi.json: an OpenAPI 3.1 description of every endpoint the gateway serves.

The document is built here, as data, from small helpers, and encoded once: the handler answers with the
same cached bytes every time, without authentication.

Request bodies describe the fields the gateway itself validates (a request that breaks them gets a 400
naming the field before anything is sent upstream or billed); every other field is the upstream's to
judge, so request objects leave `additionalProperties` open. Replies relayed from an upstream are described
by the fields every client relies on, also left open. Errors have the shape of the API the client spoke:
OpenAI's on the OpenAI API, the billing and admin endpoints; Anthropic's on /v1/messages; Google's on the
Gemini API; on the shared model listing (/v1/models), whichever the caller speaks. An upstream's own error
status (any 4xx or 5xx) reaches the client in that shape, which is why the operations that call an
upstream also document the `4XX` and `5XX` ranges.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay import __version__
from llmrelay.store.keys import MAX_LIMIT
from llmrelay.surfaces.http import HttpRequest

if TYPE_CHECKING:
    from llmrelay.app import Gateway

Schema = dict[str, Any]

OPENAI_TAG, ANTHROPIC_TAG, GEMINI_TAG = "OpenAI API", "Anthropic API", "Gemini API"
BILLING_TAG, ADMIN_TAG, OPS_TAG = "Balance", "Admin", "Operations"

# Security requirements (alternatives: any one of them is enough).
BEARER = [{"bearerAuth": []}]
ANTHROPIC_KEYS = [{"anthropicApiKey": []}, {"bearerAuth": []}]
GEMINI_KEYS = [{"googApiKey": []}, {"googApiKeyQuery": []}, {"bearerAuth": []}]
ANY_KEY = [{"bearerAuth": []}, {"anthropicApiKey": []}, {"googApiKey": []}, {"googApiKeyQuery": []}]
ADMIN = [{"adminBearer": []}]
NO_AUTH: list[dict[str, list[str]]] = []

# A model name as it appears in a Gemini URL: `{model}` runs up to the next `/` or `:`, and a name made of
# dots alone would be a path segment that URL normalisation removes.
GEMINI_MODEL_PATTERN = r"^[^/:]*[^/:.][^/:]*$"
EXAMPLE_MODELS = ["gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.0-flash"]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null: the gateway reads an explicit null as the field's absence."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: Schema, required: tuple[str, ...] = (), *, closed: bool = False, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: Schema, min_items: int = 0, **extra: Any) -> Schema:
    schema: Schema = {"type": "array", "items": items, **extra}
    if min_items:
        schema["minItems"] = min_items
    return schema


STRING: Schema = {"type": "string"}
NON_EMPTY: Schema = {"type": "string", "minLength": 1}
INTEGER: Schema = {"type": "integer"}
POSITIVE: Schema = {"type": "integer", "minimum": 1}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
USD: Schema = {
    "type": "number",
    "minimum": 0,
    "description": "US dollars, written exactly (a decimal number, never rounded); never negative.",
}
LIMIT: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}


def key_limits(null: str) -> dict[str, Schema]:
    """A key's rate limits, as the key JSON shows them and the admin API takes them; `null` says what null
    does."""
    return {
        "rpm": nullable({**LIMIT, "description": f"Requests per minute; {null}"}),
        "tpm": nullable({**LIMIT, "description": f"Tokens per minute (prompt and completion); {null}"}),
        "max_parallel": nullable({**LIMIT, "description": f"Requests in flight at once; {null}"}),
    }


BINARY: Schema = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}
MODEL: Schema = {**NON_EMPTY, "description": "A model the gateway serves.", "examples": EXAMPLE_MODELS}


# ------------------------------------------------------------------------------------------------- errors

ERROR_SCHEMAS: dict[str, Schema] = {
    "OpenAIError": obj(
        {
            "error": obj(
                {
                    "message": STRING,
                    "type": STRING,
                    "param": nullable(STRING),
                    "code": nullable(STRING),
                },
                ("message", "type", "param", "code"),
                closed=True,
            )
        },
        ("error",),
        description="OpenAI's error shape; `param` names the offending field, `code` is machine-readable.",
    ),
    "AnthropicError": obj(
        {
            "type": {"const": "error"},
            "error": obj(
                {
                    "type": {
                        "enum": [
                            "invalid_request_error",
                            "authentication_error",
                            "billing_error",
                            "permission_error",
                            "not_found_error",
                            "request_too_large",
                            "rate_limit_error",
                            "api_error",
                            "timeout_error",
                            "overloaded_error",
                        ]
                    },
                    "message": STRING,
                },
                ("type", "message"),
                closed=True,
            ),
        },
        ("type", "error"),
        description="Anthropic's error shape (the anthropic SDK raises the exception class of `error.type`).",
    ),
    "GeminiError": obj(
        {
            "error": obj(
                {
                    "code": INTEGER,
                    "message": STRING,
                    "status": {
                        "enum": [
                            "INVALID_ARGUMENT",
                            "UNAUTHENTICATED",
                            "PERMISSION_DENIED",
                            "NOT_FOUND",
                            "ABORTED",
                            "RESOURCE_EXHAUSTED",
                            "INTERNAL",
                            "UNIMPLEMENTED",
                            "UNAVAILABLE",
                            "DEADLINE_EXCEEDED",
                        ]
                    },
                },
                ("code", "message", "status"),
                closed=True,
            )
        },
        ("error",),
        description="Google's error shape (google-genai raises ClientError / ServerError from it).",
    ),
}

RESPONSE_HEADERS: Schema = {
    "x-request-id": {"$ref": "#/components/headers/RequestId"},
    "x-llmrelay-overhead-ms": {"$ref": "#/components/headers/Overhead"},
}

ERROR_SHAPES: dict[str, tuple[str, Schema]] = {
    "OpenAI": ("OpenAI's shape", ref("OpenAIError")),
    "Anthropic": ("Anthropic's shape", ref("AnthropicError")),
    "Gemini": ("Google's shape", ref("GeminiError")),
    "Caller": (
        "the caller's API's shape: Google's with a Gemini key (`x-goog-api-key` or `?key=`), Anthropic's with an "
        "`anthropic-version` header, else OpenAI's",
        {"anyOf": [ref("OpenAIError"), ref("AnthropicError"), ref("GeminiError")]},
    ),
}

STATUS_TEXT = {
    "400": "Malformed request: bad JSON, or a missing, mistyped or unsupported field (the message names it). "
    "Nothing is sent upstream or billed.",
    "401": "No key, an unknown key, or a disabled or expired one.",
    "402": "The key's quota cannot cover the request (Anthropic's `billing_error`).",
    "403": "The admin API is off (no admin key is configured).",
    "404": "Unknown model, a model the key may not use or that has no price, or an unknown resource.",
    "408": "The request body did not arrive in full within `limits.body_timeout`.",
    "413": "The body is larger than `limits.max_body_bytes` (an audio upload: larger than 25 MB).",
    "429": "The key's quota cannot cover the request, the key is over one of its rate limits (with Retry-After), "
    "or the upstream's rate limit (with the upstream's Retry-After, retry-after-ms and x-ratelimit-* headers).",
    "4XX": "Any other client error an upstream answered with, relayed with its status.",
    "502": "The upstream could not be reached, rejected the gateway's credentials, or answered unreadably.",
    "503": "No channel of the model can take the request now (all resting after failures, at their "
    "max_parallel, or disabled; with Retry-After), or the gateway is shutting down.",
    "504": "The upstream did not answer in time.",
    "5XX": "Any other server error an upstream answered with, relayed with its status.",
}
# Refused by the HTTP server before any route is chosen: always OpenAI's shape, without the timing headers.
HEADERS_TOO_LARGE: Schema = {
    "description": "The request's headers are too large or too many. In OpenAI's shape, whatever the API.",
    "content": {"application/json": {"schema": ref("OpenAIError")}},
}
TAG_SHAPES = {ANTHROPIC_TAG: "Anthropic", GEMINI_TAG: "Gemini"}

# What every operation that calls an upstream may answer besides success.
RELAYED = ("400", "401", "404", "413", "429", "4XX", "502", "503", "504", "5XX")


def error_response(shape: str, code: str) -> Schema:
    """components/responses/<shape><code>: an error of one status in one API's shape."""
    description, schema = ERROR_SHAPES[shape]
    return {
        "description": f"{STATUS_TEXT[code]} In {description}.",
        "headers": RESPONSE_HEADERS,
        "content": {"application/json": {"schema": schema}},
    }


def errors(shape: str, codes: tuple[str, ...]) -> dict[str, Schema]:
    """References to the error responses `codes` in one API's shape."""
    return {code: {"$ref": f"#/components/responses/{shape}{code}"} for code in codes}


def error_components(paths: dict[str, Schema]) -> dict[str, Schema]:
    """The error responses `paths` refer to."""
    used = set(re.findall(r"#/components/responses/(\w+)", orjson.dumps(paths).decode()))
    found = {f"{shape}{code}": error_response(shape, code) for shape in ERROR_SHAPES for code in STATUS_TEXT}
    return {name: response for name, response in found.items() if name in used} | {"HeadersTooLarge": HEADERS_TOO_LARGE}


def ok(schema: Schema, description: str, media: str = "application/json", **more_media: Schema) -> Schema:
    content = {media: {"schema": schema}, **{name: {"schema": s} for name, s in more_media.items()}}
    return {"description": description, "headers": RESPONSE_HEADERS, "content": content}


def json_text(schema: Schema) -> Schema:
    """A string holding JSON that matches `schema` (an event's `data`)."""
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


def sse_event(data: Schema, event: Schema | None = None) -> Schema:
    """One server-sent event (as `text/event-stream` schemas describe each event): `data` is JSON text."""
    properties: Schema = {"data": data, "id": STRING, "retry": INTEGER}
    required: tuple[str, ...] = ("data",)
    if event is not None:
        properties["event"] = event
        required = ("event", "data")
    return obj(properties, required, description="One server-sent event; events are relayed as they arrive.")


def openai_stream(chunk: str) -> Schema:
    """An OpenAI stream's events: chunks, a final `[DONE]`, or an error if the stream broke off."""
    return sse_event({"anyOf": [{"const": "[DONE]"}, json_text({"anyOf": [ref(chunk), ref("OpenAIError")]})]})


ANTHROPIC_EVENTS = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
]
ANTHROPIC_STREAM: Schema = {
    "anyOf": [
        sse_event(json_text(obj({"type": {"enum": ANTHROPIC_EVENTS}}, ("type",))), {"enum": ANTHROPIC_EVENTS}),
        sse_event(json_text(ref("AnthropicError")), {"const": "error"}),
    ]
}
# A Gemini stream element: a reply, or the error that ends a stream which failed after it began.
GEMINI_STREAM_ITEM: Schema = {
    "anyOf": [ref("GeminiError"), {"allOf": [ref("GenerateContentResponse"), {"not": {"required": ["error"]}}]}]
}


# ------------------------------------------------------------------------------------ OpenAI API: requests

STREAM_FIELDS: Schema = {
    "stream": nullable(BOOLEAN),
    "stream_options": nullable(
        obj(
            {"include_usage": {"description": "true: the stream ends with a usage chunk."}},
            description="Passed on; llmrelay always asks the upstream for usage.",
        )
    ),
}
PROMPT: Schema = {
    "anyOf": [
        STRING,
        array(STRING, 1),
        array(INTEGER, 1),
        array(array(INTEGER, 1), 1),
    ],
    "description": "A string, an array of strings, an array of token ids, or an array of token id arrays.",
}
EMBEDDING_INPUT: Schema = {
    "anyOf": [
        NON_EMPTY,
        array(NON_EMPTY, 1),
        array(INTEGER, 1),
        array(array(INTEGER, 1), 1),
    ],
    "description": "Non-empty strings or token ids, as for `prompt`.",
}
IMAGE_OPTIONS: Schema = {
    "n": nullable({**POSITIVE, "description": "dall-e-3: at most 1; dall-e-2: at most 10."}),
    "size": nullable(
        {
            **STRING,
            "description": "dall-e-3: 1024x1024, 1792x1024 or 1024x1792; dall-e-2: 256x256, 512x512 or 1024x1024; "
            "other models: a size their price lists. Default 1024x1024.",
            "examples": ["1024x1024", "512x512"],
        }
    ),
    "quality": nullable({"enum": ["standard", "hd"], "description": "hd: dall-e-3 (and models priced for it)."}),
    "response_format": nullable({"enum": ["url", "b64_json"]}),
    "style": {"description": "dall-e-3: vivid or natural (other models: the upstream's to judge)."},
}

OPENAI_REQUESTS: dict[str, Schema] = {
    "ChatCompletionRequest": obj(
        {
            "model": MODEL,
            "messages": array(
                obj(
                    {
                        "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
                        "content": {"description": "A string or an array of content parts (text, image_url)."},
                    },
                    ("role",),
                ),
                1,
            ),
            **STREAM_FIELDS,
            "max_tokens": nullable(POSITIVE),
            "max_completion_tokens": nullable(POSITIVE),
            "n": nullable(POSITIVE),
        },
        ("model", "messages"),
        description="Every other field of OpenAI's chat completions API (tools, response_format, sampling, "
        "...) is passed on for the upstream to judge. o1-family models refuse sampling parameters other than "
        "their defaults (400).",
        examples=[{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}],
    ),
    "CompletionRequest": obj(
        {
            "model": MODEL,
            "prompt": PROMPT,
            **STREAM_FIELDS,
            "max_tokens": nullable({**POSITIVE, "description": "Default 16."}),
            "n": nullable(POSITIVE),
            "best_of": nullable(POSITIVE),
        },
        ("model",),
        examples=[{"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 7}],
    ),
    "EmbeddingRequest": obj(
        {
            "model": MODEL,
            "input": EMBEDDING_INPUT,
            "encoding_format": nullable({"enum": ["float", "base64"]}),
            "dimensions": nullable(POSITIVE),
        },
        ("model", "input"),
        examples=[{"model": "text-embedding-3-small", "input": "The food was delicious."}],
    ),
    "ImageGenerationRequest": obj(
        {
            "model": nullable({**STRING, "description": "Default dall-e-2.", "examples": ["dall-e-3", "dall-e-2"]}),
            "prompt": {**NON_EMPTY, "description": "dall-e-3: at most 4000 characters; dall-e-2: at most 1000."},
            **IMAGE_OPTIONS,
        },
        ("prompt",),
        examples=[{"model": "dall-e-2", "prompt": "a lighthouse at dawn", "size": "256x256"}],
    ),
    "ImageEditRequest": obj(
        {
            "image": {**BINARY, "description": "The image to edit (a PNG)."},
            "mask": BINARY,
            "prompt": NON_EMPTY,
            "model": {**STRING, "description": "Default dall-e-2."},
            **IMAGE_OPTIONS,
        },
        ("image", "prompt"),
    ),
    "ImageVariationRequest": obj(
        {
            "image": {**BINARY, "description": "The image to vary (a PNG)."},
            "model": {**STRING, "description": "Default dall-e-2."},
            **IMAGE_OPTIONS,
        },
        ("image",),
    ),
    "SpeechRequest": obj(
        {
            "model": MODEL,
            "input": {**NON_EMPTY, "maxLength": 4096},
            "voice": NON_EMPTY,
            "response_format": nullable({"enum": ["mp3", "opus", "aac", "flac", "wav", "pcm"]}),
            "speed": nullable({**NUMBER, "minimum": 0.25, "maximum": 4}),
        },
        ("model", "input", "voice"),
        examples=[{"model": "tts-1", "voice": "alloy", "input": "Hello there!"}],
    ),
    "TranscriptionRequest": obj(
        {
            "file": {
                **BINARY,
                "description": "Audio up to 25 MB: flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav or webm.",
            },
            "model": NON_EMPTY,
            "response_format": {"enum": ["json", "text", "srt", "verbose_json", "vtt"]},
            "temperature": {**NUMBER, "minimum": 0, "maximum": 1},
            "language": STRING,
            "prompt": STRING,
            "timestamp_granularities[]": array({"enum": ["word", "segment"]}),
        },
        ("file", "model"),
    ),
    "ModerationRequest": obj(
        {
            "model": {**NON_EMPTY, "description": "Default omni-moderation-latest."},
            "input": {
                "anyOf": [NON_EMPTY, array({}, 1)],
                "description": "A string, or an array of strings or content parts.",
            },
        },
        ("input",),
        examples=[{"input": "some text to check"}],
    ),
}

# ----------------------------------------------------------------------------------- OpenAI API: replies

OPENAI_REPLIES: dict[str, Schema] = {
    "ChatCompletion": obj(
        {
            "id": STRING,
            "object": {"const": "chat.completion"},
            "created": INTEGER,
            "model": STRING,
            "choices": array(obj({"index": INTEGER, "message": OBJECT, "finish_reason": nullable(STRING)})),
            "usage": OBJECT,
        },
        ("id", "object", "choices"),
    ),
    "ChatCompletionChunk": obj(
        {
            "id": STRING,
            "object": {"const": "chat.completion.chunk"},
            "created": INTEGER,
            "model": STRING,
            "choices": array(obj({"index": INTEGER, "delta": OBJECT, "finish_reason": nullable(STRING)})),
            "usage": nullable(OBJECT),
        },
        ("object", "choices"),
    ),
    "Completion": obj(
        {
            "id": STRING,
            "object": {"const": "text_completion"},
            "model": STRING,
            "choices": array(obj({"index": INTEGER, "text": STRING, "finish_reason": nullable(STRING)})),
            "usage": OBJECT,
        },
        ("id", "object", "choices"),
    ),
    "EmbeddingList": obj(
        {
            "object": {"const": "list"},
            "data": array(
                obj(
                    {
                        "object": {"const": "embedding"},
                        "index": INTEGER,
                        "embedding": {"anyOf": [array(NUMBER), STRING]},
                    },
                    ("embedding",),
                )
            ),
            "model": STRING,
            "usage": OBJECT,
        },
        ("data",),
    ),
    "ImagesResponse": obj(
        {"created": INTEGER, "data": array(obj({"url": STRING, "b64_json": STRING, "revised_prompt": STRING}))},
        ("data",),
    ),
    "Transcription": obj({"text": STRING, "duration": NUMBER}, ("text",)),
    "ModerationResponse": obj({"id": STRING, "model": STRING, "results": array(OBJECT)}, ("results",)),
    "Model": obj(
        {"id": STRING, "object": {"const": "model"}, "created": INTEGER, "owned_by": STRING},
        ("id", "object", "created", "owned_by"),
    ),
    "ModelList": obj({"object": {"const": "list"}, "data": array(ref("Model"))}, ("object", "data")),
}


# ------------------------------------------------------------------------------ OpenAI API: Responses API

# What llmrelay/formats/responses.py `responses_to_chat` checks, for every model (a request it refuses gets a
# 400 naming the field, for an OpenAI channel too): the types below. Item, part, tool and tool choice types
# it does not translate (built-in tools, hosted tools' calls, item references, files, ...) are valid here:
# an OpenAI channel is sent them as written, and a model served by translation refuses them with a 400.
RESPONSE_MESSAGE_TYPE: Schema = {"enum": ["message", None], "description": "May be left out."}
TRANSLATED_PARTS = ["input_text", "input_image"]
TRANSLATED_ITEMS = ["message", "function_call", "function_call_output", "reasoning"]
TOOL_CHOICE_MODES: Schema = {"enum": ["auto", "none", "required"]}
RESPONSE_EVENT_NAME: Schema = {
    **STRING,
    "description": "The event's `type`.",
    "examples": ["response.created", "response.output_text.delta", "response.completed", "error"],
}
# The events whose `response` is the Response as it stands.
RESPONSE_LIFECYCLE_EVENTS = [
    "response.created",
    "response.queued",
    "response.in_progress",
    "response.completed",
    "response.incomplete",
    "response.failed",
]
NAMED_FUNCTION: Schema = obj({"type": {"const": "function"}, "name": NON_EMPTY}, ("type", "name"))


def other_type(known: list[str], what: str) -> Schema:
    """An object of a `type` other than the `known` ones: passed on to an OpenAI channel as written."""
    return obj(
        {"type": {**STRING, "not": {"enum": known}}},
        ("type",),
        description=f"Any other {what}: only OpenAI's Responses API has it (a model served by translation: 400).",
    )


def response_message(roles: Schema, part: Schema) -> Schema:
    return obj(
        {"type": RESPONSE_MESSAGE_TYPE, "role": roles, "content": {"anyOf": [STRING, array(part)]}},
        ("role", "content"),
    )


ASSISTANT_PART: Schema = {
    "anyOf": [
        obj({"type": {"enum": ["output_text", "input_text"]}, "text": STRING}, ("type", "text")),
        obj({"type": {"const": "refusal"}, "refusal": STRING}, ("type", "refusal")),
    ]
}
IMAGE_URL: Schema = {
    **STRING,
    "pattern": r"^(https?://|data:[^,]+;base64,[\s\S])",
    "description": "An http(s) URL or a data URI (data:<media type>;base64,<data>).",
}
TOOL_OUTPUT: Schema = {"anyOf": [STRING, array(ref("ResponseInputPart"))]}

RESPONSES_SCHEMAS: dict[str, Schema] = {
    "ResponsesRequest": obj(
        {
            "model": MODEL,
            "input": {
                "anyOf": [STRING, array(ref("ResponseInputItem")), {"type": "null"}],
                "description": "A string (one user message) or an array of input items; `instructions` and "
                "`input` together must make at least one message.",
            },
            "instructions": nullable({**STRING, "description": "A system message put first."}),
            "tools": nullable(array(ref("ResponseTool"))),
            "tool_choice": {
                "anyOf": [
                    TOOL_CHOICE_MODES,
                    NAMED_FUNCTION,
                    obj(
                        {
                            "type": {"const": "allowed_tools"},
                            "mode": {"enum": ["auto", "required"]},
                            "tools": array(
                                {"anyOf": [NAMED_FUNCTION, other_type(["function"], "tool")]},
                            ),
                        },
                        ("type", "mode", "tools"),
                    ),
                    other_type(["function", "allowed_tools"], "tool"),
                    {"type": "null"},
                ]
            },
            "parallel_tool_calls": nullable(BOOLEAN),
            "text": nullable(
                obj(
                    {
                        "format": nullable(ref("ResponseTextFormat")),
                        "verbosity": nullable({"enum": ["low", "medium", "high"]}),
                    }
                )
            ),
            "max_output_tokens": nullable({**POSITIVE, "description": "OpenAI's own models want at least 16."}),
            "temperature": nullable(NUMBER),
            "top_p": nullable(NUMBER),
            "reasoning": nullable(
                obj(
                    {
                        "effort": nullable({"enum": ["none", "minimal", "low", "medium", "high", "xhigh", "max"]}),
                        "summary": nullable({"enum": ["auto", "concise", "detailed"]}),
                    }
                )
            ),
            "metadata": nullable({**OBJECT, "additionalProperties": STRING}),
            "previous_response_id": nullable(
                {
                    **NON_EMPTY,
                    "description": "A response of this key's to continue: kept by the gateway for models served "
                    "by translation, by the upstream for an OpenAI channel (unknown: 404).",
                }
            ),
            "store": nullable({**BOOLEAN, "description": "false: the response is not kept (default true)."}),
            "stream": nullable(BOOLEAN),
            "stream_options": nullable(OBJECT),
            "background": nullable({**BOOLEAN, "description": "true: OpenAI channels only (translation: 400)."}),
            "truncation": nullable({"enum": ["auto", "disabled"]}),
            "include": nullable(array(STRING)),
            "user": nullable(STRING),
            "prompt": {"description": "A stored prompt: OpenAI channels only (translation: 400)."},
            "conversation": {"description": "A stored conversation: OpenAI channels only (translation: 400)."},
        },
        ("model",),
        description="OpenAI's Responses API. An OpenAI channel gets the request as sent; any other model gets it "
        "translated through chat completions, and what only OpenAI's Responses API has (built-in tools, item "
        "references, files, background mode, stored prompts and conversations) is a 400 there. Every other field "
        "is passed on for the upstream to judge.",
        examples=[
            {"model": "gpt-4o-mini", "input": "Hello!"},
            {
                "model": "claude-sonnet-4-5",
                "instructions": "Answer briefly.",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello!"}]}],
                "max_output_tokens": 64,
            },
            {
                "model": "gemini-2.0-flash",
                "input": "What is the weather in Paris?",
                "tools": [
                    {
                        "type": "function",
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    }
                ],
                "stream": True,
            },
        ],
    ),
    "ResponseInputItem": {
        "anyOf": [
            response_message({"enum": ["user", "system", "developer"]}, ref("ResponseInputPart")),
            response_message({"const": "assistant"}, ASSISTANT_PART),
            obj(
                {"type": {"const": "function_call"}, "call_id": NON_EMPTY, "name": NON_EMPTY, "arguments": STRING},
                ("type", "call_id", "name", "arguments"),
            ),
            obj(
                {"type": {"const": "function_call_output"}, "call_id": NON_EMPTY, "output": TOOL_OUTPUT},
                ("type", "call_id", "output"),
            ),
            obj({"type": {"const": "reasoning"}}, ("type",), description="Dropped when translated."),
            other_type(TRANSLATED_ITEMS, "item"),
        ],
        "description": "A message (its `type` may be left out), a function call, a function call's output, a "
        "reasoning item, or an item only OpenAI's Responses API reads.",
    },
    "ResponseInputPart": {
        "anyOf": [
            obj({"type": {"const": "input_text"}, "text": STRING}, ("type", "text")),
            {
                "anyOf": [
                    obj({"image_url": IMAGE_URL}, ("image_url",)),
                    obj({"image_url": {"type": "null"}, "file_id": STRING}, ("file_id",)),
                ],
                **obj({"type": {"const": "input_image"}, "detail": nullable(STRING)}, ("type",)),
            },
            other_type(TRANSLATED_PARTS, "content part (input_file, ...)"),
        ]
    },
    "ResponseTool": {
        "anyOf": [
            obj(
                {
                    "type": {"const": "function"},
                    "name": NON_EMPTY,
                    "description": nullable(STRING),
                    "parameters": nullable(OBJECT),
                    "strict": nullable(BOOLEAN),
                },
                ("type", "name"),
            ),
            other_type(["function"], "tool (web_search, file_search, mcp, ...)"),
        ]
    },
    "ResponseTextFormat": {
        "anyOf": [
            obj({"type": {"enum": ["text", "json_object"]}}, ("type",)),
            obj(
                {
                    "type": {"const": "json_schema"},
                    "name": NON_EMPTY,
                    "description": nullable(STRING),
                    "schema": OBJECT,
                    "strict": nullable(BOOLEAN),
                },
                ("type", "name", "schema"),
            ),
        ]
    },
    "Response": obj(
        {
            "id": STRING,
            "object": {"const": "response"},
            "created_at": NUMBER,
            "completed_at": nullable(NUMBER),
            "status": {"enum": ["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]},
            "model": STRING,
            "output": array(ref("ResponseOutputItem")),
            "usage": nullable(
                obj(
                    {
                        "input_tokens": INTEGER,
                        "input_tokens_details": obj({"cached_tokens": INTEGER}),
                        "output_tokens": INTEGER,
                        "output_tokens_details": obj({"reasoning_tokens": INTEGER}),
                        "total_tokens": INTEGER,
                    },
                    ("input_tokens", "output_tokens", "total_tokens"),
                )
            ),
            "error": nullable(obj({"code": STRING, "message": STRING}, ("code", "message"))),
            "incomplete_details": nullable(obj({"reason": {"enum": ["max_output_tokens", "content_filter"]}})),
            "instructions": {"description": "As sent (a string, or null)."},
            "tools": array(obj({"type": STRING}, ("type",))),
            "tool_choice": {"anyOf": [TOOL_CHOICE_MODES, obj({"type": STRING}, ("type",))]},
            "parallel_tool_calls": BOOLEAN,
            "previous_response_id": nullable(STRING),
            "max_output_tokens": nullable(INTEGER),
            "temperature": nullable(NUMBER),
            "top_p": nullable(NUMBER),
            "text": nullable(OBJECT),
            "reasoning": nullable(OBJECT),
            "metadata": nullable({**OBJECT, "additionalProperties": STRING}),
            "store": nullable(BOOLEAN),
            "background": nullable(BOOLEAN),
            "truncation": nullable({"enum": ["auto", "disabled"]}),
            "user": nullable(STRING),
        },
        ("id", "object", "created_at", "model", "output", "tools", "tool_choice", "parallel_tool_calls"),
        description="A Response, as the openai SDK reads it (the request's settings repeated); the upstream's own "
        "from an OpenAI channel.",
    ),
    "ResponseOutputItem": {
        "anyOf": [
            obj(
                {
                    "type": {"const": "message"},
                    "id": STRING,
                    "role": {"const": "assistant"},
                    "status": {"enum": ["in_progress", "completed", "incomplete"]},
                    "content": array(obj({"type": STRING}, ("type",), description="output_text or refusal")),
                },
                ("type", "id", "role", "content"),
            ),
            obj(
                {
                    "type": {"const": "function_call"},
                    "id": STRING,
                    "call_id": STRING,
                    "name": STRING,
                    "arguments": STRING,
                },
                ("type", "call_id", "name", "arguments"),
            ),
            obj({"type": {"const": "reasoning"}, "id": STRING, "summary": array(OBJECT)}, ("type", "id", "summary")),
            obj(
                {"type": {**STRING, "not": {"enum": ["message", "function_call", "reasoning"]}}},
                ("type",),
                description="A built-in tool's call (web_search_call, ...), from an OpenAI channel.",
            ),
        ]
    },
    "ResponseStreamEvent": {
        "allOf": [
            obj(
                {"type": STRING, "sequence_number": {**INTEGER, "minimum": 0}},
                ("type", "sequence_number"),
                description="Its `type` is also the event's name; numbered from 0.",
            ),
            {
                "anyOf": [
                    obj({"type": {"enum": RESPONSE_LIFECYCLE_EVENTS}, "response": ref("Response")}, ("response",)),
                    obj(
                        {
                            "type": {"const": "error"},
                            "code": nullable(STRING),
                            "message": STRING,
                            "param": nullable(STRING),
                        },
                        ("message",),
                        description="The stream failed: then `response.failed`, if it had begun.",
                    ),
                    obj({"type": {"not": {"enum": [*RESPONSE_LIFECYCLE_EVENTS, "error"]}}}),
                ]
            },
        ]
    },
}


# ------------------------------------------------------------------------------------------ Anthropic API

ANTHROPIC_CONTENT: Schema = {
    "anyOf": [
        STRING,
        array(
            obj(
                {"type": STRING},
                ("type",),
                description="A content block: text, image, tool_use, tool_result, thinking, ...",
            )
        ),
    ]
}
ANTHROPIC_MESSAGES: Schema = array(
    obj({"role": {"enum": ["user", "assistant"]}, "content": ANTHROPIC_CONTENT}, ("role", "content")), 1
)
ANTHROPIC_FIELDS: Schema = {
    "model": MODEL,
    "messages": ANTHROPIC_MESSAGES,
    "system": {
        "anyOf": [STRING, array(obj({"type": {"const": "text"}, "text": STRING}, ("type", "text"))), {"type": "null"}]
    },
    "tools": nullable(array(obj({"name": NON_EMPTY, "input_schema": OBJECT}, ("name",)))),
    "tool_choice": nullable(obj({"type": {"enum": ["auto", "any", "tool", "none"]}}, ("type",))),
    "stop_sequences": nullable(array(STRING)),
    "temperature": nullable(NUMBER),
    "top_p": nullable(NUMBER),
    "metadata": nullable(obj({"user_id": nullable(STRING)})),
    "stream": nullable(BOOLEAN),
}

ANTHROPIC_SCHEMAS: dict[str, Schema] = {
    "MessagesRequest": obj(
        {**ANTHROPIC_FIELDS, "max_tokens": POSITIVE},
        ("model", "max_tokens", "messages"),
        description="Anthropic's Messages API. Every body is checked as the translation to OpenAI's format "
        "reads it; a Claude model then gets it as sent, any other model translated. Document blocks and server "
        "tools, which have no translation, get a 400.",
        examples=[
            {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello!"}]}
        ],
    ),
    "CountTokensRequest": obj(
        {k: v for k, v in ANTHROPIC_FIELDS.items() if k != "stream"},
        ("model", "messages"),
        examples=[{"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello!"}]}],
    ),
    "Message": obj(
        {
            "id": STRING,
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "content": array(obj({"type": STRING}, ("type",))),
            "model": STRING,
            "stop_reason": nullable(STRING),
            "usage": obj({"input_tokens": INTEGER, "output_tokens": INTEGER}, ("input_tokens", "output_tokens")),
        },
        ("id", "type", "role", "content", "model", "usage"),
    ),
    "MessageTokensCount": obj({"input_tokens": INTEGER}, ("input_tokens",)),
    "AnthropicModel": obj(
        {"type": {"const": "model"}, "id": STRING, "display_name": STRING, "created_at": STRING},
        ("type", "id", "display_name", "created_at"),
    ),
    "AnthropicModelList": obj(
        {
            "data": array(ref("AnthropicModel")),
            "has_more": BOOLEAN,
            "first_id": nullable(STRING),
            "last_id": nullable(STRING),
        },
        ("data", "has_more", "first_id", "last_id"),
    ),
}


# --------------------------------------------------------------------------------------------- Gemini API

GEMINI_CONTENTS: Schema = array(
    obj(
        {
            "role": nullable({"enum": ["user", "model", "function", ""], "description": "Default user."}),
            "parts": array(
                obj(
                    {},
                    description="One of text, inlineData, fileData, functionCall or functionResponse "
                    "(and thought parts sent back).",
                ),
                1,
            ),
        },
        ("parts",),
    ),
    1,
)
GENERATION_CONFIG: Schema = obj(
    {
        "temperature": nullable(NUMBER),
        "topP": nullable(NUMBER),
        "topK": nullable(NUMBER),
        "maxOutputTokens": nullable(POSITIVE),
        "candidateCount": nullable(POSITIVE),
        "seed": nullable(INTEGER),
        "presencePenalty": nullable(NUMBER),
        "frequencyPenalty": nullable(NUMBER),
        "stopSequences": nullable(array(STRING)),
        "responseMimeType": nullable(STRING),
        "responseSchema": {"description": "An OpenAPI-subset schema object; ignored when responseJsonSchema is set."},
        "responseJsonSchema": nullable(OBJECT),
    },
    description="Fields are also accepted in snake_case, as Google's REST API takes them.",
)
GEMINI_FIELDS: Schema = {
    "contents": GEMINI_CONTENTS,
    "systemInstruction": {
        "anyOf": [STRING, obj({"parts": array(obj({"text": STRING}, ("text",)))}, ("parts",)), {"type": "null"}]
    },
    "tools": nullable(array(obj({"functionDeclarations": nullable(array(obj({"name": NON_EMPTY}, ("name",))))}))),
    "toolConfig": nullable(obj({"functionCallingConfig": nullable(obj({"mode": nullable(STRING)}))})),
    "generationConfig": nullable(GENERATION_CONFIG),
}
GEMINI_HELLO = {"contents": [{"role": "user", "parts": [{"text": "Hello!"}]}]}

GEMINI_SCHEMAS: dict[str, Schema] = {
    "GenerateContentRequest": obj(
        GEMINI_FIELDS,
        ("contents",),
        description="Gemini's generateContent request. Every body is checked as the translation to OpenAI's "
        "format reads it; a Gemini model then gets it as sent, any other model translated. Google-only tools "
        "and media other than images, which have no translation, get a 400.",
        examples=[GEMINI_HELLO],
    ),
    "GeminiCountTokensRequest": obj(
        {**GEMINI_FIELDS, "generateContentRequest": {"description": "An object: counted instead of `contents`."}},
        description="`contents` (and maybe more), or a whole `generateContentRequest`.",
        examples=[GEMINI_HELLO],
    ),
    "GenerateContentResponse": obj(
        {
            "candidates": array(obj({"content": OBJECT, "finishReason": STRING, "index": INTEGER})),
            "promptFeedback": OBJECT,
            "usageMetadata": obj({"promptTokenCount": INTEGER, "totalTokenCount": INTEGER}),
            "modelVersion": STRING,
        }
    ),
    "GeminiTokensCount": obj({"totalTokens": INTEGER}, ("totalTokens",)),
    "GeminiModel": obj(
        {
            "name": {**STRING, "pattern": "^models/"},
            "displayName": STRING,
            "supportedGenerationMethods": array(STRING),
        },
        ("name",),
    ),
    "GeminiModelList": obj({"models": array(ref("GeminiModel"))}, ("models",)),
}


# ------------------------------------------------------------------------------------ balance and admin

DATE_OR_EMPTY: Schema = {"anyOf": [{**STRING, "format": "date"}, {**STRING, "maxLength": 0}]}
KEY_STATUS: Schema = {"enum": ["active", "disabled", "deleted"]}
# An ISO time; a stored time no date can show is given as the stored number (and named in `unrenderable`).
TIMESTAMP: Schema = {"type": ["string", "integer", "null"], "format": "date-time"}
TOTALS: Schema = {
    "requests": INTEGER,
    "prompt_tokens": INTEGER,
    "cached_tokens": INTEGER,
    "cache_write_tokens": INTEGER,
    "completion_tokens": INTEGER,
    "images": INTEGER,
    "characters": INTEGER,
    "audio_seconds": NUMBER,
    "cost_usd": USD,
}

ACCOUNT_SCHEMAS: dict[str, Schema] = {
    "BillingSubscription": obj(
        {
            "object": {"const": "billing_subscription"},
            "has_payment_method": BOOLEAN,
            "access_until": {**INTEGER, "description": "The key's expiry in Unix seconds; 0 for none."},
            "soft_limit_usd": USD,
            "hard_limit_usd": {**USD, "description": "The key's total quota (100000000 when unlimited)."},
            "system_hard_limit_usd": USD,
            "plan": obj({"title": STRING, "id": STRING}),
            "account_name": STRING,
        },
        ("object", "hard_limit_usd", "access_until"),
    ),
    "BillingUsage": obj(
        {
            "object": {"const": "list"},
            "daily_costs": array(
                obj(
                    {
                        "timestamp": NUMBER,
                        "line_items": array(obj({"name": STRING, "cost": {**NUMBER, "minimum": 0}}, ("name", "cost"))),
                    },
                    ("timestamp", "line_items"),
                )
            ),
            "total_usage": {**NUMBER, "minimum": 0, "description": "In cents."},
        },
        ("object", "daily_costs", "total_usage"),
    ),
    "UserInfo": obj(
        {
            "object": {"const": "user_info"},
            "name": STRING,
            "key_prefix": STRING,
            "status": KEY_STATUS,
            "unlimited": BOOLEAN,
            "quota_usd": nullable(USD),
            "balance_usd": nullable(USD),
            "used_usd": USD,
            "reserved_usd": USD,
            "request_count": INTEGER,
            "allowed_models": nullable(array(STRING)),
            "expires_at": nullable(INTEGER),
            "created_at": nullable(INTEGER),
            "limits": obj(
                {
                    "max_body_bytes": INTEGER,
                    "requests_per_minute": nullable(LIMIT),
                    "tokens_per_minute": nullable(LIMIT),
                    "max_parallel_requests": nullable(LIMIT),
                },
                description="The key's rate limits; null: no limit.",
            ),
        },
        ("object", "name", "status", "unlimited", "quota_usd", "balance_usd", "used_usd", "request_count"),
    ),
    "KeyView": obj(
        {
            "id": INTEGER,
            "name": STRING,
            "key_prefix": STRING,
            "status": KEY_STATUS,
            "unlimited": BOOLEAN,
            "quota_usd": nullable(USD),
            "used_usd": USD,
            "balance_usd": nullable(USD),
            "request_count": INTEGER,
            "allowed_models": nullable(array(STRING)),
            **key_limits("null: no limit."),
            "expires_at": TIMESTAMP,
            "created_at": TIMESTAMP,
            "last_used_at": TIMESTAMP,
            "unrenderable": array(STRING, description="Fields shown as stored, because no date can show them."),
        },
        ("id", "name", "key_prefix", "status", "unlimited", "quota_usd", "used_usd", "balance_usd", "request_count"),
        description="Neither the key nor its hash is ever part of it.",
        **{"not": {"anyOf": [{"required": ["key_hash"]}, {"required": ["hash"]}]}},
    ),
    "Key": {"allOf": [ref("KeyView"), {"not": {"required": ["key"]}}]},
    "CreatedKey": {
        "allOf": [
            ref("KeyView"),
            obj(
                {"key": {**STRING, "pattern": "^sk-", "description": "The key itself, shown only this once."}}, ("key",)
            ),
        ]
    },
    "KeyList": obj({"object": {"const": "list"}, "data": array(ref("Key"))}, ("object", "data")),
    "Channel": obj(
        {
            "name": STRING,
            "type": {"enum": ["openai", "anthropic", "gemini", "azure"]},
            "base_url": STRING,
            "models": array(STRING),
            "priority": INTEGER,
            "weight": INTEGER,
            "max_parallel": nullable(INTEGER),
            "state": {"enum": ["ok", "cooling_down", "disabled"]},
            "disabled_reason": nullable(STRING),
            "disabled_by": nullable({"enum": ["gateway", "operator"]}),
            "cooling_until": nullable(INTEGER),
            "cooling_models": array(STRING),
            "in_flight": INTEGER,
            "last_error": nullable(STRING),
            "last_error_at": nullable(INTEGER),
            "latency_ms": nullable(INTEGER),
            "successes": INTEGER,
            "failures": INTEGER,
        },
        ("name", "type", "priority", "weight", "state", "in_flight", "successes", "failures"),
    ),
    "ChannelList": obj({"object": {"const": "list"}, "data": array(ref("Channel"))}, ("object", "data")),
    "ChannelTest": obj(
        {
            "object": {"const": "channel.test"},
            "channel": STRING,
            "model": nullable(STRING),
            "ok": BOOLEAN,
            "latency_ms": INTEGER,
            "detail": STRING,
        },
        ("object", "channel", "model", "ok", "latency_ms", "detail"),
    ),
    "DisableChannelRequest": obj({"reason": {**STRING, "description": "Shown in `channels list`."}}),
    "DeletedKey": obj({"id": INTEGER, "name": STRING, "deleted": {"const": True}}, ("id", "name", "deleted")),
    "CreateKeyRequest": obj(
        {
            "name": {**NON_EMPTY, "description": "Unique; not all digits (digits address keys by id)."},
            "quota_usd": {"type": ["string", "number"], "description": 'Total quota in USD, e.g. "5" or 12.5.'},
            "unlimited": BOOLEAN,
            "expires_at": {
                "type": ["string", "integer", "null"],
                "description": "2026-12-31, an ISO time, 30d / 12h / 90m / 45s from now, Unix seconds, or never.",
            },
            "models": {
                "anyOf": [array(STRING), STRING, {"type": "null"}],
                "description": "Allowed models (names or globs, a list or comma-separated); empty for all.",
            },
            **key_limits("null or absent: no limit."),
        },
        ("name",),
        description="Give `quota_usd` or `unlimited: true`.",
        examples=[
            {"name": "bob", "quota_usd": "10", "models": ["gpt-4o-mini"], "expires_at": "30d"},
            {"name": "carol", "unlimited": True, "rpm": 60, "tpm": 100_000, "max_parallel": 4},
        ],
    ),
    "UpdateKeyRequest": obj(
        {
            "quota_usd": {"type": ["string", "number"], "description": "The new total quota in USD."},
            "expires_at": {"type": ["string", "integer", "null"]},
            "models": {"anyOf": [array(STRING), STRING, {"type": "null"}]},
            **key_limits("null removes the limit."),
        },
        examples=[{"expires_at": "2099-12-31"}, {"rpm": 60, "tpm": None}],
    ),
    "TopUpRequest": obj(
        {
            "usd": {
                "type": ["string", "number"],
                "description": "USD to add; a negative amount takes quota back (never below what was spent).",
            }
        },
        ("usd",),
        examples=[{"usd": 5}, {"usd": -100}],
    ),
    "UsageTotals": obj(TOTALS, ("requests", "cost_usd")),
    "UsageReport": obj(
        {
            "since": STRING,
            "until": STRING,
            "keys": array(
                {"allOf": [obj({"key_id": INTEGER, "name": STRING}, ("key_id", "name")), ref("UsageTotals")]}
            ),
            "models": array({"allOf": [obj({"model": STRING}, ("model",)), ref("UsageTotals")]}),
            "total": ref("UsageTotals"),
        },
        ("since", "until", "keys", "models", "total"),
    ),
}


# ----------------------------------------------------------------------------------------------- operations


def operation(
    summary: str,
    tag: str,
    security: list[dict[str, list[str]]],
    responses: dict[str, Schema],
    *,
    body: Schema | None = None,
    body_media: str = "application/json",
    body_required: bool = True,
    parameters: list[Schema] | None = None,
    description: str | None = None,
    operation_id: str,
) -> Schema:
    op: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag], "security": security}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": {body_media: {"schema": body}}}
        responses = {**responses, **errors(TAG_SHAPES.get(tag, "OpenAI"), ("408",))}
    op["responses"] = {**responses, "431": {"$ref": "#/components/responses/HeadersTooLarge"}}
    return op


def path_param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def query_param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def header_param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "header", "required": False, "schema": schema, "description": description}


def openai_relayed(
    operation_id: str, summary: str, body: str, reply: Schema, media: str = "application/json", **more: Any
) -> Schema:
    return operation(
        summary,
        OPENAI_TAG,
        BEARER,
        {"200": reply, **errors("OpenAI", RELAYED)},
        body=ref(body),
        body_media=media,
        operation_id=operation_id,
        **more,
    )


def gemini_paths(version: str) -> dict[str, Schema]:
    model = path_param(
        "model",
        {**STRING, "pattern": GEMINI_MODEL_PATTERN, "examples": EXAMPLE_MODELS},
        "A model the gateway serves (any provider).",
    )
    generate_reply = ok(ref("GenerateContentResponse"), "The reply, in Gemini's shape.")
    stream_reply = ok(
        array(GEMINI_STREAM_ITEM),
        "Without `alt=sse`: one JSON array, written element by element. With `alt=sse`: server-sent events, "
        "each a GenerateContentResponse.",
        **{"text/event-stream": sse_event(json_text(GEMINI_STREAM_ITEM))},
    )
    suffix = "" if version == "v1beta" else "V1"
    gemini_errors = errors("Gemini", RELAYED)
    return {
        f"/{version}/models/{{model}}:generateContent": {
            "post": operation(
                "Generate content (any model)",
                GEMINI_TAG,
                GEMINI_KEYS,
                {"200": generate_reply, **gemini_errors},
                body=ref("GenerateContentRequest"),
                parameters=[model],
                operation_id=f"geminiGenerateContent{suffix}",
            )
        },
        f"/{version}/models/{{model}}:streamGenerateContent": {
            "post": operation(
                "Stream generated content (any model)",
                GEMINI_TAG,
                GEMINI_KEYS,
                {"200": stream_reply, **gemini_errors},
                body=ref("GenerateContentRequest"),
                parameters=[
                    model,
                    query_param("alt", {**STRING, "examples": ["sse"]}, "sse: server-sent events; else a JSON array."),
                ],
                operation_id=f"geminiStreamGenerateContent{suffix}",
            )
        },
        f"/{version}/models/{{model}}:countTokens": {
            "post": operation(
                "Count a prompt's tokens",
                GEMINI_TAG,
                GEMINI_KEYS,
                {"200": ok(ref("GeminiTokensCount"), "The count."), **gemini_errors},
                body=ref("GeminiCountTokensRequest"),
                parameters=[model],
                description="Asked of the Gemini channel for a Gemini model; counted offline with OpenAI's "
                "tokenizer for other models.",
                operation_id=f"geminiCountTokens{suffix}",
            )
        },
    }


def build_paths() -> dict[str, Schema]:
    anthropic_version = header_param(
        "anthropic-version",
        {**STRING, "examples": ["2023-06-01"]},
        "Forwarded to a Claude channel; on the model listing it asks for Anthropic's shape.",
    )
    anthropic_beta = header_param("anthropic-beta", STRING, "Forwarded to a Claude channel.")
    anthropic_errors = errors(
        "Anthropic", ("400", "401", "402", "404", "413", "429", "4XX", "502", "503", "504", "5XX")
    )
    model_id = path_param(
        "model", {**NON_EMPTY, "examples": EXAMPLE_MODELS}, "A model id (may hold `/` and `:`, e.g. org/model)."
    )
    key_ref = path_param("ref", NON_EMPTY, "The key's name or numeric id.")
    channel_name = path_param("name", NON_EMPTY, "The channel's name.")
    model_lists = {
        "anyOf": [ref("ModelList"), ref("AnthropicModelList"), ref("GeminiModelList")],
        "description": "OpenAI's shape; Anthropic's with `anthropic-version`; Gemini's with a Gemini key.",
    }
    admin_errors = errors("OpenAI", ("400", "401", "403", "404", "413"))
    admin_read_errors = errors("OpenAI", ("400", "401", "403", "404"))
    admin_key_reply = ok(ref("Key"), "The key.")
    admin_change = {"200": admin_key_reply, **admin_errors}

    create_response = openai_relayed(
        "createResponse",
        "Create a model response (any model)",
        "ResponsesRequest",
        ok(
            ref("Response"),
            "The response; with `stream: true`, its events (`event: <type>`, then `data:` the event as JSON), "
            "from response.created to response.completed or response.incomplete. A stream that breaks off ends "
            "with an `error` event (then response.failed, if it had begun).",
            **{"text/event-stream": sse_event(json_text(ref("ResponseStreamEvent")), RESPONSE_EVENT_NAME)},
        ),
    )
    create_response["responses"]["404"] = {
        **error_response("OpenAI", "404"),
        "description": f"{STATUS_TEXT['404']} Also a `previous_response_id` that names no response of this key's "
        "(`code`: previous_response_not_found), kept neither by the gateway nor by the OpenAI channel. In OpenAI's "
        "shape.",
    }

    paths: dict[str, Schema] = {
        "/v1/chat/completions": {
            "post": openai_relayed(
                "createChatCompletion",
                "Chat completion (any model)",
                "ChatCompletionRequest",
                ok(
                    ref("ChatCompletion"),
                    "The completion; a stream with `stream: true`.",
                    **{"text/event-stream": openai_stream("ChatCompletionChunk")},
                ),
            )
        },
        "/v1/responses": {"post": create_response},
        "/v1/completions": {
            "post": openai_relayed(
                "createCompletion",
                "Legacy completion",
                "CompletionRequest",
                ok(
                    ref("Completion"),
                    "The completion; a stream with `stream: true`.",
                    **{"text/event-stream": openai_stream("Completion")},
                ),
            )
        },
        "/v1/embeddings": {
            "post": openai_relayed(
                "createEmbedding", "Embeddings", "EmbeddingRequest", ok(ref("EmbeddingList"), "The embeddings.")
            )
        },
        "/v1/images/generations": {
            "post": openai_relayed(
                "createImage", "Generate images", "ImageGenerationRequest", ok(ref("ImagesResponse"), "The images.")
            )
        },
        "/v1/images/edits": {
            "post": openai_relayed(
                "createImageEdit",
                "Edit an image",
                "ImageEditRequest",
                ok(ref("ImagesResponse"), "The images."),
                "multipart/form-data",
            )
        },
        "/v1/images/variations": {
            "post": openai_relayed(
                "createImageVariation",
                "Vary an image",
                "ImageVariationRequest",
                ok(ref("ImagesResponse"), "The images."),
                "multipart/form-data",
            )
        },
        "/v1/audio/speech": {
            "post": openai_relayed(
                "createSpeech",
                "Text to speech",
                "SpeechRequest",
                ok(BINARY, "The audio, streamed as it is made.", "audio/*", **{"application/octet-stream": BINARY}),
            )
        },
        "/v1/audio/transcriptions": {
            "post": openai_relayed(
                "createTranscription",
                "Transcribe audio",
                "TranscriptionRequest",
                ok(ref("Transcription"), "The transcript (text, srt and vtt: plain text).", **{"text/plain": STRING}),
                "multipart/form-data",
            )
        },
        "/v1/audio/translations": {
            "post": openai_relayed(
                "createTranslation",
                "Translate audio into English",
                "TranscriptionRequest",
                ok(ref("Transcription"), "The translation (text, srt and vtt: plain text).", **{"text/plain": STRING}),
                "multipart/form-data",
            )
        },
        "/v1/moderations": {
            "post": openai_relayed(
                "createModeration", "Moderation", "ModerationRequest", ok(ref("ModerationResponse"), "The verdicts.")
            )
        },
        "/v1/models": {
            "get": operation(
                "List the models this key may use",
                OPENAI_TAG,
                ANY_KEY,
                {"200": ok(model_lists, "The models."), **errors("Caller", ("401",))},
                parameters=[anthropic_version],
                description="In the caller's API's shape: Gemini's with a Gemini key, Anthropic's with "
                "`anthropic-version`, else OpenAI's.",
                operation_id="listModels",
            )
        },
        "/v1/models/{model}": {
            "get": operation(
                "Retrieve a model",
                OPENAI_TAG,
                ANY_KEY,
                {
                    "200": ok(
                        {"anyOf": [ref("Model"), ref("AnthropicModel"), ref("GeminiModel")]},
                        "The model, in the caller's API's shape.",
                    ),
                    **errors("Caller", ("401", "404")),
                },
                parameters=[model_id, anthropic_version],
                operation_id="retrieveModel",
            )
        },
        "/v1/messages": {
            "post": operation(
                "Create a message (any model)",
                ANTHROPIC_TAG,
                ANTHROPIC_KEYS,
                {
                    "200": ok(
                        ref("Message"),
                        "The message; a stream with `stream: true`.",
                        **{"text/event-stream": ANTHROPIC_STREAM},
                    ),
                    **anthropic_errors,
                },
                body=ref("MessagesRequest"),
                parameters=[anthropic_version, anthropic_beta],
                operation_id="createMessage",
            )
        },
        "/v1/messages/count_tokens": {
            "post": operation(
                "Count a message's tokens",
                ANTHROPIC_TAG,
                ANTHROPIC_KEYS,
                {"200": ok(ref("MessageTokensCount"), "The count."), **anthropic_errors},
                body=ref("CountTokensRequest"),
                parameters=[anthropic_version, anthropic_beta],
                description="Asked of the Claude channel for a Claude model (free, recorded at cost 0); counted "
                "offline with OpenAI's tokenizer for other models.",
                operation_id="countMessageTokens",
            )
        },
        "/v1beta/models": {
            "get": operation(
                "List the models this key may use (Gemini's shape)",
                GEMINI_TAG,
                GEMINI_KEYS,
                {"200": ok(ref("GeminiModelList"), "The models."), **errors("Gemini", ("401",))},
                operation_id="geminiListModels",
            )
        },
        "/v1beta/models/{model}": {
            "get": operation(
                "Retrieve a model (Gemini's shape)",
                GEMINI_TAG,
                GEMINI_KEYS,
                {"200": ok(ref("GeminiModel"), "The model."), **errors("Gemini", ("401", "404"))},
                parameters=[
                    path_param(
                        "model",
                        {**STRING, "pattern": GEMINI_MODEL_PATTERN, "examples": EXAMPLE_MODELS},
                        "A model id.",
                    )
                ],
                operation_id="geminiGetModel",
            )
        },
        **gemini_paths("v1beta"),
        **gemini_paths("v1"),
        "/v1/dashboard/billing/subscription": {
            "get": operation(
                "The key's quota, as OpenAI-era dashboards read it",
                BILLING_TAG,
                BEARER,
                {"200": ok(ref("BillingSubscription"), "The quota."), **errors("OpenAI", ("401",))},
                operation_id="billingSubscription",
            )
        },
        "/v1/dashboard/billing/usage": {
            "get": operation(
                "The key's spend in cents, per UTC day and model",
                BILLING_TAG,
                BEARER,
                {"200": ok(ref("BillingUsage"), "The spend."), **errors("OpenAI", ("400", "401"))},
                parameters=[
                    query_param("start_date", DATE_OR_EMPTY, "First day (YYYY-MM-DD), included."),
                    query_param("end_date", DATE_OR_EMPTY, "Last day (YYYY-MM-DD), excluded."),
                ],
                description="All time without dates.",
                operation_id="billingUsage",
            )
        },
        "/v1/user/info": {
            "get": operation(
                "Everything about the calling key",
                BILLING_TAG,
                BEARER,
                {"200": ok(ref("UserInfo"), "The key."), **errors("OpenAI", ("401",))},
                operation_id="userInfo",
            )
        },
        "/admin/keys": {
            "get": operation(
                "List keys",
                ADMIN_TAG,
                ADMIN,
                {"200": ok(ref("KeyList"), "The keys."), **admin_read_errors},
                operation_id="adminListKeys",
            ),
            "post": operation(
                "Create a key",
                ADMIN_TAG,
                ADMIN,
                {"201": ok(ref("CreatedKey"), "The new key; `key` is shown only this once."), **admin_errors},
                body=ref("CreateKeyRequest"),
                operation_id="adminCreateKey",
            ),
        },
        "/admin/keys/{ref}": {
            "get": operation(
                "Show a key",
                ADMIN_TAG,
                ADMIN,
                {"200": admin_key_reply, **admin_read_errors},
                parameters=[key_ref],
                operation_id="adminGetKey",
            ),
            "patch": operation(
                "Change a key's quota, expiry or allowed models",
                ADMIN_TAG,
                ADMIN,
                admin_change,
                body=ref("UpdateKeyRequest"),
                body_required=False,
                parameters=[key_ref],
                operation_id="adminUpdateKey",
            ),
            "delete": operation(
                "Delete a key (its usage stays)",
                ADMIN_TAG,
                ADMIN,
                {"200": ok(ref("DeletedKey"), "The key is deleted."), **admin_read_errors},
                parameters=[key_ref],
                operation_id="adminDeleteKey",
            ),
        },
        "/admin/keys/{ref}/disable": {
            "post": operation(
                "Disable a key",
                ADMIN_TAG,
                ADMIN,
                {"200": admin_key_reply, **admin_read_errors},
                parameters=[key_ref],
                operation_id="adminDisableKey",
            )
        },
        "/admin/keys/{ref}/enable": {
            "post": operation(
                "Enable a key",
                ADMIN_TAG,
                ADMIN,
                {"200": admin_key_reply, **admin_read_errors},
                parameters=[key_ref],
                operation_id="adminEnableKey",
            )
        },
        "/admin/keys/{ref}/topup": {
            "post": operation(
                "Add quota to a key",
                ADMIN_TAG,
                ADMIN,
                admin_change,
                body=ref("TopUpRequest"),
                parameters=[key_ref],
                operation_id="adminTopUpKey",
            )
        },
        "/admin/channels": {
            "get": operation(
                "List channels with their health",
                ADMIN_TAG,
                ADMIN,
                {
                    "200": ok(ref("ChannelList"), "Every configured channel, as this gateway sees it."),
                    **admin_read_errors,
                },
                operation_id="adminListChannels",
            )
        },
        "/admin/channels/{name}/test": {
            "post": operation(
                "Send a minimal chat request through a channel",
                ADMIN_TAG,
                ADMIN,
                {"200": ok(ref("ChannelTest"), "What the upstream answered."), **admin_read_errors},
                parameters=[channel_name],
                operation_id="adminTestChannel",
            )
        },
        "/admin/channels/{name}/enable": {
            "post": operation(
                "Put a channel back in service",
                ADMIN_TAG,
                ADMIN,
                {"200": ok(ref("Channel"), "The channel."), **admin_read_errors},
                parameters=[channel_name],
                operation_id="adminEnableChannel",
            )
        },
        "/admin/channels/{name}/disable": {
            "post": operation(
                "Take a channel out of service",
                ADMIN_TAG,
                ADMIN,
                {"200": ok(ref("Channel"), "The channel."), **admin_errors},
                body=ref("DisableChannelRequest"),
                body_required=False,
                parameters=[channel_name],
                operation_id="adminDisableChannel",
            )
        },
        "/admin/usage": {
            "get": operation(
                "Requests, tokens and cost per key and per model",
                ADMIN_TAG,
                ADMIN,
                {"200": ok(ref("UsageReport"), "The report."), **admin_read_errors},
                parameters=[
                    query_param("since", STRING, "A date or ISO time (default: the start of this month)."),
                    query_param("until", STRING, "A date or ISO time (default: now)."),
                    query_param(
                        "days",
                        {"anyOf": [{**INTEGER, "minimum": 1, "maximum": 36500}, {**STRING, "maxLength": 0}]},
                        "The last N days (1 to 36500), instead of since; empty: none.",
                    ),
                    query_param("key", STRING, "Only this key (name or id)."),
                ],
                operation_id="adminUsage",
            )
        },
        "/health": {
            "get": operation(
                "Liveness (also at /healthz)",
                OPS_TAG,
                NO_AUTH,
                {"200": ok(obj({"status": {"const": "ok"}}, ("status",)), "The gateway is up.")},
                operation_id="health",
            )
        },
        "/metrics": {
            "get": operation(
                "Prometheus metrics",
                OPS_TAG,
                NO_AUTH,
                {"200": ok(STRING, "Requests by status and the gateway's own overhead.", "text/plain")},
                operation_id="metrics",
            )
        },
        "/openapi.json": {
            "get": operation(
                "This document",
                OPS_TAG,
                NO_AUTH,
                {"200": ok(OBJECT, "The OpenAPI 3.1 document.")},
                operation_id="openapi",
            )
        },
    }
    return paths


def build_document() -> Schema:
    paths = build_paths()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmrelay",
            "version": __version__,
            "summary": "An LLM API gateway speaking OpenAI's, Anthropic's and Google's APIs for every model.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in (OPENAI_TAG, ANTHROPIC_TAG, GEMINI_TAG, BILLING_TAG, ADMIN_TAG, OPS_TAG)],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A gateway key: `Authorization: Bearer sk-...` (a bare `Authorization: sk-...` "
                    "works too).",
                },
                "anthropicApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "A gateway key, as Anthropic clients send it.",
                },
                "googApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-goog-api-key",
                    "description": "A gateway key, as Gemini clients send it.",
                },
                "googApiKeyQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "key",
                    "description": "A gateway key in the URL, as Gemini REST clients may send it.",
                },
                "adminBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator's LLMRELAY_ADMIN_KEY: `Authorization: Bearer <admin key>`.",
                },
            },
            "headers": {
                "RequestId": {
                    "description": "The request's id, also in the usage record and the access log.",
                    "required": True,
                    "schema": {**STRING, "pattern": "^req-"},
                },
                "Overhead": {
                    "description": "Milliseconds spent in the gateway, the upstream's time excluded.",
                    "required": True,
                    "schema": {**STRING, "pattern": r"^[0-9]+\.[0-9]{3}$"},
                },
            },
            "responses": error_components(paths),
            "schemas": {
                **ERROR_SCHEMAS,
                **OPENAI_REQUESTS,
                **OPENAI_REPLIES,
                **RESPONSES_SCHEMAS,
                **ANTHROPIC_SCHEMAS,
                **GEMINI_SCHEMAS,
                **ACCOUNT_SCHEMAS,
            },
        },
    }


@functools.cache
def document_bytes() -> bytes:
    """The document, encoded once."""
    return orjson.dumps(build_document())


async def serve(gw: Gateway, http: HttpRequest) -> None:
    """GET /openapi.json: no key needed."""
    await http.respond(200, document_bytes())


ROUTES = {"/openapi.json": {"GET": serve}}
