"""What the relay runs: a Job is one client request, parsed by a surface, that knows how to bound its cost,
build its upstream request and meter the reply. The pipeline (relay/pipeline.py) is the same for all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson

from llmrelay.formats.base import ClientFormat
from llmrelay.formats.openai import OPENAI_CLIENT, generated_texts
from llmrelay.metering.pricing import Price, Usage
from llmrelay.metering.quota import plan_reservation
from llmrelay.metering.tokens import ensure_tokenizers
from llmrelay.metering.usage_check import usable_usage
from llmrelay.providers.base import Capability, StreamTap, UpstreamRequest
from llmrelay.providers.images import ImageFetcher
from llmrelay.relay.errors import RelayError
from llmrelay.relay.routing import Route

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies in front of us not to buffer the stream
]


class Reply(StrEnum):
    """How the upstream answers: one body, an SSE stream, or a byte stream (audio)."""

    BODY = "body"
    EVENTS = "events"
    BYTES = "bytes"


class Job:
    """Base of every relayed request. Subclasses set the class attributes and fill in the hooks they use."""

    endpoint: str  # e.g. "chat.completions", as usage records name it
    capability: Capability
    reply: Reply = Reply.BODY
    model: str
    stream: bool = False
    client: ClientFormat = OPENAI_CLIENT  # the format the client speaks: errors mid-stream are written in it
    prompt_nonempty = True  # an upstream's report of 0 prompt tokens is then impossible, and counted offline

    def rate_tokens(self) -> int:
        """The tokens a key's tokens-per-minute limit is charged when the request is admitted (corrected to
        the reported usage when it ends): none for jobs not billed by tokens."""
        return 0

    def bound(self, price: Price) -> Usage:
        """The most this request can consume; its cost at `price` is what the reservation holds."""
        raise NotImplementedError

    async def plan(self, price: Price, available_nano: int | None, route: Route) -> tuple[int, int | None]:
        """(nano-dollars to reserve, output-token cap to impose or None)."""
        return price.cost_nano(self.bound(price)), None

    async def prepare(self, route: Route, images: ImageFetcher) -> None:
        """Anything the upstream request needs fetched first (images for an upstream that takes them only
        inline); most jobs need nothing."""

    def upstream_request(self, route: Route, cap: int | None) -> UpstreamRequest:
        raise NotImplementedError

    async def meter(self, body: bytes, route: Route) -> tuple[Usage, str]:
        """Usage of a complete reply, and where it came from ("upstream", "tokenizer", "request", "audio")."""
        raise NotImplementedError

    def stream_tap(self, route: Route) -> StreamTap:
        raise NotImplementedError

    def stream_headers(self) -> list[tuple[bytes, bytes]]:
        return SSE_HEADERS

    def stream_failure(self, error: RelayError) -> bytes:
        """What ends the client's stream when it failed after it began: an error in the client's format."""
        return self.client.stream_error(error)

    async def meter_stream(self, tap: StreamTap, route: Route) -> tuple[Usage, str]:
        """Usage of a (possibly cut short) event stream: the upstream's report, or the offline count of what
        was delivered. A stream cut before its end may carry a report made before the reply (Claude reports
        output tokens only in its last events): it is billed at least the count of what was delivered."""
        reported = tap.usage
        if reported is not None and reported.completion_tokens <= 0 and any(tap.completion_texts()):
            reported = None  # zero tokens for a reply that has text: an upstream that cannot count
        if reported is not None and not usable_usage(reported, self.prompt_nonempty, False):
            reported = None
        if reported is not None and tap.done:
            return reported, "upstream"
        if reported is None:
            return await self.count_usage(tap.completion_texts(), route.upstream_model), "tokenizer"
        try:
            counted = await self.count_usage(tap.completion_texts(), route.upstream_model)
        except Exception:  # the report stands when counting is impossible
            return reported, "upstream"
        if counted.completion_tokens > reported.completion_tokens:
            return replace(reported, completion_tokens=counted.completion_tokens), "tokenizer"
        return reported, "upstream"

    async def count_usage(self, completion_texts: list[str], upstream_model: str) -> Usage:
        """Usage counted offline, for an upstream that reported none."""
        raise NotImplementedError

    async def abandoned_usage(self, route: Route) -> tuple[Usage, str] | None:
        """What a request costs when it is left after the upstream call began but before a reply was relayed
        (the client went away, or the gateway's shutdown cancelled it), and where that came from; None charges
        nothing. Token jobs charge their prompt (see TokenJob); other jobs are not charged."""
        return None

    def transform_reply(self, body: bytes, content_type: str) -> tuple[bytes, str]:
        """The body and content type the client gets (unchanged unless a job had to ask for another form)."""
        return body, content_type

    async def finish_body(self, body: bytes, content_type: str, route: Route) -> tuple[Usage, str, bytes, str]:
        """A complete upstream reply as (usage, its source, the client's body, its content type)."""
        usage, source = await self.meter(body, route)
        body, content_type = self.transform_reply(body, content_type)
        return usage, source, body, content_type


@dataclass(slots=True)
class TokenBudget:
    """What a token-billed request may consume: prompt bound, output ceiling, number of choices."""

    prompt_bound: int
    max_output_tokens: int | None
    choices: int


class TokenJob(Job):
    """Chat and legacy completions: billed by tokens, reply as one body or as an SSE stream."""

    body: dict[str, Any]
    _planned: TokenBudget | None = None  # the budget plan() reserved for

    def budget(self) -> TokenBudget:
        raise NotImplementedError

    def rate_tokens(self) -> int:
        """Like OpenAI's own estimate: the prompt's size (about four bytes a token) and the output asked for
        (from the budget the reservation was planned with, not measured again)."""
        budget = self._planned or self.budget()
        return -(-budget.prompt_bound // 4) + (budget.max_output_tokens or 0) * budget.choices

    def exact_prompt_tokens(self, upstream_model: str) -> int | None:
        """An exact prompt count with our own tokenizer where it is the model's, else None."""
        return None

    async def abandoned_usage(self, route: Route) -> tuple[Usage, str] | None:
        """The prompt, counted offline (the upstream has read it), and no completion."""
        return await self.count_usage([], route.upstream_model), "tokenizer"

    async def meter(self, body: bytes, route: Route) -> tuple[Usage, str]:
        usage, texts = self.reply_usage(body, route)  # ValueError: unreadable -> 502
        if usage is not None:
            if usage.completion_tokens <= 0:
                texts = self.reply_texts(body, route)
            if usable_usage(usage, self.prompt_nonempty, any(texts)):
                return usage, "upstream"
        return await self.count_usage(texts, route.upstream_model), "tokenizer"

    def reply_usage(self, body: bytes, route: Route) -> tuple[Usage | None, list[str]]:
        """A same-format reply's reported usage, and its generated texts when it reports none."""
        return route.channel.provider.parse_chat_response(body)

    def reply_texts(self, body: bytes, route: Route) -> list[str]:
        """The generated texts of a same-format reply (only read when its reported usage is in doubt)."""
        return generated_texts([orjson.loads(body)])

    async def plan(self, price: Price, available_nano: int | None, route: Route) -> tuple[int, int | None]:
        budget = self._planned = self.budget()
        reserved, cap = plan_reservation(
            price, budget.prompt_bound, budget.max_output_tokens, budget.choices, available_nano
        )
        if available_nano is not None and reserved > available_nano:
            # The byte bound can be ~4x the true count. Where our vocabulary is the model's own, an exact count
            # lets a small balance through without giving up the guarantee.
            await ensure_tokenizers()
            exact = self.exact_prompt_tokens(route.upstream_model)
            if exact is not None:
                reserved, cap = plan_reservation(price, exact, budget.max_output_tokens, budget.choices, available_nano)
        return reserved, cap
