"""The chat job: one chat request from a client of any format, to a provider of any format.

When the client's format is the provider's, the client's bytes are forwarded and the reply relayed as it
came (usage read on the side). Otherwise the request goes out encoded from the internal shape, and the
reply comes back decoded to it and encoded in the client's format.
"""

from __future__ import annotations

from llmrelay.formats.base import ClientFormat, Completion, StreamEncoder
from llmrelay.formats.openai import generated_texts, http_image_urls
from llmrelay.metering.pricing import Price, Usage
from llmrelay.metering.tokens import (
    count_chat_prompt,
    count_completion,
    counts_exactly,
    ensure_tokenizers,
    prompt_token_bound,
)
from llmrelay.metering.usage_check import usable_usage
from llmrelay.providers.base import Capability, StreamTap, UpstreamRequest
from llmrelay.providers.images import ImageFetcher, ImageFetchError
from llmrelay.relay.errors import RelayError, bad_request
from llmrelay.relay.jobs import SSE_HEADERS, Reply, TokenBudget, TokenJob
from llmrelay.relay.request import ChatRequest
from llmrelay.relay.routing import Route
from llmrelay.relay.streaming import JsonArrayTap, TranslatingTap

JSON_ARRAY_HEADERS = [(b"content-type", b"application/json; charset=utf-8"), (b"cache-control", b"no-cache")]


class ChatJob(TokenJob):
    capability = Capability.CHAT
    reply = Reply.EVENTS

    def __init__(self, request: ChatRequest, client: ClientFormat) -> None:
        self.request = request
        self.client = client
        self.endpoint = client.endpoint
        self.body = request.body
        self.model = request.model
        self.stream = request.stream
        self.default_max_output = 4096  # replaced by the model's own limit once its price is known
        self.upstream_model = ""  # the model the prompt is bounded for, once routed
        self._array: JsonArrayTap | None = None  # the framing of a stream sent as a JSON array

    def budget(self) -> TokenBudget:
        # Media are bounded by what the upstream model's provider bills (an unrouted job: the largest bound).
        bound = prompt_token_bound(self.body["messages"], self.body.get("tools"), self.upstream_model)
        return TokenBudget(bound, self.request.max_output_tokens, self.request.choices)

    def exact_prompt_tokens(self, upstream_model: str) -> int | None:
        if not counts_exactly(upstream_model):
            return None
        return count_chat_prompt(self.body["messages"], upstream_model, self.body.get("tools"))

    async def plan(self, price: Price, available_nano: int | None, route: Route) -> tuple[int, int | None]:
        # A reply without max_tokens is reserved at the model's longest; an upstream that needs an explicit
        # limit (Anthropic) is sent that same limit, so the reservation still covers the reply.
        self.default_max_output = price.max_output_tokens
        self.upstream_model = route.upstream_model
        return await super().plan(price, available_nano, route)

    def same_format(self, route: Route) -> bool:
        """Whether the channel takes the client's own format, so the request is forwarded as sent. A
        Responses API request is forwarded to OpenAI channels that serve that API (`responses: true`)."""
        source = self.request.source_format
        provider = route.channel.provider
        if source == "responses":
            return provider.wire_format == "openai" and route.channel.config.responses
        return provider.wire_format == source

    async def prepare(self, route: Route, images: ImageFetcher) -> None:
        provider = route.channel.provider
        if provider.inlines_images and not self.same_format(route):
            urls = http_image_urls(self.body)
            if urls:
                try:
                    self.request.inline_images = await images.fetch_all(urls)
                except ImageFetchError as exc:
                    raise bad_request(str(exc), "messages", "invalid_image_url") from None

    def upstream_request(self, route: Route, cap: int | None) -> UpstreamRequest:
        if self.request.untranslatable is not None and not self.same_format(route):
            raise self.request.untranslatable
        return route.channel.provider.chat_request(
            route.channel.config, self.request, route.upstream_model, cap, self.default_max_output
        )

    def stream_tap(self, route: Route) -> StreamTap:
        provider = route.channel.provider
        if self.same_format(route):
            tap: StreamTap = provider.chat_stream_tap(self.request)
        else:
            tap = TranslatingTap(provider.stream_decoder(self.request), self.stream_encoder())
        if not self.request.sse:
            self._array = tap = JsonArrayTap(tap)
        return tap

    def stream_headers(self) -> list[tuple[bytes, bytes]]:
        return SSE_HEADERS if self.request.sse else JSON_ARRAY_HEADERS

    def stream_failure(self, error: RelayError) -> bytes:
        event = super().stream_failure(error)
        return self._array.fail(event) if self._array is not None else event

    async def finish_body(self, body: bytes, content_type: str, route: Route) -> tuple[Usage, str, bytes, str]:
        if self.same_format(route):
            return await super().finish_body(body, content_type, route)
        completion, usage = route.channel.provider.decode_chat_reply(body, self.request)  # ValueError -> 502
        source = "upstream"
        texts = generated_texts([completion])
        if usage is None or not usable_usage(usage, True, any(texts)):
            usage, source = await self.count_usage(texts, route.upstream_model), "tokenizer"
        return usage, source, self.encode_reply(completion, usage), "application/json"

    def stream_encoder(self) -> StreamEncoder:
        """The encoder of a translated stream, in the client's format."""
        return self.client.stream_encoder(self.request)

    def encode_reply(self, completion: Completion, usage: Usage) -> bytes:
        """A translated non-stream reply, in the client's format."""
        return self.client.encode_reply(completion, usage, self.request)

    def reply_texts(self, body: bytes, route: Route) -> list[str]:
        return generated_texts([route.channel.provider.decode_chat_reply(body, self.request)[0]])

    async def count_usage(self, completion_texts: list[str], upstream_model: str) -> Usage:
        await ensure_tokenizers()
        prompt = count_chat_prompt(self.body["messages"], upstream_model, self.body.get("tools"))
        return Usage(prompt, count_completion(completion_texts, upstream_model))
