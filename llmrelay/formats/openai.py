"""The OpenAI chat completions codec. It is also the internal shape, so most of its "translation" is
identity: what it adds is usage in OpenAI's convention, stream framing (`data: ...` events and `[DONE]`),
the same-format stream tap, and OpenAI-shaped errors.

Because the internal shape is OpenAI's, this module also reads it for the codecs that translate it into
another format (the last section): the checks of a chat body's tools, tool choice, tool calls, images,
stop sequences and response format, and of a reply message's text and calls, are the same whatever the
format a codec writes, so each codec keeps only its own output mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import orjson

from llmrelay.formats.base import Chunk, ClientFormat, Completion
from llmrelay.formats.checks import as_dict, as_list, as_str, fail, kind_of, short
from llmrelay.metering.pricing import Usage
from llmrelay.relay.errors import RelayError
from llmrelay.relay.request import ChatRequest

try:
    from llmrelay.relay._eventscan import OneLinePassthrough
except ImportError:  # built without a C compiler: every event takes the Python path (setup.py)
    OneLinePassthrough = None

_NULL_USAGE = b',"usage":null'
DONE_EVENT = b"data: [DONE]\n\n"


def usage_from_openai(usage: dict[str, Any]) -> Usage:
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        details = {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        cache_write_tokens=int(details.get("cache_write_tokens") or 0),
    )


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object: prompt_tokens counts cache reads and writes, as OpenAI clients expect, and the
    details name both (`cache_write_tokens` is in the openai SDK's PromptTokensDetails)."""
    details = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": details,
    }


_GENERATED_TEXT_FIELDS = ("content", "refusal", "reasoning_content")


def choice_texts(choice: dict[str, Any]) -> list[str]:
    """Generated text of one choice: chat `message` or stream `delta` (content, refusal, reasoning, tool
    calls), or a legacy completion's `text`.

    Plain loops rather than comprehensions: a comprehension is a call of its own in CPython 3.11, and this runs
    for every chunk of a translated stream (callgrind: ~17% of such a stream's relay instructions per event)."""
    text = choice.get("text")
    texts = [text] if isinstance(text, str) else []
    message = choice.get("message") or choice.get("delta")
    if not isinstance(message, dict):
        return texts
    for field in _GENERATED_TEXT_FIELDS:
        value = message.get(field)
        if isinstance(value, str):
            texts.append(value)
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            texts.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
    return texts


def generated_texts(replies: Iterator[Chunk] | list[Chunk]) -> list[str]:
    """Generated text of completions or stream chunks (for counting what an upstream reported no usage for)."""
    texts: list[str] = []
    for chunk in replies:
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                texts += choice_texts(choice)
    return texts


def http_image_urls(body: dict[str, Any]) -> list[str]:
    """The http(s) image URLs of a chat request's messages (data URIs excluded), in order."""
    urls = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            image = part.get("image_url") if isinstance(part, dict) and part.get("type") == "image_url" else None
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                urls.append(url)
    return urls


def sse_data(event: bytes) -> bytes | None:
    """The data of a one-line `data:` SSE event (what OpenAI-compatible servers send)."""
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            return line[5:].strip()
    return None


def data_event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def choice_chunk(
    chunk_id: str, created: int, model: str, index: int, delta: dict[str, Any], finish_reason: str | None
) -> Chunk:
    """An internal stream chunk carrying one choice's delta (what the decoders of other formats emit)."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def usage_chunk(first: Chunk, usage: Usage, chunk_object: str) -> Chunk:
    """The usage-only chunk OpenAI ends a stream with when asked (`stream_options.include_usage`)."""
    chunk = {
        "id": first.get("id", ""),
        "object": chunk_object,
        "created": first.get("created", 0),
        "model": first.get("model", ""),
        "choices": [],
        "usage": usage_to_openai(usage),
    }
    if first.get("system_fingerprint"):
        chunk["system_fingerprint"] = first["system_fingerprint"]
    return chunk


class OpenAIStreamTap:
    """Passes an OpenAI SSE stream through to an OpenAI client, reading usage on the side.

    - drops the usage-only chunk when the client did not ask for usage (we asked the upstream for it);
    - removes `"usage":null` from chunks for the same reason;
    - holds back `[DONE]` so the relay can synthesise a usage chunk first when the upstream sent none.
    """

    error_message: str | None = None  # an upstream error event is relayed as it came

    def __init__(self, client_wants_usage: bool, chunk_object: str = "chat.completion.chunk") -> None:
        self.usage: Usage | None = None
        self.done = False
        self._client_wants_usage = client_wants_usage
        # We asked the upstream for usage the client did not want: hide it again.
        self._strip_null_usage = not client_wants_usage
        self._chunk_object = chunk_object
        self._events: list[bytes] = []

    def feed(self, event: bytes) -> bytes | None:
        if event.startswith((b"data: [DONE]", b"data:[DONE]")):
            self.done = True
            return None
        if self._strip_null_usage and event.find(_NULL_USAGE) >= 0:
            event = event.replace(_NULL_USAGE, b"")
        elif event.find(_NULL_USAGE) < 0:
            # Only the usage chunk is parsed. Asked for usage, OpenAI puts `"usage":null` in every other chunk,
            # and parsing each of those was half the relay's Python time per event (bench/, paced loads).
            key = event.find(b'"usage"')
            if key >= 0 and not event[key + 7 : key + 24].lstrip(b" \t:").startswith(b"null"):
                event = self._take_usage(event)
        if event:
            self._events.append(event)
        return event or None

    def compiled_feed(self, secrets: tuple[bytes, ...], partial: bytearray) -> Callable[[bytes], bytes | None] | None:
        """`feed` for the usual read, compiled: a read that is one whole one-line event with no usage object and
        none of `secrets` (which the relay scrubs), while the relay's splitter holds no part of an event
        (`partial`, its buffer, empty), gives the event to relay, kept as `feed` keeps it; any other read gives
        None and is left to `feed`. None when the extension was not built (relay/_eventscan.c)."""
        if OneLinePassthrough is None:
            return None
        return OneLinePassthrough(self._events, self._strip_null_usage, secrets, partial)

    def _take_usage(self, event: bytes) -> bytes:
        payload = sse_data(event)
        try:
            chunk = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            return event
        if not isinstance(chunk, dict) or not isinstance(chunk.get("usage"), dict):
            return event
        self.usage = usage_from_openai(chunk["usage"])
        if self._client_wants_usage:
            return event
        if not chunk.get("choices"):
            return b""  # the usage-only chunk the client did not ask for
        del chunk["usage"]
        return data_event(chunk)

    def _chunks(self) -> Iterator[Chunk]:
        """The relayed events decoded, lazily: only needed when usage must be counted or synthesised."""
        for event in self._events:
            payload = sse_data(event)
            try:
                chunk = orjson.loads(payload) if payload else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict):
                yield chunk

    def completion_texts(self) -> list[str]:
        return generated_texts(self._chunks())

    def finish(self, usage: Usage) -> bytes:
        """What ends a complete stream: a synthesised usage chunk if the client asked, then [DONE]."""
        if self._client_wants_usage and self.usage is None:
            # A non-empty id: Azure opens its streams with a choice-less `prompt_filter_results` chunk whose
            # id, model and created are empty.
            first = next((chunk for chunk in self._chunks() if chunk.get("id")), {})
            return data_event(usage_chunk(first, usage, self._chunk_object)) + DONE_EVENT
        return DONE_EVENT


# ------------------------------------------------------------------------ an OpenAI upstream, translated


def openai_reply_to_chat(body: bytes) -> tuple[Completion, Usage | None]:
    """An OpenAI-format reply as the internal completion (it already is one) and its reported usage."""
    reply = orjson.loads(body)
    if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
        raise ValueError("the upstream reply is not a chat completion")
    usage = reply.get("usage")
    return reply, usage_from_openai(usage) if isinstance(usage, dict) else None


class OpenAIToChatStream:
    """Decodes an OpenAI SSE stream into internal chunks; usage chunks become `usage`."""

    __slots__ = ("done", "error_message", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.done = False
        self.error_message: str | None = None

    def feed(self, event: bytes) -> list[Chunk]:
        payload = sse_data(event)
        if not payload:
            return []
        if payload == b"[DONE]":
            self.done = True
            return []
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        error = chunk.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            self.error_message = str(message or "The upstream reported an error.")
            return []
        usage = chunk.pop("usage", None)
        if isinstance(usage, dict):
            self.usage = usage_from_openai(usage)
        return [chunk] if chunk.get("choices") else []


# ----------------------------------------------------------------------------- to an OpenAI client


class ChatToOpenAIStream:
    """Encodes internal chunks for an OpenAI client: `data:` events, a usage chunk when asked, `[DONE]`."""

    __slots__ = ("_first", "_include_usage")

    def __init__(self, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._first: Chunk | None = None

    def feed(self, chunk: Chunk) -> bytes:
        if self._first is None:
            self._first = chunk
        return data_event(chunk)

    def finish(self, usage: Usage) -> bytes:
        if not self._include_usage:
            return DONE_EVENT
        return data_event(usage_chunk(self._first or {}, usage, "chat.completion.chunk")) + DONE_EVENT

    def event_template(self, chunk: Chunk, marker: bytes) -> tuple[bytes, bytes] | None:
        """The event `feed` would write for `chunk` now, as (before, after) `marker`, the encoded form of a text
        in the chunk that appears once in the event; None when feeding it would change this encoder's state
        (the stream's first chunk) or the marker is not there once."""
        if self._first is None:
            return None
        before, found, after = data_event(chunk).partition(marker)
        return (before, after) if found and marker not in after else None


def chat_to_openai_reply(completion: Completion, usage: Usage, request: ChatRequest) -> bytes:
    return orjson.dumps({**completion, "usage": usage_to_openai(usage)})


def openai_error_body(error: RelayError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}


def openai_error(error: RelayError) -> tuple[int, bytes]:
    return error.status, orjson.dumps(openai_error_body(error))


def openai_stream_error(error: RelayError) -> bytes:
    """An error event in an OpenAI stream: the openai SDK raises it as an APIError mid-iteration."""
    return data_event(openai_error_body(error))


OPENAI_CLIENT = ClientFormat(
    name="openai",
    endpoint="chat.completions",
    encode_reply=chat_to_openai_reply,
    stream_encoder=lambda request: ChatToOpenAIStream(request.include_usage),
    render_error=openai_error,
    stream_error=openai_stream_error,
)


# ------------------------------------------------------------ the internal shape, read for another format

# The text of the user turn another format requires where an OpenAI conversation has none (one holding only
# a system prompt, or opening with the assistant).
PLACEHOLDER_USER_TEXT = "."


def chat_messages(messages: list[Any]) -> Iterator[tuple[int, str, dict[str, Any], str]]:
    """A chat body's messages, each checked as it is reached to be an object with a role of the internal
    shape (system, developer, user, assistant, tool, function): (position, path, message, role)."""
    for i, message in enumerate(messages):
        param = f"messages.{i}"
        message = as_dict(message, param)
        role = kind_of(message.get("role"))
        if role not in ("system", "developer", "user", "assistant", "tool", "function"):
            fail("must be one of system, developer, user, assistant, tool, function", f"{param}.role")
        yield i, param, message, role


class FunctionTool(NamedTuple):
    """One function tool of a chat body's `tools`, checked. `param` is its path (`tools.3`), `tool` the whole
    entry (for keys a codec carries over, such as `cache_control`); `parameters` is None when it has none."""

    param: str
    tool: dict[str, Any]
    name: str
    description: str | None
    parameters: dict[str, Any] | None


def function_tools(tools: Any, target: str) -> Iterator[FunctionTool]:
    """The function tools of a chat body's `tools` (none when absent), each checked as it is reached, so a
    codec's own checks of one tool still come before the next tool's. `target` ("a Gemini model") says
    where tools of other types cannot be sent."""
    if tools is None:
        return
    for i, tool in enumerate(as_list(tools, "tools")):
        param = f"tools.{i}"
        tool = as_dict(tool, param)
        if tool.get("type") != "function":
            fail(f"tools of type {short(tool.get('type'))} cannot be sent to {target}", f"{param}.type")
        function = as_dict(tool.get("function"), f"{param}.function")
        name = as_str(function.get("name"), f"{param}.function.name", non_empty=True)
        description = function.get("description")
        if description is not None:
            description = as_str(description, f"{param}.function.description")
        parameters = function.get("parameters")
        if parameters is not None:
            parameters = as_dict(parameters, f"{param}.function.parameters")
        yield FunctionTool(param, tool, name, description, parameters)


def read_tool_choice(choice: Any, target: str) -> tuple[str, str | None] | None:
    """A chat body's `tool_choice`, checked: None when absent, (mode, None) for "auto", "required" or "none",
    ("function", name) for a named function. `target` says where other kinds of choice cannot be sent."""
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "required", "none"):
            fail("must be 'auto', 'required', 'none' or a named function", "tool_choice")
        return choice, None
    choice = as_dict(choice, "tool_choice")
    if choice.get("type") != "function":
        fail(f"only function tool choices can be sent to {target}", "tool_choice.type")
    function = as_dict(choice.get("function"), "tool_choice.function")
    return "function", as_str(function.get("name"), "tool_choice.function.name", non_empty=True)


def read_function_call(function: Any, param: str) -> tuple[str, dict[str, Any]]:
    """An assistant tool call's `function` (or a legacy `function_call`), checked: its name, and its
    arguments as an object."""
    function = as_dict(function, param)
    name = as_str(function.get("name"), f"{param}.name", non_empty=True)
    arguments = function.get("arguments")
    if isinstance(arguments, dict):  # a few clients send the object itself
        return name, arguments
    if not as_str(arguments, f"{param}.arguments").strip():
        return name, {}  # a call without arguments: streamed calls to argument-less tools often end up ""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        fail("must be a JSON object", f"{param}.arguments")
    if not isinstance(parsed, dict):
        fail("must be a JSON object", f"{param}.arguments")
    return name, parsed


def arguments_object(arguments: Any) -> dict[str, Any]:
    """A reply's tool-call arguments as an object, leniently: {} when they are not a JSON object."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def read_image_url(image_url: Any, param: str) -> tuple[str | None, str]:
    """An `image_url` part's image, checked: (media type, base64 data) for a data URI, (None, the URL) for
    an http(s) URL."""
    # OpenAI sends {"url": ..., "detail": ...}; some clients send the URL string alone.
    url = image_url if isinstance(image_url, str) else as_dict(image_url, param).get("url")
    url = as_str(url, f"{param}.url")
    if url.startswith("data:"):
        header, comma, data = url.partition(",")
        if comma and header.endswith(";base64") and len(header) > len("data:;base64") and data:
            return header[len("data:") : -len(";base64")], data
        fail("data URIs must look like data:<media type>;base64,<data>", f"{param}.url")
    if url.startswith(("https://", "http://")):
        return None, url
    fail("images must be data URIs or http(s) URLs", f"{param}.url")


def read_stop(stop: Any) -> list[str]:
    """A chat body's `stop`, checked: a string or an array of strings, as a list (empty when absent)."""
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else as_list(stop, "stop")
    return [as_str(item, f"stop.{i}") for i, item in enumerate(stops)]


class JsonFormat(NamedTuple):
    """The JSON a `response_format` asks for: `spec` is its `json_schema` object (None for `json_object`),
    `schema` the schema that holds (None: any JSON object)."""

    spec: dict[str, Any] | None
    schema: dict[str, Any] | None


def read_response_format(response_format: Any) -> JsonFormat | None:
    """A chat body's `response_format`, checked: None for text (or when absent), else the JSON asked for."""
    if response_format is None:
        return None
    kind = kind_of(as_dict(response_format, "response_format").get("type"))
    if kind == "text":
        return None
    if kind == "json_object":
        return JsonFormat(None, None)
    if kind != "json_schema":
        fail("must be 'text', 'json_object' or 'json_schema'", "response_format.type")
    spec = as_dict(response_format.get("json_schema"), "response_format.json_schema")
    schema = spec.get("schema")
    if schema is not None:
        schema = as_dict(schema, "response_format.json_schema.schema")
    return JsonFormat(spec, schema)


def assistant_messages(texts: list[str], calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An assistant turn read from another format, as internal messages: its texts joined and its tool calls;
    none when it holds neither (only thinking, meaningless to another provider)."""
    if not texts and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def content_text(content: Any) -> Any:
    """A reply message's `content` with content parts (some servers answer with them) joined into text."""
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content


def message_tool_calls(message: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """A reply message's tool calls as (id, function) pairs, a legacy `function_call` last (its id None);
    calls that are not objects are passed over, and a function that is not one is {}."""
    calls = [c for c in message.get("tool_calls") or () if isinstance(c, dict)]
    if isinstance(message.get("function_call"), dict):
        calls.append({"function": message["function_call"]})
    return [(call.get("id"), call["function"] if isinstance(call.get("function"), dict) else {}) for call in calls]
