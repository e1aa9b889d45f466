"""The OpenAI Responses API codec (`POST /v1/responses`): a Responses client ⇄ the internal shape.

The internal shape is OpenAI chat completions (see `llmrelay.formats`). Only the client side is needed: a
Responses client reaching a model through translation (any provider, or an OpenAI channel without the
Responses API) has its request translated by `responses_to_chat`, and the reply goes back through
`chat_to_responses_reply` or, streamed, through `ChatToResponsesStream`. A Responses client reaching an
OpenAI channel that serves the Responses API is forwarded as sent: `ResponsesStreamTap` and
`responses_reply_usage` read usage beside the relayed bytes.

The mapping, in short (Responses → chat):

- `instructions` → a leading system message; a string `input` → one user message; message items → messages
  of their role (`input_text` → text parts, `input_image` → image_url parts, an assistant's `output_text`
  and `refusal` parts → its text);
- `function_call` items → an assistant message's `tool_calls` (consecutive calls, and a call right after the
  assistant's text, make one assistant message, as chat completions groups a turn); `function_call_output`
  items → tool messages; `reasoning` items are dropped (they mean nothing to another provider);
- function tools (flat in Responses: `{type, name, parameters, ...}`) → chat's nested `{type, function}`;
  `tool_choice` likewise; `text.format` → `response_format`; `max_output_tokens` → `max_tokens`;
  `reasoning.effort` → `reasoning_effort`.

What only OpenAI's own Responses API can serve (built-in tools such as web_search, items and files by id,
stored prompts and conversations) is not an error here: an OpenAI channel is sent the request as the client
wrote it. It is noted in `ResponsesInput.untranslatable` (for `ChatRequest.untranslatable`), and the relay
refuses the request only when it would have to be translated.

Back (chat → Responses), a completion becomes a Response whose output items are, in order: a `reasoning`
item (the upstream's reasoning text), a `message` item (`output_text`, then `refusal`), and one
`function_call` item per tool call. The non-stream reply is built by the stream encoder itself (fed the
whole message as one delta, writing no events), so both ways give the same Response.

Param paths in errors follow OpenAI's Responses errors: `input[2].content[0].image_url`.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import orjson

from llmrelay.formats.base import Chunk, ClientFormat, Completion
from llmrelay.formats.checks import (
    as_dict,
    as_flag,
    as_int,
    as_list,
    as_number,
    as_str,
    dumps_checked,
    fail,
    int_value,
    is_int,
    is_number,
    kind_of,
    short,
    sse_json,
    token_count,
)
from llmrelay.formats.openai import (
    assistant_messages,
    content_text,
    message_tool_calls,
    openai_error,
    openai_error_body,
    read_image_url,
)
from llmrelay.metering.pricing import Usage
from llmrelay.relay.errors import RelayError
from llmrelay.relay.request import ChatRequest

T = TypeVar("T")

_MESSAGE_ROLES = ("user", "system", "developer", "assistant")
_TOOL_CHOICE_MODES = ("auto", "none", "required")
_ALLOWED_TOOLS_MODES = ("auto", "required")
# The values the openai SDK's types accept: anything else would make the echoed Response unreadable to it.
_REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_REASONING_SUMMARIES = ("auto", "concise", "detailed")
_VERBOSITIES = ("low", "medium", "high")
_TRUNCATIONS = ("auto", "disabled")
# Image details chat completions takes; Responses' "original" is left to the upstream's default.
_IMAGE_DETAILS = ("auto", "low", "high")
# An assistant's content part type → its text field (clients also replay assistant text as input_text).
_ASSISTANT_PARTS = {"output_text": "text", "input_text": "text", "refusal": "refusal"}
# finish_reason → incomplete_details.reason; any other finish reason completes the response.
_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Top-level fields that name something kept by OpenAI (a stored prompt, a conversation).
_OPENAI_STATE = {
    "prompt": "stored prompts are kept by OpenAI's Responses API",
    "conversation": "conversations are kept by OpenAI's Responses API",
}
_RESPONSES_API = "OpenAI's Responses API"  # where what cannot be translated is available


# ------------------------------------------------------------------------------ requests: Responses → chat


@dataclass(frozen=True, slots=True)
class ResponsesInput:
    """A checked Responses request: its translation, and what the relay needs beside it.

    - `chat`: the internal chat body (partial when `untranslatable` is set: it is then never sent);
    - `untranslatable`: (message, param) of the first feature only OpenAI's Responses API has, ready for
      `ChatRequest.untranslatable`; `builtin_tools` names the built-in tools asked for (tools, tool_choice);
    - `previous_response_id`, `store`, `background`: kept for the relay to act on, not translated;
    - `echo`: the request fields a Response repeats (`response_echo`).
    """

    chat: dict[str, Any]
    stream: bool
    max_output_tokens: int | None
    previous_response_id: str | None
    store: bool
    background: bool
    builtin_tools: tuple[str, ...]
    untranslatable: tuple[str, str] | None
    echo: dict[str, Any]


class _OpenAIOnly:
    """What only OpenAI's Responses API serves, noted while a request is read: the first such feature as
    (message, param), and the built-in tools by type."""

    __slots__ = ("first", "tools")

    def __init__(self) -> None:
        self.first: tuple[str, str] | None = None
        self.tools: list[str] = []

    def note(self, what: str, param: str) -> None:
        if self.first is None:
            self.first = (f"{param}: {what}", param)

    def tool(self, kind: str, param: str) -> None:
        if kind not in self.tools:
            self.tools.append(kind)
        self.note(f"the built-in tool {short(kind)} is only available on {_RESPONSES_API}", param)


def responses_to_chat(body: Any) -> ResponsesInput:
    """A Responses request checked and translated to the internal chat body; any malformed field is a 400
    naming it. Unknown fields are ignored (the API grows), known ones are type-checked."""
    if not isinstance(body, dict):
        fail("the request body must be a JSON object", None)
    openai_only = _OpenAIOnly()
    model = as_str(body.get("model"), "model", non_empty=True)
    messages = _instructions(body.get("instructions")) + _input_messages(body.get("input"), openai_only)
    chat: dict[str, Any] = {"model": model, "messages": messages}
    chat.update(_chat_tools(body, openai_only))
    chat.update(_chat_options(body))
    for field, what in _OPENAI_STATE.items():
        if body.get(field) is not None:
            openai_only.note(what, field)
    if not messages and openai_only.first is None:
        fail("must hold at least one message", "input")
    _check_echoed_fields(body)
    stream = as_flag(body.get("stream"), "stream")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the Response at the end reports usage
    store = _optional(body.get("store"), "store", as_flag)
    return ResponsesInput(
        chat=chat,
        stream=stream,
        max_output_tokens=chat.get("max_tokens"),
        previous_response_id=_optional(body.get("previous_response_id"), "previous_response_id", _non_empty_str),
        store=store is not False,  # the API stores responses unless told not to
        background=as_flag(body.get("background"), "background"),
        builtin_tools=tuple(openai_only.tools),
        untranslatable=openai_only.first,
        echo=response_echo(body),
    )


def _optional(value: Any, param: str, check: Callable[[Any, str], T]) -> T | None:
    """A field that may be absent or null (None then), else checked."""
    return None if value is None else check(value, param)


def _non_empty_str(value: Any, param: str) -> str:
    return as_str(value, param, non_empty=True)


def _positive_int(value: Any, param: str) -> int:
    return _encodable(as_int(value, param, positive=True), param)


def _number(value: Any, param: str) -> int | float:
    return _encodable(as_number(value, param), param)


def _encodable(value: T, param: str) -> T:
    """A value the reply repeats, checked to encode: orjson refuses integers beyond 64 bits (which a body
    parsed by orjson never holds, but a caller's may)."""
    dumps_checked(value, param)
    return value


def _one_of(*choices: str) -> Callable[[Any, str], str]:
    """A check that a field is one of `choices`."""

    def check(value: Any, param: str) -> str:
        if not isinstance(value, str) or value not in choices:
            fail(f"must be one of {', '.join(choices)}", param)
        return value

    return check


def _json_object(value: Any, param: str) -> dict[str, Any]:
    """An object the reply repeats (a tool's parameters, a schema), checked to encode: a client may send
    nesting deeper than the encoder takes."""
    return _encodable(as_dict(value, param), param)


def _present(**fields: Any) -> dict[str, Any]:
    """The fields that are set (optional fields are left out of chat bodies rather than sent as null)."""
    return {key: value for key, value in fields.items() if value is not None}


def _instructions(instructions: Any) -> list[dict[str, Any]]:
    text = _optional(instructions, "instructions", as_str)
    return [{"role": "system", "content": text}] if text else []


# An input item reader: (item, its param, the messages so far, the OpenAI-only notes) → messages appended.
_ItemReader = Callable[[dict[str, Any], str, list[dict[str, Any]], _OpenAIOnly], None]


def _input_messages(value: Any, openai_only: _OpenAIOnly) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(as_list(value, "input")):
        param = f"input[{i}]"
        item = as_dict(item, param)
        kind = item.get("type")
        if kind is None:
            kind = "message"  # a message item may leave its type out
        elif not isinstance(kind, str):
            fail("must be a string", f"{param}.type")
        reader = _INPUT_ITEMS.get(kind)
        if reader is None:  # hosted tools' calls, item references, and item types newer than this code
            openai_only.note(f"input items of type {short(kind)} are only understood by {_RESPONSES_API}", param)
        else:
            reader(item, param, messages, openai_only)
    return messages


def _message_item(item: dict[str, Any], param: str, messages: list[dict[str, Any]], openai_only: _OpenAIOnly) -> None:
    role = item.get("role")
    if not isinstance(role, str) or role not in _MESSAGE_ROLES:
        fail(f"must be one of {', '.join(_MESSAGE_ROLES)}", f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        messages.append({"role": role, "content": content})
        return
    if not isinstance(content, list):
        fail("must be a string or an array of content parts", f"{param}.content")
    where = [f"{param}.content[{j}]" for j in range(len(content))]
    if role == "assistant":
        messages.extend(assistant_messages([_assistant_text(p, w) for p, w in zip(content, where, strict=True)], []))
        return
    parts = [_input_part(part, w, openai_only) for part, w in zip(content, where, strict=True)]
    messages.append({"role": role, "content": [part for part in parts if part is not None]})


def _assistant_text(part: Any, where: str) -> str:
    part = as_dict(part, where)
    key = _ASSISTANT_PARTS.get(kind_of(part.get("type")))
    if key is None:
        fail("assistant messages hold output_text and refusal parts", f"{where}.type")
    return as_str(part.get(key), f"{where}.{key}")


def _input_part(part: Any, where: str, openai_only: _OpenAIOnly) -> dict[str, Any] | None:
    """A user, system or developer content part as a chat part (None when only OpenAI can read it)."""
    part = as_dict(part, where)
    kind = part.get("type")
    if kind == "input_text":
        return {"type": "text", "text": as_str(part.get("text"), f"{where}.text")}
    if kind == "input_image":
        return _image_part(part, where, openai_only)
    if not isinstance(kind, str):
        fail("must be a string", f"{where}.type")
    openai_only.note(f"content parts of type {short(kind)} are only understood by {_RESPONSES_API}", where)
    return None


def _image_part(part: dict[str, Any], where: str, openai_only: _OpenAIOnly) -> dict[str, Any] | None:
    image_url, file_id = part.get("image_url"), part.get("file_id")
    if image_url is None and file_id is not None:
        as_str(file_id, f"{where}.file_id")
        openai_only.note(f"images by file_id are only readable by {_RESPONSES_API}", f"{where}.file_id")
        return None
    url = as_str(image_url, f"{where}.image_url")
    read_image_url(url, f"{where}.image_url")  # a data URI or an http(s) URL: what every provider takes
    image = {"url": url}
    detail = _optional(part.get("detail"), f"{where}.detail", as_str)
    if detail in _IMAGE_DETAILS:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _function_call_item(
    item: dict[str, Any], param: str, messages: list[dict[str, Any]], openai_only: _OpenAIOnly
) -> None:
    function = {
        "name": as_str(item.get("name"), f"{param}.name", non_empty=True),
        "arguments": as_str(item.get("arguments"), f"{param}.arguments"),
    }
    call = {"id": as_str(item.get("call_id"), f"{param}.call_id", non_empty=True), "type": "function"}
    call["function"] = function
    last = messages[-1] if messages else None
    # One assistant turn in chat completions holds its text and all its calls; Responses lists them apart.
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_output_item(
    item: dict[str, Any], param: str, messages: list[dict[str, Any]], openai_only: _OpenAIOnly
) -> None:
    call_id = as_str(item.get("call_id"), f"{param}.call_id", non_empty=True)
    output = item.get("output")
    if not isinstance(output, str):
        if not isinstance(output, list):
            fail("must be a string or an array of content parts", f"{param}.output")
        # Chat tool messages carry text only: images and files in a tool's output need OpenAI.
        parts = [_input_part(part, f"{param}.output[{k}]", openai_only) for k, part in enumerate(output)]
        output = "\n".join(part["text"] for part in parts if part is not None and part["type"] == "text")
        if any(part is not None and part["type"] != "text" for part in parts):
            openai_only.note(f"images in a tool's output are only understood by {_RESPONSES_API}", f"{param}.output")
    messages.append({"role": "tool", "tool_call_id": call_id, "content": output})


def _reasoning_item(item: dict[str, Any], param: str, messages: list[dict[str, Any]], openai_only: _OpenAIOnly) -> None:
    """Reasoning in the history is dropped: it is encrypted or model-specific, meaningless to another model."""


_INPUT_ITEMS: dict[str, _ItemReader] = {
    "message": _message_item,
    "function_call": _function_call_item,
    "function_call_output": _function_output_item,
    "reasoning": _reasoning_item,
}


def _chat_tools(body: dict[str, Any], openai_only: _OpenAIOnly) -> dict[str, Any]:
    tools = _function_tools(body.get("tools"), openai_only)
    choice = _tool_choice(body.get("tool_choice"), openai_only)
    parallel = _optional(body.get("parallel_tool_calls"), "parallel_tool_calls", as_flag)
    if not tools:
        return {}  # OpenAI refuses tool_choice and parallel_tool_calls (and an empty tools list) without tools
    return _present(tools=tools, tool_choice=choice, parallel_tool_calls=parallel)


def _function_tools(tools: Any, openai_only: _OpenAIOnly) -> list[dict[str, Any]]:
    """The function tools in chat's nested shape; built-in tools are noted, not translated."""
    out = []
    for i, tool in enumerate(_optional(tools, "tools", as_list) or ()):
        param = f"tools[{i}]"
        tool = as_dict(tool, param)
        kind = tool.get("type")
        if kind == "function":
            out.append({"type": "function", "function": _function(tool, param)})
        elif isinstance(kind, str):
            openai_only.tool(kind, param)
        else:
            fail("must be a string", f"{param}.type")
    return out


def _function(tool: dict[str, Any], param: str) -> dict[str, Any]:
    # `strict` is passed only when set: Responses defaults it to true, chat to false, and a schema written
    # for non-strict use is refused in strict mode.
    return _present(
        name=as_str(tool.get("name"), f"{param}.name", non_empty=True),
        description=_optional(tool.get("description"), f"{param}.description", as_str),
        parameters=_optional(tool.get("parameters"), f"{param}.parameters", _json_object),
        strict=_optional(tool.get("strict"), f"{param}.strict", as_flag),
    )


def _tool_choice(choice: Any, openai_only: _OpenAIOnly) -> str | dict[str, Any] | None:
    if choice is None or isinstance(choice, str):
        return _optional(choice, "tool_choice", _one_of(*_TOOL_CHOICE_MODES))
    choice = as_dict(choice, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        return _named_function(choice, "tool_choice")
    if kind == "allowed_tools":
        return _allowed_tools(choice, openai_only)
    if not isinstance(kind, str):
        fail("must be a string", "tool_choice.type")
    openai_only.tool(kind, "tool_choice")
    return None


def _named_function(entry: dict[str, Any], param: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": as_str(entry.get("name"), f"{param}.name", non_empty=True)}}


def _allowed_tools(choice: dict[str, Any], openai_only: _OpenAIOnly) -> dict[str, Any]:
    mode = _one_of(*_ALLOWED_TOOLS_MODES)(choice.get("mode"), "tool_choice.mode")
    allowed = []
    for i, entry in enumerate(as_list(choice.get("tools"), "tool_choice.tools")):
        param = f"tool_choice.tools[{i}]"
        entry = as_dict(entry, param)
        kind = entry.get("type")
        if kind == "function":
            allowed.append(_named_function(entry, param))
        elif isinstance(kind, str):
            openai_only.tool(kind, param)
        else:
            fail("must be a string", f"{param}.type")
    return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": allowed}}


def _chat_options(body: dict[str, Any]) -> dict[str, Any]:
    """Sampling, output and reasoning options, mapped to chat's names."""
    reasoning = _optional(body.get("reasoning"), "reasoning", as_dict) or {}
    _optional(reasoning.get("summary"), "reasoning.summary", _one_of(*_REASONING_SUMMARIES))
    return _present(
        temperature=_optional(body.get("temperature"), "temperature", _number),
        top_p=_optional(body.get("top_p"), "top_p", _number),
        # Reasoning models want max_completion_tokens: providers rename it, as they do for chat clients.
        max_tokens=_optional(body.get("max_output_tokens"), "max_output_tokens", _positive_int),
        reasoning_effort=_optional(reasoning.get("effort"), "reasoning.effort", _one_of(*_REASONING_EFFORTS)),
        user=_optional(body.get("user"), "user", as_str),
        **_text_options(body.get("text")),
    )


def _text_options(text: Any) -> dict[str, Any]:
    text = _optional(text, "text", as_dict) or {}
    return _present(
        verbosity=_optional(text.get("verbosity"), "text.verbosity", _one_of(*_VERBOSITIES)),
        response_format=_response_format(text.get("format")),
    )


def _response_format(text_format: Any) -> dict[str, Any] | None:
    """`text.format` as chat's `response_format` (None for plain text)."""
    if text_format is None:
        return None
    kind = kind_of(as_dict(text_format, "text.format").get("type"))
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        fail("must be 'text', 'json_object' or 'json_schema'", "text.format.type")
    spec = _present(
        name=as_str(text_format.get("name"), "text.format.name", non_empty=True),
        description=_optional(text_format.get("description"), "text.format.description", as_str),
        schema=_json_object(text_format.get("schema"), "text.format.schema"),
        strict=_optional(text_format.get("strict"), "text.format.strict", as_flag),
    )
    return {"type": "json_schema", "json_schema": spec}


def _check_echoed_fields(body: dict[str, Any]) -> None:
    """Fields with no chat counterpart, checked all the same: the Response repeats them (a value the SDK
    cannot read would break the reply), or an OpenAI channel is sent them."""
    metadata = _optional(body.get("metadata"), "metadata", as_dict) or {}
    for key, value in metadata.items():
        as_str(value, f"metadata.{key[:64]}")
    _optional(body.get("truncation"), "truncation", _one_of(*_TRUNCATIONS))
    for i, value in enumerate(_optional(body.get("include"), "include", as_list) or ()):
        as_str(value, f"include[{i}]")
    _optional(body.get("stream_options"), "stream_options", as_dict)  # include_obfuscation: nothing to do


def response_echo(body: dict[str, Any]) -> dict[str, Any]:
    """The request fields a Response repeats, with the API's defaults for those left out. Read leniently
    (anything of the wrong type is the default) and only the fields' known keys: the body was checked by
    `responses_to_chat` when it came in, and whatever else it holds is no part of a reply."""
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    text_format = text.get("format") if isinstance(text.get("format"), dict) else {"type": "text"}
    text_format = _keys(text_format, "type", "name", "description", "schema", "strict")
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    return {
        "instructions": _str_or_none(body.get("instructions")),
        "tools": [_echo_tool(tool) for tool in tools if isinstance(tool, dict)],
        "tool_choice": _echo_tool_choice(body.get("tool_choice")),
        "parallel_tool_calls": _bool_or(body.get("parallel_tool_calls"), True),
        "temperature": _number_or(body.get("temperature"), 1.0),
        "top_p": _number_or(body.get("top_p"), 1.0),
        "text": {"format": text_format, **_keys(text, "verbosity")},
        "max_output_tokens": int_value(body.get("max_output_tokens")),
        "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
        "previous_response_id": _str_or_none(body.get("previous_response_id")),
        "reasoning": {"effort": None, "summary": None, **_keys(reasoning, "effort", "summary")},
        "store": _bool_or(body.get("store"), True),
        "truncation": body.get("truncation") if body.get("truncation") in _TRUNCATIONS else "disabled",
        "user": _str_or_none(body.get("user")),
        "background": _bool_or(body.get("background"), False),
    }


def _echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool  # a built-in tool: only ever echoed by OpenAI itself, which got it as sent
    return {"type": "function", "description": None, "parameters": None, "strict": None, **_keys(tool, *_TOOL_KEYS)}


_TOOL_KEYS = ("name", "description", "parameters", "strict")


def _echo_tool_choice(choice: Any) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if not isinstance(choice, dict):
        return "auto"
    if choice.get("type") == "allowed_tools":
        tools = [_keys(tool, "type", "name") for tool in _list(choice.get("tools")) if isinstance(tool, dict)]
        return {**_keys(choice, "type", "mode"), "tools": tools}
    return _keys(choice, "type", "name") if choice.get("type") == "function" else choice


def _keys(fields: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: fields[key] for key in keys if fields.get(key) is not None}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _bool_or(value: Any, default: bool) -> bool:
    return value if isinstance(value, bool) else default


def _number_or(value: Any, default: float) -> float:
    return value if is_number(value) else default


# ---------------------------------------------------------------------------------- conversation history


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A request's `input` as a list of Responses input items (a string is one user message), for keeping a
    conversation: `instructions` are left out, as the API does not carry them to the next response."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def output_items_as_input(output: list[Any]) -> list[dict[str, Any]]:
    """A Response's output items as input items of the next request: messages as assistant messages of
    output_text and refusal parts, function calls as they are, reasoning dropped (`responses_to_chat` drops
    it too, and an OpenAI channel would refuse reasoning items it did not make). Items of other types
    (hosted tools' calls, in a response OpenAI made) are input as they came, which the API accepts."""
    items = []
    for item in output:
        if not isinstance(item, dict) or item.get("type") == "reasoning":
            continue
        if item.get("type") == "message":
            message = _message_as_input(item)
            if message["content"]:
                items.append(message)
        elif item.get("type") == "function_call":
            items.append(_keys(item, "type", "id", "call_id", "name", "arguments", "status"))
        else:
            items.append(item)
    return items


def _message_as_input(item: dict[str, Any]) -> dict[str, Any]:
    parts = item.get("content") if isinstance(item.get("content"), list) else []
    content = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "output_text" and isinstance(part.get("text"), str):
            content.append({"type": "output_text", "text": part["text"], "annotations": []})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            content.append({"type": "refusal", "refusal": part["refusal"]})
    status = item.get("status") if item.get("status") in ("in_progress", "completed", "incomplete") else "completed"
    # The id is kept: an assistant message with output_text parts is an output message, which has one.
    return {"type": "message", "role": "assistant", "id": item.get("id", ""), "status": status, "content": content}


# ------------------------------------------------------------------------------------------------- usage


def usage_from_responses(usage: dict[str, Any]) -> Usage:
    """A Responses usage object in the internal convention (input_tokens already includes cache reads)."""
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, dict) else {}
    return Usage(
        prompt_tokens=token_count(usage.get("input_tokens")),
        completion_tokens=token_count(usage.get("output_tokens")),
        cached_tokens=token_count(details.get("cached_tokens")),
        cache_write_tokens=token_count(details.get("cache_write_tokens")),
    )


def usage_to_responses(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},  # the internal Usage does not count them apart
        "total_tokens": usage.total_tokens,
    }


# ------------------------------------------------------------------------------- replies: chat → Responses


def new_response_id() -> str:
    """A Response id: random, since with the key that made it, it is what reads a stored conversation."""
    return "resp_" + secrets.token_hex(24)


class _Part(NamedTuple):
    """A kind of text content part: the output item type that holds it, its text field (also the field of
    its done event), and its delta and done event types."""

    item: str
    key: str
    delta: str
    done: str


_PARTS = {
    "output_text": _Part("message", "text", "response.output_text.delta", "response.output_text.done"),
    "refusal": _Part("message", "refusal", "response.refusal.delta", "response.refusal.done"),
    "reasoning_text": _Part("reasoning", "text", "response.reasoning_text.delta", "response.reasoning_text.done"),
}


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class ChatToResponsesStream:
    """Encodes internal chunks as Responses SSE events (a StreamEncoder), numbered from 0.

    Output items stream one at a time, each `output_item.added` … `output_item.done`, numbered by
    `output_index` in order of appearance: a change of kind (reasoning, text, a new tool call) closes the
    open item and adds the next. Text goes into a message item's content parts (`output_text`, `refusal`),
    each `content_part.added` … deltas … `*.done`, `content_part.done`.

    `response` is the final Response once `finish` ran, also handed to `on_done` (to keep the conversation
    for `previous_response_id`). With `emit=False` no event is written: `chat_to_responses_reply` uses that
    to build a non-stream reply the same way.
    """

    def __init__(
        self,
        request: ChatRequest,
        response_id: str | None = None,
        created_at: int | None = None,
        on_done: Callable[[dict[str, Any]], None] | None = None,
        *,
        emit: bool = True,
    ) -> None:
        self.response_id = response_id or new_response_id()
        self.response: dict[str, Any] | None = None
        self._created_at = int(time.time()) if created_at is None else created_at
        self._model = request.model
        self._echo = response_echo(request.native)
        self._on_done = on_done
        self._emit = emit
        self._ids = self.response_id.removeprefix("resp_")  # item ids: the response's, and the item's index
        self._sequence = 0
        self._started = False
        self._output: list[dict[str, Any]] = []  # output items by index; the open one grows as deltas come
        self._open: int | None = None  # index of the open item
        self._calls: dict[Any, int] = {}  # tool-call key (index or id) → output index
        self._current_call: Any = None
        self._finish_reason: Any = None

    # -- the StreamEncoder protocol

    def feed(self, chunk: Chunk) -> bytes:
        out = b"" if self._started else self._start()
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return out  # a usage-only chunk: usage comes with finish()
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        texts = (
            ("reasoning_text", delta.get("reasoning_content") or delta.get("reasoning")),
            ("output_text", content_text(delta.get("content"))),
            ("refusal", delta.get("refusal")),
        )
        for kind, text in texts:
            if isinstance(text, str) and text:
                out += self._text(kind, text)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            out += self._tool_call(call)
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
            out += self._close(self._item_status())
        return out

    def finish(self, usage: Usage) -> bytes:
        out = b"" if self._started else self._start()
        if not self._output:
            out += self._open_part("output_text")  # a reply with nothing in it is still an (empty) message
        out += self._close(self._item_status())
        reason = _INCOMPLETE_REASONS.get(self._finish_reason) if isinstance(self._finish_reason, str) else None
        status = "incomplete" if reason else "completed"
        self.response = self._response(status, usage, incomplete=reason)
        out += self._event(f"response.{status}", response=self.response)
        if self._on_done is not None:
            self._on_done(self.response)
        return out

    def error_event(self, error: RelayError) -> bytes:
        """What ends this stream when it failed after it began: an `error` event numbered in sequence, then
        `response.failed`, the terminal event Responses clients wait for. Prefer it to the stateless
        `responses_stream_error`, which cannot number its event."""
        out = b"" if self._started else self._start()
        out += self._event("error", **_error_fields(error))
        failure = {"code": "rate_limit_exceeded" if error.status == 429 else "server_error", "message": error.message}
        return out + self._event("response.failed", response=self._response("failed", None, error=failure))

    # -- events and the Response object

    def _event(self, kind: str, **fields: Any) -> bytes:
        number = self._sequence
        self._sequence += 1
        return _sse(kind, {"type": kind, "sequence_number": number, **fields}) if self._emit else b""

    def _start(self) -> bytes:
        self._started = True
        response = self._response("in_progress", None)
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def _response(
        self, status: str, usage: Usage | None, *, incomplete: str | None = None, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = {
            "id": self.response_id,
            "object": "response",
            "created_at": self._created_at,
            "status": status,
            "model": self._model,
            "output": self._output if status != "in_progress" else [],
            "usage": usage_to_responses(usage) if usage is not None else None,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            **self._echo,
        }
        if status == "completed":
            response["completed_at"] = int(time.time())
        return response

    # -- output items

    def _item_status(self) -> str:
        """The status of the item open when the reply ended: cut short by the output limit or a filter, or
        completed."""
        cut = isinstance(self._finish_reason, str) and self._finish_reason in _INCOMPLETE_REASONS
        return "incomplete" if cut else "completed"

    def _item_id(self, prefix: str) -> str:
        return f"{prefix}_{self._ids}_{len(self._output)}"

    def _add_item(self, item: dict[str, Any]) -> bytes:
        """Close the open item, and open `item` as the next one."""
        out = self._close("completed")
        self._open = len(self._output)
        self._output.append(item)
        return out + self._event("response.output_item.added", output_index=self._open, item=item)

    def _close(self, status: str) -> bytes:
        if self._open is None:
            return b""
        index, item = self._open, self._output[self._open]
        self._open = None
        if item["type"] == "function_call":
            out = self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            )
        else:
            out = self._close_part(index, item)
        item["status"] = status
        return out + self._event("response.output_item.done", output_index=index, item=item)

    # -- text content parts (message text and refusals, reasoning text)

    def _open_part(self, kind: str) -> bytes:
        """Make the last part of the open item a `kind` part, opening an item of the right type first."""
        spec = _PARTS[kind]
        out = b""
        if self._open is None or self._output[self._open]["type"] != spec.item:
            out = self._add_item(self._new_item(spec.item))
        assert self._open is not None
        item = self._output[self._open]
        parts = item["content"]
        if parts and parts[-1]["type"] == kind:
            return out
        out += self._close_part(self._open, item)
        part: dict[str, Any] = {"type": kind, spec.key: ""}
        if kind == "output_text":
            part["annotations"] = []
        parts.append(part)
        where = {"item_id": item["id"], "output_index": self._open, "content_index": len(parts) - 1}
        return out + self._event("response.content_part.added", **where, part=part)

    def _new_item(self, kind: str) -> dict[str, Any]:
        if kind == "reasoning":
            return {
                "id": self._item_id("rs"),
                "type": "reasoning",
                "status": "in_progress",
                "summary": [],
                "content": [],
            }
        return {
            "id": self._item_id("msg"),
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }

    def _text(self, kind: str, text: str) -> bytes:
        out = self._open_part(kind)
        index = self._open
        assert index is not None
        item = self._output[index]
        spec, parts = _PARTS[kind], item["content"]
        parts[-1][spec.key] += text
        where = {"item_id": item["id"], "output_index": index, "content_index": len(parts) - 1}
        logprobs = {"logprobs": []} if kind == "output_text" else {}  # output_text events carry logprobs
        return out + self._event(spec.delta, **where, delta=text, **logprobs)

    def _close_part(self, index: int, item: dict[str, Any]) -> bytes:
        parts = item["content"]
        if not parts:
            return b""
        part = parts[-1]
        spec = _PARTS[part["type"]]
        where = {"item_id": item["id"], "output_index": index, "content_index": len(parts) - 1}
        done = {spec.key: part[spec.key], **({"logprobs": []} if part["type"] == "output_text" else {})}
        return self._event(spec.done, **where, **done) + self._event("response.content_part.done", **where, part=part)

    # -- tool calls

    def _tool_call(self, call: Any) -> bytes:
        if not isinstance(call, dict):
            return b""
        index, call_id = call.get("index"), call.get("id")
        call_id = call_id if isinstance(call_id, str) and call_id else None
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        name = function.get("name") if isinstance(function.get("name"), str) else ""
        # OpenAI sends id and name only in a call's first fragment, keyed by index; some servers omit the
        # index, others reuse index 0 for every call with a new id: a new index or a new id opens an item.
        key = index if is_int(index) else call_id if call_id is not None else self._current_call
        known = self._calls.get(key) if key is not None else None
        out = b""
        if known is None or (call_id is not None and call_id != self._output[known]["call_id"]):
            item = {"id": self._item_id("fc"), "type": "function_call", "status": "in_progress", "arguments": ""}
            item.update(call_id=call_id or f"call_{self._ids}_{len(self._output)}", name=name)
            out = self._add_item(item)
            key = key if key is not None else ("item", self._open)
            known = self._calls[key] = len(self._output) - 1
            self._current_call = key
        item = self._output[known]
        if name and not item["name"]:
            item["name"] = name  # a server that names the call in a later fragment
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a few servers send the object itself
            arguments = orjson.dumps(arguments).decode()
        if isinstance(arguments, str) and arguments:
            # Fragments of an earlier call (interleaved, which OpenAI itself never does) still go to that
            # call's item: the SDK accumulates by output_index, and the final Response has them whole.
            item["arguments"] += arguments
            out += self._event(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=known, delta=arguments
            )
        return out


def chat_to_responses_reply(
    completion: Completion, usage: Usage, request: ChatRequest, response_id: str, created_at: int
) -> dict[str, Any]:
    """A `chat.completion` as the Response object a Responses client reads (a dict, so the relay can keep its
    output for `previous_response_id` before encoding it). Built by the stream encoder from the whole
    message as one delta, so a reply and a stream of the same completion end in the same Response."""
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    delta = {key: message.get(key) for key in ("reasoning_content", "reasoning", "content", "refusal")}
    calls = message_tool_calls(message)
    delta["tool_calls"] = [
        {"index": i, "id": call_id, "function": function} for i, (call_id, function) in enumerate(calls)
    ]
    encoder = ChatToResponsesStream(request, response_id, created_at, emit=False)
    encoder.feed({"choices": [{"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason")}]})
    encoder.finish(usage)
    assert encoder.response is not None
    return encoder.response


def encode_responses_reply(completion: Completion, usage: Usage, request: ChatRequest) -> bytes:
    """The non-stream reply body, with a new response id (ClientFormat.encode_reply)."""
    return orjson.dumps(chat_to_responses_reply(completion, usage, request, new_response_id(), int(time.time())))


# --------------------------------------------------------------------------------------------------- errors


def _error_fields(error: RelayError) -> dict[str, Any]:
    """An `error` event's fields: the Responses API's own (code, message, param), and the same error nested
    as `error`, which makes the openai SDK raise it as an APIError mid-iteration (it ignores the flat form)."""
    body = openai_error_body(error)["error"]
    return {"code": error.code or error.type, "message": error.message, "param": error.param, "error": body}


def responses_stream_error(error: RelayError) -> bytes:
    """The `error` event that ends a failed stream, for ClientFormat.stream_error. Being stateless it cannot
    know the stream's next sequence number and writes 0: when the relay holds the encoder or the passthrough
    tap, their `error_event` numbers it right (and the encoder adds `response.failed`)."""
    return _sse("error", {"type": "error", "sequence_number": 0, **_error_fields(error)})


# ---------------------------------------------------------------------------------- same-format passthrough

# The events that end a response, with its usage in `response.usage`.
_END_EVENTS = ("response.completed", "response.incomplete", "response.failed")
# Event types whose `delta` is generated text (for counting a stream that reported no usage).
_DELTA_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    }
)
_SEQUENCE_NUMBER = re.compile(rb'"sequence_number"\s*:\s*(\d+)')


class ResponsesStreamTap:
    """Relays a Responses stream from an OpenAI channel byte for byte, reading usage on the side (a StreamTap).

    Only the events that end a response (and `error`) are parsed, recognised by their `event:` line, or by
    their bytes when a server leaves that line out. `response.completed` and `response.incomplete` end the
    stream properly; `response.failed` and `error` leave `error_message` set and the stream not done, so the
    relay records the failure (and ends the client's stream with `error_event`).
    """

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.done = False
        self.error_message: str | None = None
        self._events: list[bytes] = []
        self._last_sequence = -1

    def feed(self, event: bytes) -> bytes | None:
        self._events.append(event)
        if event.startswith(b"event:"):
            line_end = event.find(b"\n")
            name = event[6 : line_end if line_end >= 0 else len(event)].strip().decode("latin-1")
            if name in _END_EVENTS or name == "error":
                self._read_end(event)
        elif any(marker in event for marker in (b'"response.completed"', b'"response.incomplete"', b'"error"')):
            self._read_end(event)  # also matches response.failed, whose Response has an "error" key
        number = _SEQUENCE_NUMBER.search(event)
        if number is not None:
            self._last_sequence = int(number.group(1))
        return event

    def _read_end(self, event: bytes) -> None:
        data = sse_json(event)
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "error":
            self.error_message = _error_message(data)
        elif kind in _END_EVENTS:
            response = data.get("response") if isinstance(data.get("response"), dict) else {}
            if isinstance(response.get("usage"), dict):
                self.usage = usage_from_responses(response["usage"])
            if kind == "response.failed":
                self.error_message = _error_message(response)
            else:
                self.done = True

    def finish(self, usage: Usage) -> bytes:
        return b""  # the upstream's own response.completed already ended the stream

    def error_event(self, error: RelayError) -> bytes:
        """The `error` event that ends this stream when it failed, numbered after the upstream's last event."""
        return _sse("error", {"type": "error", "sequence_number": self._last_sequence + 1, **_error_fields(error)})

    def completion_texts(self) -> list[str]:
        texts = []
        for event in self._events:
            if b".delta" not in event and b"output_item.added" not in event:
                continue
            data = sse_json(event)
            if not isinstance(data, dict):
                continue
            if data.get("type") in _DELTA_EVENTS and isinstance(data.get("delta"), str):
                texts.append(data["delta"])
            elif data.get("type") == "response.output_item.added":
                texts.extend(_item_texts(data.get("item")))  # a function call's name (its arguments follow)
        return texts


def _error_message(data: dict[str, Any]) -> str:
    """The message of an `error` event (flat, or nested in `error`) or of a failed Response's `error`."""
    error = data.get("error") if isinstance(data.get("error"), dict) else data
    message = error.get("message")
    return message if isinstance(message, str) and message else "The upstream reported an error."


def _item_texts(item: Any) -> list[str]:
    """Generated text of an output item (for counting tokens offline)."""
    if not isinstance(item, dict):
        return []
    if item.get("type") == "function_call":
        return [value for value in (item.get("name"), item.get("arguments")) if isinstance(value, str) and value]
    parts = [*_list(item.get("content")), *_list(item.get("summary"))]
    return [
        part[key]
        for part in parts
        if isinstance(part, dict)
        for key in ("text", "refusal")
        if isinstance(part.get(key), str)
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def responses_reply_usage(body: bytes) -> tuple[Usage | None, list[str]]:
    """A Response body's usage, and (only when it reports none) its generated texts. ValueError when the body
    is not a JSON object."""
    reply = _reply(body)
    if isinstance(reply.get("usage"), dict):
        return usage_from_responses(reply["usage"]), []
    return None, _output_texts(reply)


def responses_reply_texts(body: bytes) -> list[str]:
    """The generated texts of a Response body (its output messages, refusals and function calls)."""
    return _output_texts(_reply(body))


def _reply(body: bytes) -> dict[str, Any]:
    reply = orjson.loads(body)
    if not isinstance(reply, dict):
        raise ValueError("the upstream reply is not a JSON object")
    return reply


def _output_texts(reply: dict[str, Any]) -> list[str]:
    return [text for item in _list(reply.get("output")) for text in _item_texts(item)]


RESPONSES_CLIENT = ClientFormat(
    name="responses",
    endpoint="responses",
    encode_reply=encode_responses_reply,
    stream_encoder=ChatToResponsesStream,
    render_error=openai_error,  # errors before a stream are OpenAI's `{"error": {...}}`, as for chat
    stream_error=responses_stream_error,
)
