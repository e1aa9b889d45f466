"""The chat relay: authorize the model → route → price → reserve → call → relay → meter → settle → record.

Nothing here waits on the database: keys, routes and prices are in memory, and the usage record is queued.
Every reservation ends in exactly one settlement and one usage record (cost 0 when nothing was produced),
whatever happens: upstream errors, timeouts, or the client going away mid-stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
import orjson

from llmrelay.metering.money import nano_to_usd
from llmrelay.metering.pricing import Price, PriceTable, Usage
from llmrelay.metering.quota import QuotaLedger, plan_reservation
from llmrelay.metering.recorder import UsageRecorder
from llmrelay.metering.tokens import (
    count_chat_prompt,
    count_completion,
    counts_exactly,
    ensure_tokenizers,
    prompt_token_bound,
)
from llmrelay.providers.base import Channel, StreamTap, UpstreamRequest
from llmrelay.relay.errors import (
    RelayError,
    insufficient_quota,
    model_not_found,
    scrub_secrets,
    upstream_timeout,
    upstream_unreachable,
)
from llmrelay.relay.request import ChatRequest
from llmrelay.relay.routing import Route, Router
from llmrelay.relay.streaming import SseSplitter
from llmrelay.store.cache import KeyState
from llmrelay.store.usage import UsageRecord
from llmrelay.surfaces.http import HttpRequest

log = logging.getLogger("llmrelay.relay")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies in front of us not to buffer the stream
]


@dataclass(slots=True)
class Outcome:
    """What a relayed request produced, for settlement and its usage record."""

    status: str = "ok"
    http_status: int = 200
    usage: Usage | None = None
    usage_source: str = "upstream"


def upstream_http_error(status: int, message: str, channel: Channel) -> RelayError:
    """Relay an upstream error with its status, secrets removed.

    401/403 from the upstream mean the gateway's own upstream credentials failed, not the client's key,
    so the client gets 502 rather than an error its SDK would report as "your API key is wrong".
    """
    message = scrub_secrets(message, (channel.config.api_key,))
    if status in (401, 403):
        return RelayError(
            502,
            f"The upstream rejected the gateway's credentials ({status}): {message}",
            "upstream_error",
            "upstream_auth_failed",
        )
    kind = "invalid_request_error" if status < 500 else "upstream_error"
    if status == 429:
        kind = "rate_limit_error"
    return RelayError(status, message, kind, f"upstream_{status}")


class ChatRelay:
    def __init__(self, router: Router, prices: PriceTable, ledger: QuotaLedger, recorder: UsageRecorder) -> None:
        self.router = router
        self.prices = prices
        self.ledger = ledger
        self.recorder = recorder

    def route_and_price(self, key: KeyState, model: str) -> tuple[Route, Price]:
        """The route and price for a model this key may use, or the 404 the client should see."""
        if not key.may_use(model):
            raise model_not_found(model, "is not enabled for this API key")
        route = self.router.resolve(model)
        if route is None:
            raise model_not_found(model)
        price = self.prices.lookup(model) or self.prices.lookup(route.upstream_model)
        if price is None:
            raise model_not_found(model, "has no price set on this gateway, so it cannot be billed")
        return route, price

    async def reserve(self, key: KeyState, chat: ChatRequest, route: Route, price: Price) -> tuple[int, int | None]:
        """Hold quota for the worst case of this request; returns (amount held, output cap to impose)."""
        messages, tools = chat.body["messages"], chat.body.get("tools")
        available = self.ledger.available_nano(key)
        reserved, cap = plan_reservation(
            price, prompt_token_bound(messages, tools), chat.max_output_tokens, chat.choices, available
        )
        if available is not None and reserved > available and counts_exactly(route.upstream_model):
            # The byte bound can be ~4x the true count. Where our vocabulary is the model's own, an exact count
            # lets a small balance through without giving up the guarantee.
            await ensure_tokenizers()
            prompt = count_chat_prompt(messages, route.upstream_model, tools)
            reserved, cap = plan_reservation(price, prompt, chat.max_output_tokens, chat.choices, available)
        if not await self.ledger.reserve(key, reserved):
            raise insufficient_quota(
                "You exceeded your current quota: this request needs up to "
                f"${nano_to_usd(reserved)} and the key's remaining balance cannot cover it. Top up the key or "
                "lower max_tokens."
            )
        return reserved, cap

    async def chat(self, http: HttpRequest, key: KeyState, chat: ChatRequest) -> None:
        route, price = self.route_and_price(key, chat.model)
        reserved, cap = await self.reserve(key, chat, route, price)
        outcome = Outcome()
        channel = route.channel
        try:
            upstream = channel.provider.chat_request(channel.config, chat, route.upstream_model, cap)
            if chat.stream:
                await self._relay_stream(http, chat, route, upstream, outcome)
            else:
                await self._relay_unary(http, chat, route, upstream, outcome)
        except RelayError as error:
            outcome.status, outcome.http_status = error.code or "error", error.status
            raise
        except asyncio.CancelledError:
            outcome.status, outcome.http_status = "cancelled", 499
            raise
        except Exception:
            outcome.status, outcome.http_status = "internal_error", 500
            raise
        finally:
            cost = price.cost_nano(outcome.usage) if outcome.usage is not None else 0
            await self.ledger.settle(key, reserved, cost)
            usage = outcome.usage or Usage()
            self.recorder.record(
                UsageRecord(
                    request_id=http.request_id,
                    created_ms=int(time.time() * 1000),
                    key_id=key.id,
                    endpoint="chat.completions",
                    model=chat.model,
                    upstream_model=route.upstream_model,
                    channel=channel.config.name,
                    prompt_tokens=usage.prompt_tokens,
                    cached_tokens=usage.cached_tokens,
                    completion_tokens=usage.completion_tokens,
                    cost_nano=cost,
                    status=outcome.status,
                    http_status=outcome.http_status,
                    latency_ms=int((time.perf_counter() - http.started) * 1000),
                    stream=chat.stream,
                    usage_source=outcome.usage_source,
                )
            )

    async def _open(self, http: HttpRequest, channel: Channel, upstream: UpstreamRequest) -> aiohttp.ClientResponse:
        began = time.perf_counter()
        try:
            return await channel.session.post(
                upstream.url, data=upstream.body, headers=upstream.headers, timeout=channel.timeout
            )
        except TimeoutError:
            raise upstream_timeout() from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(scrub_secrets(type(exc).__name__ + ": " + str(exc))) from None
        finally:
            http.upstream_seconds += time.perf_counter() - began

    async def _read_error(self, response: aiohttp.ClientResponse, channel: Channel) -> RelayError:
        try:
            body = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        return upstream_http_error(response.status, channel.provider.error_message(body), channel)

    async def _counted_usage(self, chat: ChatRequest, route: Route, completion_texts: list[str]) -> Usage:
        """Usage counted offline, for an upstream that reported none (or a stream that ended early)."""
        await ensure_tokenizers()
        model = route.upstream_model
        prompt = count_chat_prompt(chat.body["messages"], model, chat.body.get("tools"))
        return Usage(prompt, count_completion(completion_texts, model))

    async def _relay_unary(
        self, http: HttpRequest, chat: ChatRequest, route: Route, upstream: UpstreamRequest, outcome: Outcome
    ) -> None:
        channel = route.channel
        response = await self._open(http, channel, upstream)
        began = time.perf_counter()
        try:
            if response.status >= 400:
                raise await self._read_error(response, channel)
            body = await response.read()
        except TimeoutError:
            raise upstream_timeout() from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(type(exc).__name__) from None
        finally:
            response.release()
            http.upstream_seconds += time.perf_counter() - began
        try:
            out, usage, texts = channel.provider.parse_chat_response(body)
        except ValueError:
            raise RelayError(
                502, "The upstream returned a reply that is not valid JSON.", "upstream_error", "bad_upstream_response"
            ) from None
        if usage is None:
            usage = await self._counted_usage(chat, route, texts)
            outcome.usage_source = "tokenizer"
        outcome.usage = usage
        await http.respond(200, out)

    async def _relay_stream(
        self, http: HttpRequest, chat: ChatRequest, route: Route, upstream: UpstreamRequest, outcome: Outcome
    ) -> None:
        channel = route.channel
        response = await self._open(http, channel, upstream)
        try:
            if response.status >= 400:
                raise await self._read_error(response, channel)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                raise RelayError(
                    502, "The upstream did not answer with an event stream.", "upstream_error", "bad_upstream_response"
                )
            await http.start_response(200, SSE_HEADERS)
            tap = channel.provider.stream_tap(chat, strip_null_usage=not chat.include_usage)
            client_gone = await self._pump(http, response, tap, outcome)
        finally:
            if outcome.status == "ok":
                response.release()  # back to the keep-alive pool
            else:
                response.close()  # a broken or abandoned stream must not be reused
        if tap.usage is not None:
            outcome.usage = tap.usage
        else:
            outcome.usage = await self._counted_usage(chat, route, tap.completion_texts())
            outcome.usage_source = "tokenizer"
        if client_gone:
            return
        if outcome.status == "ok" and tap.done:
            tail = tap.finish(outcome.usage)
        else:
            if outcome.status == "ok":
                outcome.status = "upstream_incomplete"
            tail = stream_error_event(outcome.status)
        await http.send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _pump(
        self, http: HttpRequest, response: aiohttp.ClientResponse, tap: StreamTap, outcome: Outcome
    ) -> bool:
        """Relay events as they arrive; returns True when the client went away (the upstream is closed)."""
        gone = False

        def on_receive(waiter: asyncio.Future[dict[str, object]]) -> None:
            nonlocal gone
            if (
                not waiter.cancelled()
                and waiter.exception() is None
                and waiter.result().get("type") == "http.disconnect"
            ):
                gone = True
                response.close()  # cancels the upstream request; the read loop below ends

        watcher = asyncio.ensure_future(http.receive())
        watcher.add_done_callback(on_receive)
        splitter = SseSplitter()
        send = http.send
        try:
            async for data in response.content.iter_any():
                out = b"".join([piece for event in splitter.feed(data) if (piece := tap.feed(event))])
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                if gone:
                    break
            last = splitter.remainder()
            if last.endswith(b"\n") and not gone:  # a final event without its blank line, e.g. "data: [DONE]\n"
                piece = tap.feed(last + b"\n")
                if piece:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        except TimeoutError:
            outcome.status, outcome.http_status = "upstream_timeout", 504
        except aiohttp.ClientError:
            if not gone:
                outcome.status, outcome.http_status = "upstream_disconnected", 502
        finally:
            watcher.cancel()
        if gone:
            outcome.status, outcome.http_status = "client_closed", 499
        return gone


def stream_error_event(status: str) -> bytes:
    """An OpenAI-style error event: the openai SDK raises it as an APIError mid-iteration."""
    messages = {
        "upstream_timeout": "The upstream stopped sending before the reply was complete (timeout).",
        "upstream_disconnected": "The upstream connection was lost before the reply was complete.",
        "upstream_incomplete": "The upstream ended the stream before the reply was complete.",
    }
    return (
        b"data: "
        + orjson.dumps(
            {
                "error": {
                    "message": messages.get(status, "The stream failed."),
                    "type": "upstream_error",
                    "param": None,
                    "code": status,
                }
            }
        )
        + b"\n\n"
    )
