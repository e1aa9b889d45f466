"""POST /v1/chat/completions."""

from __future__ import annotations

from llmrelay.formats.openai import OPENAI_CLIENT
from llmrelay.relay.chat import ChatJob
from llmrelay.relay.errors import bad_request
from llmrelay.relay.request import ChatRequest
from llmrelay.surfaces.openai.fields import json_object, optional_positive_int, stream_flags, whole_numbers_as_ints

MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# The integer fields of a chat request (as OpenAI's API reference types them): a whole-number float in one
# of them is sent on as an integer.
INTEGER_FIELDS = ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs")


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Validate what the relay itself depends on; every other field is the upstream's to judge."""
    body = json_object(raw)
    raw = whole_numbers_as_ints(raw, body, INTEGER_FIELDS)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array of message objects.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] must be an object.", f"messages[{index}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in MESSAGE_ROLES:  # a dict role is unhashable: test the type first
            raise bad_request(
                f"messages[{index}].role must be one of {', '.join(sorted(MESSAGE_ROLES))}.",
                f"messages[{index}].role",
            )
    stream, include_usage = stream_flags(body)
    max_tokens = optional_positive_int(body, "max_completion_tokens") or optional_positive_int(body, "max_tokens")
    choices = optional_positive_int(body, "n") or 1
    return ChatRequest("openai", raw, body, model, stream, include_usage, max_tokens, choices, native=body)


def parse_chat_job(raw: bytes, content_type: str | None) -> ChatJob:
    return ChatJob(parse_chat_request(raw), OPENAI_CLIENT)
