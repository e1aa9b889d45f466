"""The Anthropic Messages API codec: native requests, replies, streams and errors ⇄ the internal shape.

The internal shape is OpenAI chat completions (see `llmrelay.formats`). Both directions are needed:

- an Anthropic client (the anthropic SDK, Claude Code) reaching a non-Anthropic channel: `anthropic_to_chat`
  translates its request, and the reply goes back through `chat_to_anthropic_reply` or, streamed, through
  `ChatToAnthropicStream`;
- any client reaching an Anthropic channel: `chat_to_anthropic` builds the upstream request, and the reply
  comes back through `anthropic_reply_to_chat` or, streamed, through `AnthropicToChatStream`.

When client and channel both speak Anthropic, nothing is translated: the body goes upstream as sent and
`AnthropicPassthroughTap` / `anthropic_reply_usage` read usage beside the relayed bytes.

The mapping, in short (OpenAI ⇄ Anthropic):

- system and developer messages ⇄ the top-level `system`; Anthropic has no system role in `messages`,
  wants user and assistant turns alternating (consecutive same-role messages are merged) and the first
  turn to be the user's;
- `tool` messages ⇄ `tool_result` blocks in a user turn; assistant `tool_calls` ⇄ `tool_use` blocks
  (arguments are a JSON string in OpenAI, a parsed object in Anthropic);
- image parts: data URIs ⇄ base64 sources, http(s) URLs ⇄ url sources;
- `reasoning_content` / `thinking_blocks` (LiteLLM's convention for OpenAI-format clients) ⇄ thinking
  blocks; signed thinking blocks a client sends back are replayed first in the assistant turn, as
  Anthropic requires when extended thinking continues across tool use;
- usage: OpenAI's `prompt_tokens` includes cached tokens, Anthropic's `input_tokens` excludes both cache
  reads and cache writes (see `usage_from_anthropic`);
- finish reasons and error types through the tables below.

JSON mode. Anthropic has no `response_format`. The reliable technique is a forced tool: the request gets
one tool, `JSON_TOOL`, whose input schema is the requested schema (or any object for `json_object`), and
`tool_choice` forces the model to call it; the model's tool input is then a JSON object matching the
schema, which the reply decoders turn back into the message `content` with finish reason `stop`. The forced
tool cannot be used when the request has tools of its own (forcing one tool would stop the model from
calling the others) or extended thinking (Anthropic refuses a forced `tool_choice` with thinking); then the
system prompt instead asks for a bare JSON object. `uses_json_tool` tells the decoders which case applies.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from llmrelay.formats.base import error_status
from llmrelay.formats.checks import (
    as_dict,
    as_flag,
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
    from llmrelay.relay._eventscan import AnthropicTextDeltas
except ImportError:  # built without a C compiler: every event takes the Python path (setup.py)
    AnthropicTextDeltas = None

ANTHROPIC_VERSION = "2023-06-01"
JSON_TOOL = "json_response"

# Anthropic stop_reason → OpenAI finish_reason. pause_turn (a long server-tool turn paused) ends the reply.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# OpenAI finish_reason → Anthropic stop_reason (None and anything unknown → end_turn).
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# HTTP status → Anthropic error type; other 5xx are api_error, other 4xx invalid_request_error.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# tool_choice: Anthropic type → OpenAI string, and back ({"type": "tool"} ⇄ a named function is handled apart).
_TOOL_CHOICE_TO_CHAT = {"auto": "auto", "any": "required", "none": "none"}
_TOOL_CHOICE_TO_ANTHROPIC = {"auto": "auto", "required": "any", "none": "none"}
# reasoning_effort → thinking budget; none/minimal mean no thinking. Anthropic's minimum budget is 1024.
_THINKING_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 4096, "high": 16384}
_MIN_THINKING_BUDGET = 1024
# Anthropic tool_use ids must match ^[a-zA-Z0-9_-]+$; OpenAI-format ids from other servers may not.
_INVALID_TOOL_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
# Stream usage fields, merged across message_start and message_delta (later non-null values win).
_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_JSON_ANSWER = -1  # in the stream decoder's block table: the block is the JSON-mode answer, not a tool call
_TARGET = "an Anthropic model"  # where tools and tool choices of other kinds cannot be sent


# ------------------------------------------------------------------------------- requests: Anthropic → chat


def anthropic_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A native Messages request to the internal chat body; any malformed field is a 400 naming it."""
    if not isinstance(body, dict):
        fail("the request body must be a JSON object", None)
    model = as_str(body.get("model"), "model", non_empty=True)
    max_tokens = as_int(body.get("max_tokens"), "max_tokens", positive=True)  # 10.0 is 10 (JSON Schema)
    messages: list[dict[str, Any]] = []
    system = _native_system(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for i, message in enumerate(as_list(body.get("messages"), "messages", non_empty=True)):
        messages.extend(_native_message(message, f"messages.{i}"))
    chat: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    native_tools = as_list(body["tools"], "tools") if body.get("tools") is not None else []
    tools = [_native_tool(tool, f"tools.{i}") for i, tool in enumerate(native_tools)]
    if body.get("tool_choice") is not None:
        choice = as_dict(body["tool_choice"], "tool_choice")
        tool_choice = _native_tool_choice(choice)
        parallel = not as_flag(choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use")
        # OpenAI refuses tool_choice and parallel_tool_calls (and an empty tools list) without tools.
        if tools:
            chat["tool_choice"] = tool_choice
            if not parallel:
                chat["parallel_tool_calls"] = False
    if tools:
        chat["tools"] = tools
    if body.get("stop_sequences") is not None:
        stops = as_list(body["stop_sequences"], "stop_sequences")
        chat["stop"] = [as_str(stop, f"stop_sequences.{i}") for i, stop in enumerate(stops)]
    for field in ("temperature", "top_p"):
        if body.get(field) is not None:
            chat[field] = as_number(body[field], field)
    # top_k has no OpenAI equivalent, and thinking means nothing to another provider: both dropped.
    if body.get("metadata") is not None:
        user_id = as_dict(body["metadata"], "metadata").get("user_id")
        if user_id is not None:
            chat["user"] = as_str(user_id, "metadata.user_id")
    if as_flag(body.get("stream"), "stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _native_system(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    texts = []
    for i, block in enumerate(as_list(system, "system")):
        block = as_dict(block, f"system.{i}")
        if block.get("type") != "text":
            fail("system blocks must be text blocks", f"system.{i}.type")
        texts.append(as_str(block.get("text"), f"system.{i}.text"))
    return "\n\n".join(text for text in texts if text)


def _native_message(message: Any, param: str) -> list[dict[str, Any]]:
    """One native message as internal messages: a user turn with tool results becomes several."""
    message = as_dict(message, param)
    role = message.get("role")
    if role not in ("user", "assistant"):
        fail("must be 'user' or 'assistant'", f"{param}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = as_list(content, f"{param}.content")
    return _native_user(blocks, param) if role == "user" else _native_assistant(blocks, param)


def _content_blocks(blocks: list[Any], param: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """A native message's content blocks, each checked to be an object as it is reached: (path, block, type)."""
    for j, block in enumerate(blocks):
        where = f"{param}.content.{j}"
        block = as_dict(block, where)
        yield where, block, kind_of(block.get("type"))


def _native_user(blocks: list[Any], param: str) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for where, block, kind in _content_blocks(blocks, param):
        if kind == "tool_result":
            tool_messages.append(_native_tool_result(block, where))
            continue
        if kind == "text":
            part: dict[str, Any] = {"type": "text", "text": as_str(block.get("text"), f"{where}.text")}
        elif kind == "image":
            part = {"type": "image_url", "image_url": {"url": _native_image_url(block.get("source"), where)}}
        elif kind == "document":
            fail("document blocks are not supported when the request is translated for another provider", where)
        else:
            fail(f"content blocks of type {short(block.get('type'))} are not supported here", f"{where}.type")
        if "cache_control" in block:
            part["cache_control"] = block["cache_control"]
        parts.append(part)
    # OpenAI wants tool messages right after the assistant message that made the calls, so they go first.
    return tool_messages + ([{"role": "user", "content": parts}] if parts else [])


def _native_image_url(source: Any, param: str) -> str:
    param = f"{param}.source"
    source = as_dict(source, param)
    kind = kind_of(source.get("type"))
    if kind == "base64":
        media_type = as_str(source.get("media_type"), f"{param}.media_type", non_empty=True)
        return f"data:{media_type};base64,{as_str(source.get('data'), f'{param}.data', non_empty=True)}"
    if kind == "url":
        return as_str(source.get("url"), f"{param}.url", non_empty=True)
    fail(f"image sources of type {short(source.get('type'))} are not supported here", f"{param}.type")


def _native_tool_result(block: dict[str, Any], param: str) -> dict[str, Any]:
    tool_use_id = as_str(block.get("tool_use_id"), f"{param}.tool_use_id", non_empty=True)
    content = block.get("content")
    if content is None or isinstance(content, str):
        text = content or ""
    else:
        texts = []
        for k, item in enumerate(as_list(content, f"{param}.content")):
            item = as_dict(item, f"{param}.content.{k}")
            kind = kind_of(item.get("type"))
            if kind == "text":
                texts.append(as_str(item.get("text"), f"{param}.content.{k}.text"))
            elif kind != "image":  # OpenAI tool messages carry text only: an image is dropped, its text kept
                fail(f"tool results may hold text and images, not {short(item.get('type'))}", f"{param}.content.{k}")
        text = "\n".join(texts)
    if as_flag(block.get("is_error"), f"{param}.is_error"):
        text = f"Error: {text}"  # OpenAI has no error flag on tool messages; say it in the text
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _native_assistant(blocks: list[Any], param: str) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for where, block, kind in _content_blocks(blocks, param):
        if kind == "text":
            texts.append(as_str(block.get("text"), f"{where}.text"))
        elif kind == "tool_use":
            name = as_str(block.get("name"), f"{where}.name", non_empty=True)
            arguments = dumps_checked(as_dict(block.get("input"), f"{where}.input"), f"{where}.input")
            call_id = as_str(block.get("id"), f"{where}.id", non_empty=True)
            calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed by Anthropic for Anthropic: meaningless to another provider
        else:
            fail(f"content blocks of type {short(block.get('type'))} are not supported here", f"{where}.type")
    return assistant_messages(texts, calls)


def _native_tool(tool: Any, param: str) -> dict[str, Any]:
    tool = as_dict(tool, param)
    if tool.get("type") not in (None, "custom"):
        # Server tools (web search, code execution, ...) run inside Anthropic's API; no other provider has them.
        fail(
            f"the server tool {short(tool.get('name'))} ({short(tool.get('type'))}) is only available on "
            "Anthropic models",
            param,
        )
    function: dict[str, Any] = {"name": as_str(tool.get("name"), f"{param}.name", non_empty=True)}
    if tool.get("description") is not None:
        function["description"] = as_str(tool["description"], f"{param}.description")
    function["parameters"] = as_dict(tool.get("input_schema"), f"{param}.input_schema")
    return {"type": "function", "function": function}


def _native_tool_choice(choice: dict[str, Any]) -> str | dict[str, Any]:
    kind = kind_of(choice.get("type"))
    if kind == "tool":
        name = as_str(choice.get("name"), "tool_choice.name", non_empty=True)
        return {"type": "function", "function": {"name": name}}
    if kind not in _TOOL_CHOICE_TO_CHAT:
        fail("must be one of 'auto', 'any', 'tool', 'none'", "tool_choice.type")
    return _TOOL_CHOICE_TO_CHAT[kind]


# ------------------------------------------------------------------------------- requests: chat → Anthropic


def chat_to_anthropic(body: dict[str, Any], upstream_model: str, max_tokens: int) -> dict[str, Any]:
    """The internal chat body as an Anthropic Messages request for `upstream_model`, capped at `max_tokens`.

    Fields Anthropic lacks (frequency/presence penalties, seed, logit_bias, logprobs, stream_options, store,
    metadata, service_tier, modalities, ...) are dropped: the request is built from the fields it knows.
    """
    if not isinstance(body, dict):
        fail("the request body must be a JSON object", None)
    n = body.get("n")
    if n is not None and (not is_int(n) or n > 1):
        fail("Anthropic models return one choice per request; n must be 1", "n")
    system, messages = _chat_messages(as_list(body.get("messages"), "messages", non_empty=True))
    tools = _chat_tools(body.get("tools"))
    tool_choice = _chat_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    json_mode = _json_mode(body)
    if json_mode is not None and uses_json_tool(body):
        tool: dict[str, Any] = {"name": JSON_TOOL, "description": json_mode["description"]}
        tool["input_schema"] = json_mode["schema"] or {"type": "object"}
        tools.append(tool)
        tool_choice = {"type": "tool", "name": JSON_TOOL}
    elif json_mode is not None:
        system.append({"type": "text", "text": _json_instruction(json_mode["schema"])})

    request: dict[str, Any] = {"model": upstream_model, "max_tokens": max_tokens, "messages": messages}
    if system:
        request["system"] = system
    if tools:
        request["tools"] = tools
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
    stops = _chat_stop(body.get("stop"))
    if stops:
        request["stop_sequences"] = stops
    thinking = _chat_thinking(body, max_tokens)
    if thinking is not None:
        request["thinking"] = thinking
    if thinking is None or thinking.get("type") == "disabled":
        # With thinking on, Anthropic accepts only the default sampling parameters: they are left out then.
        if body.get("temperature") is not None:
            # OpenAI allows temperatures up to 2, Anthropic up to 1: clamp rather than refuse.
            request["temperature"] = min(max(as_number(body["temperature"], "temperature"), 0), 1)
        if body.get("top_p") is not None:
            request["top_p"] = as_number(body["top_p"], "top_p")
        if body.get("top_k") is not None:  # not OpenAI's, but clients pass it (extra_body) for Anthropic
            request["top_k"] = as_int(body["top_k"], "top_k")
    if body.get("user") is not None:
        request["metadata"] = {"user_id": as_str(body["user"], "user")}
    if as_flag(body.get("stream"), "stream"):
        request["stream"] = True
    return request


def uses_json_tool(body: dict[str, Any]) -> bool:
    """Whether JSON mode is done with the forced `JSON_TOOL` for this internal body (see the module docs):
    JSON was asked for, and the request has neither tools of its own nor extended thinking."""
    if not isinstance(body, dict):
        return False
    try:
        return _json_mode(body) is not None and not body.get("tools") and not _thinking_requested(body)
    except RelayError:
        return False


def _json_mode(body: dict[str, Any]) -> dict[str, Any] | None:
    """What `response_format` asks for: None for plain text, else the schema (None: any object) and the
    description the JSON tool gets."""
    json_format = read_response_format(body.get("response_format"))
    if json_format is None:
        return None
    if json_format.spec is None:
        return {"schema": None, "description": "Answer with a JSON object: the tool's input is the reply."}
    description = json_format.spec.get("description")
    if description is None:
        name = json_format.spec.get("name")
        what = name if isinstance(name, str) and name else "a JSON object"
        description = f"Answer with {what}: the tool's input is the reply."
    description = as_str(description, "response_format.json_schema.description")
    return {"schema": json_format.schema, "description": description}


def _json_instruction(schema: dict[str, Any] | None) -> str:
    text = "Answer with only a JSON object: no other text, no Markdown code fences."
    if schema is not None:
        encoded = dumps_checked(schema, "response_format.json_schema.schema")
        text += f" The object must match this JSON schema: {encoded}"
    return text


def _thinking_requested(body: dict[str, Any]) -> bool:
    """Extended thinking asked for, judged from the body alone (so decoders reach the same answer)."""
    thinking = body.get("thinking")
    if thinking is not None:
        return not isinstance(thinking, dict) or thinking.get("type") != "disabled"
    effort = body.get("reasoning_effort")
    return isinstance(effort, str) and _THINKING_BUDGETS.get(effort, 0) > 0


def _chat_thinking(body: dict[str, Any], max_tokens: int) -> dict[str, Any] | None:
    if body.get("thinking") is not None:  # sent by the client for Anthropic (extra_body): passed as is
        return as_dict(body["thinking"], "thinking")
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in _THINKING_BUDGETS:
        fail(f"must be one of {', '.join(_THINKING_BUDGETS)}", "reasoning_effort")
    # The budget must stay below max_tokens, and Anthropic refuses budgets under 1024: no thinking then.
    budget = min(_THINKING_BUDGETS[effort], max_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget >= _MIN_THINKING_BUDGET else None


def _chat_stop(stop: Any) -> list[str]:
    return [item for item in read_stop(stop) if item.strip()]  # Anthropic refuses whitespace-only stop sequences


def _chat_tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in function_tools(tools, _TARGET):
        converted: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            converted["description"] = tool.description
        schema = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
        # Anthropic requires an object schema at the root; OpenAI clients sometimes leave `type` out.
        converted["input_schema"] = schema if "type" in schema else {"type": "object", **schema}
        if "cache_control" in tool.tool:
            converted["cache_control"] = tool.tool["cache_control"]
        out.append(converted)
    return out


def _chat_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None = None
    checked = read_tool_choice(choice, _TARGET)
    if checked is not None:
        mode, name = checked
        result = {"type": "tool", "name": name} if mode == "function" else {"type": _TOOL_CHOICE_TO_ANTHROPIC[mode]}
    if parallel is not None and not isinstance(parallel, bool):
        fail("must be a boolean", "parallel_tool_calls")
    if parallel is False:
        result = result or {"type": "auto"}
        if result["type"] != "none":  # {"type": "none"} takes no parallelism flag
            result["disable_parallel_tool_use"] = True
    return result


def _chat_messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Internal messages as (system blocks, alternating Anthropic turns starting with the user's)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    legacy_call_id: str | None = None  # the id given to the last legacy `function_call`
    for i, param, message, role in chat_messages(messages):
        if role in ("system", "developer"):
            system.extend(_chat_blocks(message.get("content"), f"{param}.content", text_only=True))
            continue
        if role == "user":
            blocks = _chat_blocks(message.get("content"), f"{param}.content")
        elif role == "assistant":
            blocks = _chat_assistant_blocks(message, param)
            if message.get("function_call") is not None:  # legacy functions: the call has no id of its own
                legacy_call_id = f"call_legacy_{i}"
                blocks.append(_tool_use(legacy_call_id, message["function_call"], f"{param}.function_call"))
        elif role == "tool":
            role = "user"
            tool_use_id = as_str(message.get("tool_call_id"), f"{param}.tool_call_id", non_empty=True)
            blocks = [_tool_result(tool_use_id, message.get("content"), f"{param}.content")]
        else:  # a legacy function result
            if legacy_call_id is None:
                fail("a function message must follow an assistant message with a function_call", param)
            role = "user"
            blocks = [_tool_result(legacy_call_id, message.get("content"), f"{param}.content")]
        if not blocks:
            continue  # a message left with no blocks (empty text) is dropped: Anthropic refuses it
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # Anthropic wants roles to alternate: merge
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Anthropic wants a user turn's tool results before any other block (merging can interleave them).
            results = [b for b in turn["content"] if b["type"] == "tool_result"]
            if results and len(results) < len(turn["content"]):
                turn["content"] = results + [b for b in turn["content"] if b["type"] != "tool_result"]
    _strip_final_assistant(turns)
    if not turns or turns[0]["role"] != "user":
        # Anthropic requires the conversation to open with a user turn, while an OpenAI one may open with the
        # assistant (after the system prompt) or hold only a system prompt. A minimal user turn keeps every
        # message the client sent, where dropping the assistant's would change the conversation.
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_USER_TEXT}]})
    return system, turns


def _strip_final_assistant(turns: list[dict[str, Any]]) -> None:
    """A final assistant turn is a prefill Anthropic continues from; it refuses one ending in whitespace."""
    if not turns or turns[-1]["role"] != "assistant":
        return
    content = turns[-1]["content"]
    if content[-1]["type"] == "text":
        text = content[-1]["text"].rstrip()
        if text:
            content[-1] = {**content[-1], "text": text}
        else:
            content.pop()
    if not content:
        turns.pop()


def _chat_blocks(content: Any, param: str, *, text_only: bool = False) -> list[dict[str, Any]]:
    """Message content (a string, a list of parts or null) as Anthropic blocks, empty texts left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks = []
    for j, part in enumerate(as_list(content, param)):
        block = _chat_part(part, f"{param}.{j}", text_only)
        if block is not None:
            blocks.append(block)
    return blocks


def _chat_part(part: Any, param: str, text_only: bool) -> dict[str, Any] | None:
    part = as_dict(part, param)
    kind = kind_of(part.get("type"))
    if kind in ("text", "refusal"):  # an assistant's refusal part is text it said
        text = as_str(part.get(kind), f"{param}.{kind}")
        if not text.strip():
            return None  # Anthropic refuses empty (and whitespace-only) text blocks
        block: dict[str, Any] = {"type": "text", "text": text}
    elif kind == "image_url" and not text_only:
        block = {"type": "image", "source": _image_source(part.get("image_url"), f"{param}.image_url")}
    else:
        fail(f"content parts of type {short(part.get('type'))} cannot be sent to an Anthropic model here", param)
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _image_source(image_url: Any, param: str) -> dict[str, Any]:
    media_type, data = read_image_url(image_url, param)
    if media_type is None:
        return {"type": "url", "url": data}
    return {"type": "base64", "media_type": media_type, "data": data}


def _chat_assistant_blocks(message: dict[str, Any], param: str) -> list[dict[str, Any]]:
    blocks = []
    # Signed thinking goes first: Anthropic checks that a turn's thinking precedes its text and tool use.
    if message.get("thinking_blocks") is not None:
        for k, block in enumerate(as_list(message["thinking_blocks"], f"{param}.thinking_blocks")):
            blocks.append(_thinking_block(block, f"{param}.thinking_blocks.{k}"))
    blocks.extend(_chat_blocks(message.get("content"), f"{param}.content", text_only=True))
    if message.get("tool_calls") is not None:
        for k, call in enumerate(as_list(message["tool_calls"], f"{param}.tool_calls")):
            where = f"{param}.tool_calls.{k}"
            call = as_dict(call, where)
            call_id = as_str(call.get("id"), f"{where}.id", non_empty=True)
            blocks.append(_tool_use(call_id, call.get("function"), f"{where}.function"))
    return blocks


def _thinking_block(block: Any, param: str) -> dict[str, Any]:
    block = as_dict(block, param)
    kind = kind_of(block.get("type"))
    if kind == "thinking":
        thinking = as_str(block.get("thinking"), f"{param}.thinking")
        return {
            "type": "thinking",
            "thinking": thinking,
            "signature": as_str(block.get("signature"), f"{param}.signature"),
        }
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": as_str(block.get("data"), f"{param}.data")}
    fail("must be 'thinking' or 'redacted_thinking'", f"{param}.type")


def _tool_id(call_id: str) -> str:
    return _INVALID_TOOL_ID_CHARS.sub("_", call_id)


def _tool_use(call_id: str, function: Any, param: str) -> dict[str, Any]:
    name, tool_input = read_function_call(function, param)
    return {"type": "tool_use", "id": _tool_id(call_id), "name": name, "input": tool_input}


def _tool_result(tool_use_id: str, content: Any, param: str) -> dict[str, Any]:
    blocks = _chat_blocks(content, param)
    if all(block["type"] == "text" and "cache_control" not in block for block in blocks):
        text: str | list[dict[str, Any]] = "\n".join(block["text"] for block in blocks)
    else:
        text = blocks  # images (or cache breakpoints) need the block form
    return {"type": "tool_result", "tool_use_id": _tool_id(tool_use_id), "content": text}


# -------------------------------------------------------------------------------------------------- usage


def usage_from_anthropic(usage: dict[str, Any]) -> Usage:
    """Anthropic's usage in OpenAI's convention: input_tokens excludes cache reads and writes, prompt_tokens
    includes both."""
    input_tokens = token_count(usage.get("input_tokens"))
    cache_read = token_count(usage.get("cache_read_input_tokens"))
    cache_write = token_count(usage.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=input_tokens + cache_read + cache_write,
        completion_tokens=token_count(usage.get("output_tokens")),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def usage_to_anthropic(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


# -------------------------------------------------------------------------------------------------- replies


def anthropic_reply_to_chat(reply: dict[str, Any], json_tool: bool) -> tuple[dict[str, Any], Usage]:
    """A native Message as a `chat.completion`, and its usage. ValueError when it is not a Message."""
    if not isinstance(reply, dict) or not isinstance(reply.get("content"), list):
        raise ValueError("the upstream reply is not an Anthropic Message")
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    json_answer: str | None = None
    for block in reply["content"]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking":
            thinking = block.get("thinking") if isinstance(block.get("thinking"), str) else ""
            reasoning.append(thinking)
            signature = block.get("signature") if isinstance(block.get("signature"), str) else ""
            thinking_blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
        elif kind == "redacted_thinking":
            data = block.get("data") if isinstance(block.get("data"), str) else ""
            thinking_blocks.append({"type": "redacted_thinking", "data": data})
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_tool and block.get("name") == JSON_TOOL:
                json_answer = arguments
            else:
                function = {"name": block.get("name", ""), "arguments": arguments}
                tool_calls.append({"id": block.get("id", ""), "type": "function", "function": function})
    stop_reason = reply.get("stop_reason")
    finish_reason = _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    content = "".join(texts) if texts else None
    if json_answer is not None:
        content = json_answer  # the forced tool's input is the answer; the call itself is ours, not the client's
        if finish_reason == "tool_calls":
            finish_reason = "stop"
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = usage_from_anthropic(reply["usage"] if isinstance(reply.get("usage"), dict) else {})
    completion = {
        "id": reply.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.get("model", ""),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage_to_openai(usage),
    }
    return completion, usage


def _message_id(completion_id: Any) -> str:
    completion_id = completion_id if isinstance(completion_id, str) else ""
    return completion_id if completion_id.startswith("msg_") else f"msg_{completion_id}"


def _stop_reason(finish_reason: Any, called_tools: bool) -> str:
    stop_reason = _STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"
    # Some OpenAI-compatible servers report "stop" after a tool call; Anthropic clients (Claude Code) run
    # tools only on stop_reason tool_use.
    return "tool_use" if called_tools and stop_reason == "end_turn" else stop_reason


def chat_to_anthropic_reply(completion: dict[str, Any], usage: Usage, model: str) -> dict[str, Any]:
    """A `chat.completion` (from an OpenAI-format upstream) as a native Message for `model`."""
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    thinking_blocks = message.get("thinking_blocks")
    if isinstance(thinking_blocks, list) and thinking_blocks:  # signed blocks (a LiteLLM-style upstream)
        for block in thinking_blocks:
            try:
                content.append(_thinking_block(block, "thinking_blocks"))
            except RelayError:
                continue
    else:
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    for value in (content_text(message.get("content")), message.get("refusal")):
        if isinstance(value, str) and value:
            content.append({"type": "text", "text": value})
    calls = message_tool_calls(message)
    for i, (call_id, function) in enumerate(calls):
        call_id = call_id if isinstance(call_id, str) and call_id else f"toolu_{i}"
        name = function.get("name") if isinstance(function.get("name"), str) else ""
        tool_input = arguments_object(function.get("arguments"))
        content.append({"type": "tool_use", "id": call_id, "name": name, "input": tool_input})
    return {
        "id": _message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(choice.get("finish_reason"), bool(calls)),
        "stop_sequence": None,
        "usage": usage_to_anthropic(usage),
    }


def _block_texts(block: Any) -> list[str]:
    """Generated text of a content block or delta (for counting tokens offline)."""
    if not isinstance(block, dict):
        return []
    texts = [
        block[k] for k in ("text", "thinking", "partial_json", "name") if isinstance(block.get(k), str) and block[k]
    ]
    if block.get("type") == "tool_use" and isinstance(block.get("input"), dict) and block["input"]:
        texts.append(orjson.dumps(block["input"]).decode())
    return texts


def anthropic_reply_usage(body: bytes) -> tuple[Usage | None, list[str]]:
    """A native reply's usage, and (only when it reports none) its generated texts."""
    reply = orjson.loads(body)
    if not isinstance(reply, dict):
        raise ValueError("the upstream reply is not a JSON object")
    if isinstance(reply.get("usage"), dict):
        return usage_from_anthropic(reply["usage"]), []
    return None, [text for block in reply.get("content") or () for text in _block_texts(block)]


# -------------------------------------------------------------------------------------------------- streams


def _sse_event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _UsageFields:
    """Usage spread over a stream: input in message_start, cumulative output (and sometimes input) in
    message_delta. Later non-null values replace earlier ones."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}

    def update(self, usage: Any) -> Usage | None:
        if isinstance(usage, dict):
            self.fields.update((key, usage[key]) for key in _USAGE_KEYS if usage.get(key) is not None)
        return usage_from_anthropic(self.fields) if self.fields else None


class AnthropicToChatStream:
    """Decodes an Anthropic SSE stream into internal chunks (a StreamDecoder).

    OpenAI numbers tool calls 0, 1, ... in `index`; Anthropic numbers every content block (text and
    thinking included), so block indexes are mapped to tool-call counters as tool_use blocks start.
    """

    def __init__(self, json_tool: bool) -> None:
        self.usage: Usage | None = None
        self.done = False
        self.error_message: str | None = None
        self._json_tool = json_tool
        self._id = ""
        self._model = ""
        self.text_chunk_version = 0  # counts the changes to what `text_chunk` gives (message_start's id and model)
        self._created = int(time.time())
        self._usage = _UsageFields()
        self._tool_index: dict[Any, int] = {}  # content-block index → tool-call index, or _JSON_ANSWER
        self._tool_calls = 0

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return choice_chunk(self._id, self._created, self._model, 0, delta, finish_reason)

    def text_chunk(self, text: str) -> dict[str, Any] | None:
        """The chunk a text delta of `text` gives in the stream's current state (None: none, in JSON-tool mode).
        A text delta changes no state, so its chunk depends on nothing else."""
        return None if self._json_tool else self._chunk({"content": text})

    @staticmethod
    def compiled_text_deltas(
        texts: list[str | bytes], secrets: tuple[bytes, ...], partial: bytearray
    ) -> Callable[[bytes], bytes | None] | None:
        """The compiled path for this stream's usual event, a text delta (relay/_eventscan.c); None when the
        extension was not built. TranslatingTap sets its template from `text_chunk`."""
        return AnthropicTextDeltas(texts, secrets, partial) if AnthropicTextDeltas is not None else None

    def feed(self, event: bytes) -> list[dict[str, Any]]:
        data = sse_json(event)
        if not isinstance(data, dict):
            return []
        kind = data.get("type")
        if kind == "content_block_delta":  # the most frequent event first
            return self._block_delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "message_start":
            message = data.get("message") if isinstance(data.get("message"), dict) else {}
            self._id = message["id"] if isinstance(message.get("id"), str) else ""
            self._model = message["model"] if isinstance(message.get("model"), str) else ""
            self.text_chunk_version += 1
            self.usage = self._usage.update(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            self.usage = self._usage.update(data.get("usage"))
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
            stop_reason = delta.get("stop_reason")
            finish_reason = _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
            if self._json_tool and finish_reason == "tool_calls":
                finish_reason = "stop"  # the forced JSON tool's call is the answer, not a call for the client
            return [self._chunk({}, finish_reason)]
        if kind == "message_stop":
            self.done = True
        elif kind == "error":
            error = data.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            self.error_message = message if isinstance(message, str) else orjson.dumps(error).decode()
        return []  # ping, content_block_stop, message_stop, error and anything new

    def _block_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "tool_use":
            name = block.get("name") if isinstance(block.get("name"), str) else ""
            if self._json_tool and name == JSON_TOOL:
                self._tool_index[data.get("index")] = _JSON_ANSWER
                return []
            index = self._tool_index[data.get("index")] = self._tool_calls
            self._tool_calls += 1
            call = {"index": index, "id": block.get("id", ""), "type": "function"}
            call["function"] = {"name": name, "arguments": ""}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "redacted_thinking":
            return [self._chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": block.get("data", "")}]})]
        if kind == "text" and block.get("text") and not self._json_tool:
            return [self._chunk({"content": block["text"]})]
        if kind == "thinking" and block.get("thinking"):
            return [self._chunk({"reasoning_content": block["thinking"]})]
        return []

    def _block_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            # In JSON-tool mode the answer is the tool input; stray text would make the content invalid JSON.
            return [self._chunk({"content": text})] if text and not self._json_tool else []
        if kind == "input_json_delta":
            partial = delta.get("partial_json")
            index = self._tool_index.get(data.get("index")) if partial else None
            if index is None:
                return []  # empty fragment, or the input of a block that is not a tool call (server tools)
            if index == _JSON_ANSWER:
                return [self._chunk({"content": partial})]
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": partial}}]})]
        if kind == "thinking_delta":
            thinking = delta.get("thinking")
            return [self._chunk({"reasoning_content": thinking})] if thinking else []
        if kind == "signature_delta":
            signature = {"type": "thinking", "thinking": "", "signature": delta.get("signature", "")}
            return [self._chunk({"thinking_blocks": [signature]})]
        return []  # citations and anything new


class ChatToAnthropicStream:
    """Encodes internal chunks as Anthropic SSE events (a StreamEncoder).

    Anthropic streams one content block at a time (start, deltas, stop), numbered 0, 1, 2, ...; a change
    of kind (text, thinking, a new tool call) closes the open block and starts the next.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._message_id = "msg_"
        self._next_block = 0
        self._open: str | None = None  # the kind of the open block: "text", "thinking", "tool"
        self._open_index = -1
        self._tools: dict[Any, tuple[int, str]] = {}  # tool-call key (index or id) → (block index, call id)
        self._current_tool: Any = None
        self._finish_reason: Any = None

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._message_start(chunk.get("id"))
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return out  # a usage-only chunk: usage comes with finish()
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out += self._delta("thinking", {"type": "thinking_delta", "thinking": reasoning})
        for block in delta.get("thinking_blocks") or ():
            out += self._thinking_block(block)
        for value in (delta.get("content"), delta.get("refusal")):
            if isinstance(value, str) and value:
                out += self._delta("text", {"type": "text_delta", "text": value})
        for call in delta.get("tool_calls") or ():
            out += self._tool_call(call)
        if choice.get("finish_reason"):
            out += self._close()
            self._finish_reason = choice["finish_reason"]
        return out

    def finish(self, usage: Usage) -> bytes:
        out = b"" if self._started else self._message_start(None)
        out += self._close()
        stop_reason = _stop_reason(self._finish_reason, bool(self._tools))
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        out += _sse_event(
            "message_delta", {"type": "message_delta", "delta": delta, "usage": usage_to_anthropic(usage)}
        )
        return out + _sse_event("message_stop", {"type": "message_stop"})

    def _message_start(self, completion_id: Any) -> bytes:
        self._started = True
        self._message_id = _message_id(completion_id)
        message = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},  # known only at the end: sent in message_delta
        }
        return _sse_event("message_start", {"type": "message_start", "message": message})

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._open, self._open_index = kind, self._next_block
        self._next_block += 1
        return out + _sse_event(
            "content_block_start", {"type": "content_block_start", "index": self._open_index, "content_block": block}
        )

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _sse_event("content_block_stop", {"type": "content_block_stop", "index": self._open_index})

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _delta(self, kind: str, delta: dict[str, Any]) -> bytes:
        out = b""
        if self._open != kind:
            empty = (
                {"type": "text", "text": ""}
                if kind == "text"
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
            out = self._open_block(kind, empty)
        return out + self._block_delta(self._open_index, delta)

    def _thinking_block(self, block: Any) -> bytes:
        """A `thinking_blocks` delta: a signature for the open thinking block, or a whole redacted block."""
        if not isinstance(block, dict):
            return b""
        if block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
            out = self._open_block("redacted", {"type": "redacted_thinking", "data": block["data"]})
            return out + self._close()
        out = b""
        if isinstance(block.get("thinking"), str) and block["thinking"]:
            out += self._delta("thinking", {"type": "thinking_delta", "thinking": block["thinking"]})
        if isinstance(block.get("signature"), str) and block["signature"]:
            out += self._delta("thinking", {"type": "signature_delta", "signature": block["signature"]})
        return out

    def _tool_call(self, call: Any) -> bytes:
        if not isinstance(call, dict):
            return b""
        index, call_id = call.get("index"), call.get("id")
        call_id = call_id if isinstance(call_id, str) and call_id else None
        # OpenAI sends id and name only in a call's first fragment, keyed by index; some servers omit the
        # index, others reuse index 0 for every call with a new id: a new index or a new id opens a block.
        key = index if is_int(index) else call_id if call_id is not None else self._current_tool
        known = self._tools.get(key) if key is not None else None
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        out = b""
        if known is None or (call_id is not None and call_id != known[1]):
            name = function.get("name") if isinstance(function.get("name"), str) else ""
            tool_id = call_id or f"toolu_{self._message_id.removeprefix('msg_')}_{self._next_block}"
            out = self._open_block("tool", {"type": "tool_use", "id": tool_id, "name": name, "input": {}})
            key = key if key is not None else ("block", self._open_index)
            known = self._tools[key] = (self._open_index, tool_id)
            self._current_tool = key
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # Fragments of an earlier call (interleaved, which OpenAI itself never does) go to that call's
            # block: the SDK accumulates by block index, so the call's input is still complete.
            out += self._block_delta(known[0], {"type": "input_json_delta", "partial_json": arguments})
        return out


class AnthropicPassthroughTap:
    """Relays a same-format Anthropic stream byte for byte, reading usage on the side (a StreamTap).

    This is the hot path: only message_start and message_delta events (a handful per stream) are parsed,
    recognised from their `event:` line, or from the bytes when a server leaves that line out.
    """

    # An upstream `error` event is relayed as it came, so there is never an error the client has not seen.
    error_message: str | None = None

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.done = False
        self._usage = _UsageFields()
        self._events: list[bytes] = []

    def feed(self, event: bytes) -> bytes | None:
        self._events.append(event)
        if event.startswith(b"event:"):
            line_end = event.find(b"\n")
            name = event[6 : line_end if line_end >= 0 else len(event)].strip()
            if name == b"message_stop":
                self.done = True
            elif name in (b"message_start", b"message_delta"):
                self._read_usage(event)
        elif event.find(b'"message_') >= 0:
            self._read_usage(event)
        return event

    def _read_usage(self, event: bytes) -> None:
        data = sse_json(event)
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            self.usage = self._usage.update(data["message"].get("usage"))
        elif kind == "message_delta":
            self.usage = self._usage.update(data.get("usage"))
        elif kind == "message_stop":
            self.done = True

    def finish(self, usage: Usage) -> bytes:
        return b""  # the upstream's own message_stop already ended the stream

    def completion_texts(self) -> list[str]:
        texts = []
        for event in self._events:
            if b"content_block_" not in event:
                continue
            data = sse_json(event)
            if isinstance(data, dict):
                texts.extend(_block_texts(data.get("delta") or data.get("content_block")))
        return texts


# --------------------------------------------------------------------------------------------------- errors


def _error_status(error: RelayError) -> tuple[int, str]:
    if error.code == "insufficient_quota":
        return 402, "billing_error"  # OpenAI says 429, which the anthropic SDK would retry in vain; it skips 402
    return error_status(error.status, _ERROR_TYPES, "api_error", "invalid_request_error")


def anthropic_error(error: RelayError) -> tuple[int, bytes]:
    """The HTTP status and Anthropic-shaped body of an error (the anthropic SDK raises on other shapes)."""
    status, kind = _error_status(error)
    return status, orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})


def anthropic_stream_error(error: RelayError) -> bytes:
    """The `event: error` SSE event that ends a stream which failed after it began."""
    return b"event: error\ndata: " + anthropic_error(error)[1] + b"\n\n"
