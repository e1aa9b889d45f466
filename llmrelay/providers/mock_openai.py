"""The mock upstream's OpenAI API (providers/mock.py serves it), under the channel's `/v1`: chat completions
(streamed or not, usage, tool calls, JSON mode), legacy completions, embeddings, images, speech, transcriptions
and translations, moderations. The Responses API is left out: mock channels are `responses: false`, so the
gateway serves /v1/responses through chat completions."""

from __future__ import annotations

import time
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
    stream,
    text_of,
    tool_to_call,
    whole,
    words,
)
from llmrelay.providers.mock_media import (
    DEFAULT_DIMENSIONS,
    IMAGE_B64,
    IMAGE_URL,
    MODEL_DIMENSIONS,
    SPEECH,
    SPEECH_FALLBACK,
    embedding,
    embedding_base64,
)

FINGERPRINT = "fp_llmrelay_mock"
MAX_CHOICES = 16  # n: more would only be a way to make the mock slow
MAX_IMAGES = 10  # OpenAI's own limit on n
MAX_DIMENSIONS = 4096
LEGACY_MAX_TOKENS = 16  # what /v1/completions writes when the client sets no max_tokens, as OpenAI does
TRANSCRIPT = "This is a mock transcription from llmrelay."
TRANSLATION = "This is a mock translation from llmrelay."
AUDIO_SECONDS = 1.0  # what verbose_json reports: the mock does not measure uploads (the gateway does)
FAILURE_MESSAGE = "The server had an error while processing your request. (A failure drawn by the mock's failure_rate.)"
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
MODERATION_RESULT = {
    "flagged": False,
    "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
    "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 0.0),
    "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
}


def error(status: int, message: str) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    code = "unknown_url" if status == 404 else None
    return json_reply({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


def overloaded() -> web.Response:
    return error(500, FAILURE_MESSAGE)


# ---- chat completions --------------------------------------------------------------------------------------------


async def chat(call: MockCall) -> web.StreamResponse:
    body = await call.json()
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("'messages' must be a non-empty array of message objects.")
    prompt = _last_user_text(messages)
    output_limit = whole(body.get("max_completion_tokens")) or whole(body.get("max_tokens"))
    schema, json_mode = _json_format(body)
    reply = plan_reply(call.options, prompt, output_limit, _chat_tool(body, messages, prompt), schema, json_mode)
    choices = max(1, min(whole(body.get("n"), 1) or 1, MAX_CHOICES))
    usage = _usage(prompt_words(messages), reply.tokens * choices)
    common = {"id": f"chatcmpl-mock{call.serial}", "created": int(time.time()), "model": body.get("model")}
    if body.get("stream") is True:
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = _chat_events(common, call.serial, reply, choices, usage if wants_usage else None)
        return await stream(call, events)
    completion = {
        **common,
        "object": "chat.completion",
        "choices": [
            {"index": i, "message": _message(reply, call.serial), "logprobs": None, "finish_reason": _finish(reply)}
            for i in range(choices)
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    return json_reply(completion)


def _last_user_text(messages: list[JsonObject]) -> str:
    return next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")


def _chat_tool(body: JsonObject, messages: list[JsonObject], prompt: str) -> Tool | None:
    if messages[-1].get("role") != "user":  # after a tool's result the model answers in words
        return None
    declared = [tool.get("function") for tool in body.get("tools") or () if isinstance(tool, dict)]
    tools = [
        Tool(f["name"], f.get("parameters")) for f in declared if isinstance(f, dict) and isinstance(f.get("name"), str)
    ]
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        named = choice.get("function")
        return tool_to_call(tools, prompt, "any", named.get("name") if isinstance(named, dict) else None)
    return tool_to_call(tools, prompt, {"none": "none", "required": "any"}.get(str(choice), "auto"))


def _json_format(body: JsonObject) -> tuple[Any, bool]:
    """(the schema to fill, whether a JSON object is asked for) from response_format."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return None, False
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return (schema if isinstance(schema, dict) else {"type": "object"}), True
    return None, response_format.get("type") == "json_object"


def _counts(prompt_tokens: int, completion_tokens: int) -> JsonObject:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _usage(prompt_tokens: int, completion_tokens: int) -> JsonObject:
    return {
        **_counts(prompt_tokens, completion_tokens),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish(reply: Reply) -> str:
    return "tool_calls" if reply.tool else "length" if reply.truncated else "stop"


def _tool_call(reply: Reply, serial: int, arguments: str) -> JsonObject:
    function = {"name": reply.tool, "arguments": arguments}
    return {"id": f"call_mock{serial}", "type": "function", "function": function}


def _message(reply: Reply, serial: int) -> JsonObject:
    message: JsonObject = {"role": "assistant", "content": reply.text or None, "refusal": None, "annotations": []}
    if reply.tool:
        message["tool_calls"] = [_tool_call(reply, serial, reply.arguments_json)]
    return message


def _chat_events(
    common: JsonObject, serial: int, reply: Reply, choices: int, usage: JsonObject | None
) -> Iterator[bytes]:
    """The chunks of a chat stream, as OpenAI sends them: the role first, then the text (or the tool call's
    id and name, then its arguments) word by word, the finish reason, the usage chunk when asked, [DONE].
    Text chunks are spliced from bytes made once per stream: the mock's hottest loop."""
    opening = orjson.dumps({**common, "object": "chat.completion.chunk", "system_fingerprint": FINGERPRINT})
    head = b"data: " + opening[:-1] + b',"choices":['
    tail = b"]" + (b',"usage":null' if usage is not None else b"") + b"}\n\n"
    for index in range(choices):
        prefix = head + b'{"index":%d,"logprobs":null,"finish_reason":null,"delta":' % index
        if reply.tool:
            call = {"index": 0, **_tool_call(reply, serial, "")}
            yield prefix + orjson.dumps({"role": "assistant", "content": None, "tool_calls": [call]}) + b"}" + tail
            for piece in reply.pieces():
                fragment = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                yield prefix + orjson.dumps(fragment) + b"}" + tail
        else:
            yield prefix + b'{"role":"assistant","content":"","refusal":null}}' + tail
            for piece in reply.pieces():
                yield prefix + b'{"content":' + orjson.dumps(piece) + b"}}" + tail
        finish = {"index": index, "delta": {}, "logprobs": None, "finish_reason": _finish(reply)}
        yield head + orjson.dumps(finish) + tail
    if usage is not None:
        last = {**common, "object": "chat.completion.chunk", "system_fingerprint": FINGERPRINT, "choices": []}
        yield b"data: " + orjson.dumps({**last, "usage": usage}) + b"\n\n"
    yield b"data: [DONE]\n\n"


# ---- legacy completions ------------------------------------------------------------------------------------------


async def completions(call: MockCall) -> web.StreamResponse:
    body = await call.json()
    prompts = _prompts(body.get("prompt"))
    output_limit = whole(body.get("max_tokens", LEGACY_MAX_TOKENS))
    per_prompt = max(1, min(whole(body.get("n"), 1) or 1, MAX_CHOICES))
    echo = body.get("echo") is True
    shown: list[tuple[str, Reply]] = []  # each choice's text (after the prompt, with echo) and its reply
    for prompt in prompts:
        reply = plan_reply(call.options, _prompt_text(prompt), output_limit)
        shown += [((prompt if echo and isinstance(prompt, str) else "") + reply.text, reply)] * per_prompt
    replies = [reply for _, reply in shown]
    prompt_tokens = sum(words(p) if isinstance(p, str) else len(p) for p in prompts)
    usage = _counts(prompt_tokens, sum(reply.tokens for reply in replies))
    common = {
        "id": f"cmpl-mock{call.serial}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": FINGERPRINT,
    }
    if body.get("stream") is True:
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        return await stream(call, _completion_events(common, replies, usage if wants_usage else None))
    choices = [
        {"text": text, "index": i, "logprobs": None, "finish_reason": "length" if reply.truncated else "stop"}
        for i, (text, reply) in enumerate(shown)
    ]
    return json_reply({**common, "choices": choices, "usage": usage})


def _prompts(prompt: Any) -> list[str | list[int]]:
    """The prompts of a request: a string, a token array, or a list of either."""
    if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt)):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str | list) for p in prompt):
        return prompt
    raise BadRequest("Missing required parameter: 'prompt'.")


def _prompt_text(prompt: str | list[int]) -> str:
    return prompt if isinstance(prompt, str) else " ".join(map(str, prompt))


def _completion_events(common: JsonObject, replies: list[Reply], usage: JsonObject | None) -> Iterator[bytes]:
    tail = b"]" + (b',"usage":null' if usage is not None else b"") + b"}\n\n"
    head = b"data: " + orjson.dumps(common)[:-1] + b',"choices":['
    for index, reply in enumerate(replies):
        prefix = head + b'{"index":%d,"logprobs":null,"finish_reason":null,"text":' % index
        for piece in reply.pieces():
            yield prefix + orjson.dumps(piece) + b"}" + tail
        finish = {
            "index": index,
            "text": "",
            "logprobs": None,
            "finish_reason": "length" if reply.truncated else "stop",
        }
        yield head + orjson.dumps(finish) + tail
    if usage is not None:
        yield b"data: " + orjson.dumps({**common, "choices": [], "usage": usage}) + b"\n\n"
    yield b"data: [DONE]\n\n"


# ---- embeddings, moderations -------------------------------------------------------------------------------------


async def embeddings(call: MockCall) -> web.StreamResponse:
    body = await call.json()
    inputs = _prompts(body.get("input"))
    model = body.get("model")
    dimensions = whole(body.get("dimensions")) or MODEL_DIMENSIONS.get(str(model), DEFAULT_DIMENSIONS)
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise BadRequest(f"'dimensions' must be from 1 to {MAX_DIMENSIONS}.")
    encoded = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = embedding(_prompt_text(item), dimensions)
        data.append(
            {"object": "embedding", "index": index, "embedding": embedding_base64(vector) if encoded else vector}
        )
    tokens = sum(words(x) if isinstance(x, str) else len(x) for x in inputs)
    return json_reply(
        {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    )


async def moderations(call: MockCall) -> web.StreamResponse:
    body = await call.json()
    inputs = body.get("input")
    count = 1 if isinstance(inputs, str) else len(inputs) if isinstance(inputs, list) else 0
    if not count:
        raise BadRequest("Missing required parameter: 'input'.")
    model = body.get("model") or "omni-moderation-latest"
    return json_reply({"id": f"modr-mock{call.serial}", "model": model, "results": [MODERATION_RESULT] * count})


# ---- images --------------------------------------------------------------------------------------------------------


async def image_generations(call: MockCall) -> web.StreamResponse:
    body = await call.json()
    if not isinstance(body.get("prompt"), str):
        raise BadRequest("Missing required parameter: 'prompt'.")
    return json_reply(_images(body.get("model"), body["prompt"], body.get("n"), body.get("response_format")))


async def image_uploads(call: MockCall) -> web.StreamResponse:
    """Edits and variations (multipart forms): the same canned image, whatever was uploaded."""
    form = await call.request.post()
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    try:
        count = int(fields.get("n", "1"))
    except ValueError:
        raise BadRequest("Invalid value for 'n'.") from None
    return json_reply(
        _images(fields.get("model", "dall-e-2"), fields.get("prompt"), count, fields.get("response_format"))
    )


def _images(model: Any, prompt: str | None, n: Any, response_format: Any) -> JsonObject:
    count = whole(n, 1) if n is not None else 1
    if count is None or not 1 <= count <= MAX_IMAGES:
        raise BadRequest(f"Invalid value for 'n': it must be from 1 to {MAX_IMAGES}.")
    # DALL-E answers with a URL unless asked for base64; gpt-image models always send base64.
    as_url = response_format == "url" or (response_format is None and str(model).startswith("dall-e"))
    item: JsonObject = {"url": IMAGE_URL} if as_url else {"b64_json": IMAGE_B64}
    if model == "dall-e-3" and prompt is not None:
        item["revised_prompt"] = f"A mock image for: {prompt}"
    return {"created": int(time.time()), "data": [item] * count}


# ---- audio ---------------------------------------------------------------------------------------------------------


async def speech(call: MockCall) -> web.StreamResponse:
    body = await call.json()
    if not isinstance(body.get("input"), str):
        raise BadRequest("Missing required parameter: 'input'.")
    audio, content_type = SPEECH.get(str(body.get("response_format") or "mp3"), SPEECH_FALLBACK)
    return web.Response(body=audio, content_type=content_type)


async def transcriptions(call: MockCall) -> web.StreamResponse:
    return await _audio_text(call, TRANSCRIPT, "transcribe")


async def translations(call: MockCall) -> web.StreamResponse:
    return await _audio_text(call, TRANSLATION, "translate")


async def _audio_text(call: MockCall, text: str, task: str) -> web.StreamResponse:
    form = await call.request.post()
    if not isinstance(form.get("file"), web.FileField):
        raise BadRequest("Missing required parameter: 'file'.")
    response_format = form.get("response_format") or "json"
    if response_format == "json":
        return json_reply({"text": text})
    if response_format == "text":
        return web.Response(text=text + "\n", content_type="text/plain")
    if response_format in ("srt", "vtt"):
        return web.Response(text=_subtitles(text, str(response_format)), content_type="text/plain")
    if response_format == "verbose_json":
        granularities = [v for k, v in form.items() if k.startswith("timestamp_granularities")]
        return json_reply(_verbose(text, task, "word" in granularities))
    raise BadRequest(f"Invalid value for 'response_format': {response_format!r}.")


def _subtitles(text: str, kind: str) -> str:
    if kind == "srt":
        return f"1\n00:00:00,000 --> 00:00:01,000\n{text}\n\n"
    return f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n\n"


def _verbose(text: str, task: str, with_words: bool) -> JsonObject:
    split = text.split()
    segment = {
        "id": 0,
        "seek": 0,
        "start": 0.0,
        "end": AUDIO_SECONDS,
        "text": text,
        "tokens": list(range(50364, 50364 + len(split))),
        "temperature": 0.0,
        "avg_logprob": -0.25,
        "compression_ratio": 1.0,
        "no_speech_prob": 0.0,
    }
    reply: JsonObject = {"task": task, "language": "english", "duration": AUDIO_SECONDS, "text": text}
    reply["segments"] = [segment]
    if with_words:
        step = AUDIO_SECONDS / len(split)
        reply["words"] = [{"word": w, "start": i * step, "end": (i + 1) * step} for i, w in enumerate(split)]
    return reply


ENDPOINTS: dict[str, Handler] = {
    "/v1/chat/completions": chat,
    "/v1/completions": completions,
    "/v1/embeddings": embeddings,
    "/v1/moderations": moderations,
    "/v1/images/generations": image_generations,
    "/v1/images/edits": image_uploads,
    "/v1/images/variations": image_uploads,
    "/v1/audio/speech": speech,
    "/v1/audio/transcriptions": transcriptions,
    "/v1/audio/translations": translations,
}

OPENAI = WireFormat(route=ENDPOINTS.get, error=error, overloaded=overloaded)
