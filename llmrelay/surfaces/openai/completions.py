"""POST /v1/completions: the legacy completions API (gpt-3.5-turbo-instruct and compatible servers)."""

from __future__ import annotations

from typing import Any

from llmrelay.metering.pricing import Usage
from llmrelay.metering.tokens import count_completion, count_text, counts_exactly, ensure_tokenizers
from llmrelay.providers.base import Capability, StreamTap, UpstreamRequest, openai_passthrough
from llmrelay.providers.openai import usage_requested
from llmrelay.relay.errors import bad_request
from llmrelay.relay.jobs import Reply, TokenBudget, TokenJob
from llmrelay.relay.routing import Route
from llmrelay.surfaces.openai.fields import json_object, optional_positive_int, stream_flags, whole_numbers_as_ints

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint
INTEGER_FIELDS = ("max_tokens", "n", "best_of", "logprobs", "seed")  # 10.0 in one is sent on as 10


def prompt_pieces(prompt: Any, field: str = "prompt") -> tuple[list[str], int]:
    """A prompt (or embedding input) as its strings and its count of pre-tokenised ids.

    Accepts what OpenAI accepts: a string, a list of strings, a list of token ids, or a list of such lists.
    """
    if isinstance(prompt, str):
        return [prompt], 0
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return list(prompt), 0
        if all(type(p) is int for p in prompt):  # token ids: not booleans, which Python counts as ints
            return [], len(prompt)
        if all(isinstance(p, list) and p and all(type(t) is int for t in p) for p in prompt):
            return [], sum(len(p) for p in prompt)
    raise bad_request(
        f"'{field}' must be a string, an array of strings, an array of token ids, or an array of token id arrays.",
        field,
    )


def prompt_count(prompt: Any) -> int:
    """How many prompts a (valid) prompt field holds: a batch is a list of strings or of token-id lists."""
    if isinstance(prompt, list) and prompt and all(isinstance(p, str | list) for p in prompt):
        return len(prompt)
    return 1


class CompletionJob(TokenJob):
    endpoint = "completions"
    capability = Capability.COMPLETIONS
    reply = Reply.EVENTS
    path = "/completions"

    def __init__(self, raw: bytes, body: dict[str, Any]) -> None:
        self.raw = raw
        self.body = body
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise bad_request("you must provide a model parameter", "model")
        self.model = model
        self.texts, self.token_ids = prompt_pieces(body.get("prompt", ""), "prompt")
        # An empty prompt is legal here (unlike chat): 0 prompt tokens reported for it is then the truth
        # (metering.usage_check.usable_usage).
        self.prompt_nonempty = bool(self.token_ids or any(self.texts))
        self.stream, self.include_usage = stream_flags(body)
        self.max_tokens = optional_positive_int(body, "max_tokens") or DEFAULT_MAX_TOKENS
        # best_of candidates are all generated (and billed); n of them are returned; for each prompt of a batch.
        per_prompt = max(optional_positive_int(body, "n") or 1, optional_positive_int(body, "best_of") or 1)
        self.choices = per_prompt * prompt_count(body.get("prompt", ""))

    def budget(self) -> TokenBudget:
        bound = sum(len(text.encode()) for text in self.texts) + self.token_ids
        return TokenBudget(bound, self.max_tokens, self.choices)

    def exact_prompt_tokens(self, upstream_model: str) -> int | None:
        if not counts_exactly(upstream_model):
            return None
        return sum(count_text(text, upstream_model) for text in self.texts) + self.token_ids

    def upstream_request(self, route: Route, cap: int | None) -> UpstreamRequest:
        new_model = route.upstream_model if route.upstream_model != self.model else None
        provider = openai_passthrough(route.channel)
        ask_usage = self.stream and not self.include_usage and provider.reports_stream_usage(route.channel.config)
        changes = usage_requested(self.body) if ask_usage else {}
        return provider.json_request(
            route.channel.config, self.path, route.upstream_model, self.raw, self.body, new_model, changes
        )

    def stream_tap(self, route: Route) -> StreamTap:
        return openai_passthrough(route.channel).stream_tap(self.include_usage, "text_completion")

    async def count_usage(self, completion_texts: list[str], upstream_model: str) -> Usage:
        await ensure_tokenizers()
        prompt = sum(count_text(text, upstream_model) for text in self.texts) + self.token_ids
        return Usage(prompt, count_completion(completion_texts, upstream_model))


def parse_completion(raw: bytes, content_type: str | None) -> CompletionJob:
    body = json_object(raw)
    return CompletionJob(whole_numbers_as_ints(raw, body, INTEGER_FIELDS), body)
