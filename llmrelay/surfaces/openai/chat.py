"""POST /v1/chat/completions."""

from __future__ import annotations

from llmrelay.metering.pricing import Usage
from llmrelay.metering.tokens import (
    count_chat_prompt,
    count_completion,
    counts_exactly,
    ensure_tokenizers,
    prompt_token_bound,
)
from llmrelay.providers.base import Capability, StreamTap, UpstreamRequest
from llmrelay.relay.errors import bad_request
from llmrelay.relay.jobs import Reply, TokenBudget, TokenJob
from llmrelay.relay.request import ChatRequest
from llmrelay.relay.routing import Route
from llmrelay.surfaces.openai.fields import json_object, optional_positive_int, stream_flags

MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Validate what the relay itself depends on; every other field is the upstream's to judge."""
    body = json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array of message objects.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] must be an object.", f"messages[{index}]")
        if message.get("role") not in MESSAGE_ROLES:
            raise bad_request(
                f"messages[{index}].role must be one of {', '.join(sorted(MESSAGE_ROLES))}.",
                f"messages[{index}].role",
            )
    stream, include_usage = stream_flags(body)
    max_tokens = optional_positive_int(body, "max_completion_tokens") or optional_positive_int(body, "max_tokens")
    choices = optional_positive_int(body, "n") or 1
    return ChatRequest("openai", raw, body, model, stream, include_usage, max_tokens, choices)


class ChatJob(TokenJob):
    endpoint = "chat.completions"
    capability = Capability.CHAT
    reply = Reply.EVENTS

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.body = request.body
        self.model = request.model
        self.stream = request.stream

    def budget(self) -> TokenBudget:
        bound = prompt_token_bound(self.body["messages"], self.body.get("tools"))
        return TokenBudget(bound, self.request.max_output_tokens, self.request.choices)

    def exact_prompt_tokens(self, upstream_model: str) -> int | None:
        if not counts_exactly(upstream_model):
            return None
        return count_chat_prompt(self.body["messages"], upstream_model, self.body.get("tools"))

    def upstream_request(self, route: Route, cap: int | None) -> UpstreamRequest:
        return route.channel.provider.chat_request(route.channel.config, self.request, route.upstream_model, cap)

    def stream_tap(self, route: Route) -> StreamTap:
        return route.channel.provider.stream_tap(self.request.include_usage, "chat.completion.chunk")

    async def count_usage(self, completion_texts: list[str], upstream_model: str) -> Usage:
        await ensure_tokenizers()
        prompt = count_chat_prompt(self.body["messages"], upstream_model, self.body.get("tools"))
        return Usage(prompt, count_completion(completion_texts, upstream_model))
