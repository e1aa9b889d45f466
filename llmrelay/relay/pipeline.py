"""The relay: authorize the model → route → price → reserve → call → relay → meter → settle → record.

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

from llmrelay.metering.money import nano_to_usd
from llmrelay.metering.pricing import Price, PriceTable, Usage
from llmrelay.metering.quota import QuotaLedger
from llmrelay.metering.recorder import UsageRecorder
from llmrelay.providers.base import Capability, Channel, StreamTap, UpstreamRequest
from llmrelay.providers.images import ImageFetcher
from llmrelay.relay.errors import (
    RelayError,
    bad_request,
    insufficient_quota,
    model_not_found,
    scrub_secrets,
    upstream_timeout,
    upstream_unreachable,
)
from llmrelay.relay.jobs import Job, Reply, TokenJob
from llmrelay.relay.routing import Route, Router
from llmrelay.relay.streaming import SseSplitter
from llmrelay.store.cache import KeyState
from llmrelay.store.usage import UsageRecord
from llmrelay.surfaces.http import HttpRequest

log = logging.getLogger("llmrelay.relay")


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


class Relay:
    """Runs any Job: route → price → reserve → call → relay → meter → settle → record."""

    def __init__(
        self,
        router: Router,
        prices: PriceTable,
        ledger: QuotaLedger,
        recorder: UsageRecorder,
        images: ImageFetcher,
    ) -> None:
        self.router = router
        self.prices = prices
        self.ledger = ledger
        self.recorder = recorder
        self.images = images

    def route_and_price(self, key: KeyState, model: str, capability: Capability | None = None) -> tuple[Route, Price]:
        """The route and price for a model this key may use, or the 404/400 the client should see."""
        if not key.may_use(model):
            raise model_not_found(model, "is not enabled for this API key")
        route = self.router.resolve(model)
        if route is None:
            raise model_not_found(model)
        if capability is not None and capability not in route.channel.provider.capabilities:
            raise bad_request(f"The model `{model}` does not support {capability.value}.", "model", "unsupported_model")
        price = self.prices.lookup(model) or self.prices.lookup(route.upstream_model)
        if price is None:
            raise model_not_found(model, "has no price set on this gateway, so it cannot be billed")
        return route, price

    async def run(self, http: HttpRequest, key: KeyState, job: Job) -> None:
        route, price = self.route_and_price(key, job.model, job.capability)
        reserved, cap = await job.plan(price, self.ledger.available_nano(key), route)
        if not await self.ledger.reserve(key, reserved):
            raise insufficient_quota(
                "You exceeded your current quota: this request needs up to "
                f"${nano_to_usd(reserved)} and the key's remaining balance cannot cover it. Top up the key"
                + (" or lower max_tokens." if isinstance(job, TokenJob) else ".")
            )
        outcome = Outcome()
        channel = route.channel
        try:
            await job.prepare(route, self.images)
            upstream = job.upstream_request(route, cap)
            if job.reply is Reply.EVENTS and job.stream:
                await self._relay_events(http, job, route, upstream, outcome)
            elif job.reply is Reply.BYTES:
                await self._relay_bytes(http, job, route, upstream, outcome)
            else:
                await self._relay_body(http, job, route, upstream, outcome)
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
            usage = outcome.usage or Usage()
            cost = price.cost_nano(usage) if outcome.usage is not None else 0
            await self.ledger.settle(key, reserved, cost)
            self.recorder.record(
                UsageRecord(
                    request_id=http.request_id,
                    created_ms=int(time.time() * 1000),
                    key_id=key.id,
                    endpoint=job.endpoint,
                    model=job.model,
                    upstream_model=route.upstream_model,
                    channel=channel.config.name,
                    prompt_tokens=usage.prompt_tokens,
                    cached_tokens=usage.cached_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                    completion_tokens=usage.completion_tokens,
                    cost_nano=cost,
                    status=outcome.status,
                    http_status=outcome.http_status,
                    latency_ms=int((time.perf_counter() - http.started) * 1000),
                    stream=job.stream,
                    usage_source=outcome.usage_source,
                    images=usage.images,
                    characters=usage.characters,
                    audio_seconds=usage.audio_seconds,
                )
            )

    async def _open(self, http: HttpRequest, channel: Channel, upstream: UpstreamRequest) -> aiohttp.ClientResponse:
        """Send the upstream request; an error status is read and raised as the client's error."""
        began = time.perf_counter()
        try:
            response = await channel.session.post(
                upstream.url, data=upstream.body, headers=upstream.headers, timeout=channel.timeout
            )
            if response.status >= 400:
                try:
                    body = await response.read()
                finally:
                    response.release()
                raise upstream_http_error(response.status, channel.provider.error_message(body), channel)
            return response
        except TimeoutError:
            raise upstream_timeout() from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(scrub_secrets(type(exc).__name__ + ": " + str(exc))) from None
        finally:
            http.upstream_seconds += time.perf_counter() - began

    async def _relay_body(
        self, http: HttpRequest, job: Job, route: Route, upstream: UpstreamRequest, outcome: Outcome
    ) -> None:
        response = await self._open(http, route.channel, upstream)
        began = time.perf_counter()
        try:
            body = await response.read()
        except TimeoutError:
            raise upstream_timeout() from None
        except aiohttp.ClientError as exc:
            raise upstream_unreachable(type(exc).__name__) from None
        finally:
            response.release()
            http.upstream_seconds += time.perf_counter() - began
        try:
            content_type = response.headers.get("content-type", "application/json")
            usage, source, body, content_type = await job.finish_body(body, content_type, route)
        except ValueError:
            raise RelayError(
                502,
                "The upstream returned a reply this gateway cannot read.",
                "upstream_error",
                "bad_upstream_response",
            ) from None
        outcome.usage, outcome.usage_source = usage, source  # billed only once the reply is known to be usable
        await http.respond(200, body, content_type.encode())

    async def _relay_bytes(
        self, http: HttpRequest, job: Job, route: Route, upstream: UpstreamRequest, outcome: Outcome
    ) -> None:
        """Relay a binary body (audio) chunk by chunk as it arrives; the job is billed on what it asked for."""
        response = await self._open(http, route.channel, upstream)
        content_type = response.headers.get("content-type", "application/octet-stream").encode()
        await http.start_response(200, [(b"content-type", content_type)])
        outcome.usage, outcome.usage_source = await job.meter(b"", route)
        watcher = DisconnectWatch(http, response)
        try:
            async for data in response.content.iter_any():
                await http.send({"type": "http.response.body", "body": data, "more_body": True})
        except (TimeoutError, aiohttp.ClientError):
            outcome.status, outcome.http_status = ("client_closed", 499) if watcher.gone else ("upstream_broken", 502)
        finally:
            watcher.stop()
            if outcome.status == "ok":
                response.release()
            else:
                response.close()
        if not watcher.gone:
            await http.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay_events(
        self, http: HttpRequest, job: Job, route: Route, upstream: UpstreamRequest, outcome: Outcome
    ) -> None:
        response = await self._open(http, route.channel, upstream)
        try:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                raise RelayError(
                    502, "The upstream did not answer with an event stream.", "upstream_error", "bad_upstream_response"
                )
            await http.start_response(200, job.stream_headers())
            tap = job.stream_tap(route)
            client_gone = await self._pump(http, response, tap, outcome)
        finally:
            if outcome.status == "ok":
                response.release()  # back to the keep-alive pool
            else:
                response.close()  # a broken or abandoned stream must not be reused
        outcome.usage, outcome.usage_source = await job.meter_stream(tap, route)
        if client_gone:
            return
        if outcome.status == "ok" and tap.done:
            tail = tap.finish(outcome.usage)
        else:
            if outcome.status == "ok":
                outcome.status = "upstream_error" if tap.error_message else "upstream_incomplete"
            failure = stream_failure(outcome.status, tap.error_message, (route.channel.config.api_key,))
            tail = job.stream_failure(failure)
        await http.send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _pump(
        self, http: HttpRequest, response: aiohttp.ClientResponse, tap: StreamTap, outcome: Outcome
    ) -> bool:
        """Relay events as they arrive; returns True when the client went away (the upstream is closed)."""
        watcher = DisconnectWatch(http, response)
        splitter = SseSplitter()
        send = http.send
        try:
            async for data in response.content.iter_any():
                out = b"".join([piece for event in splitter.feed(data) if (piece := tap.feed(event))])
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                if watcher.gone:
                    break
            last = splitter.remainder()
            if last.endswith(b"\n") and not watcher.gone:  # a final event without its blank line
                piece = tap.feed(last + b"\n")
                if piece:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        except TimeoutError:
            outcome.status, outcome.http_status = "upstream_timeout", 504
        except aiohttp.ClientError:
            if not watcher.gone:
                outcome.status, outcome.http_status = "upstream_disconnected", 502
        except Exception:  # an event the tap cannot read or translate: end the client's stream with an error
            log.exception("request %s: an upstream stream event could not be relayed", http.request_id)
            outcome.status, outcome.http_status = "bad_upstream_stream", 502
        finally:
            watcher.stop()
        if watcher.gone:
            outcome.status, outcome.http_status = "client_closed", 499
        return watcher.gone


class DisconnectWatch:
    """Waits for the client to go away while a response streams, and then closes the upstream response,
    which cancels the upstream request and ends the relay loop reading from it."""

    __slots__ = ("_waiter", "gone")

    def __init__(self, http: HttpRequest, response: aiohttp.ClientResponse) -> None:
        self.gone = False

        def on_receive(waiter: asyncio.Future[dict[str, object]]) -> None:
            if waiter.cancelled() or waiter.exception() is not None:
                return
            if waiter.result().get("type") == "http.disconnect":
                self.gone = True
                response.close()

        self._waiter = asyncio.ensure_future(http.receive())
        self._waiter.add_done_callback(on_receive)

    def stop(self) -> None:
        self._waiter.cancel()


_STREAM_FAILURES = {
    "upstream_timeout": "The upstream stopped sending before the reply was complete (timeout).",
    "upstream_disconnected": "The upstream connection was lost before the reply was complete.",
    "upstream_incomplete": "The upstream ended the stream before the reply was complete.",
    "bad_upstream_stream": "The upstream sent a stream event this gateway cannot read.",
}


def stream_failure(status: str, upstream_message: str | None, secrets: tuple[str, ...]) -> RelayError:
    """The error that ends a stream which failed after it began (the client's format renders it)."""
    if upstream_message:
        message = "The upstream reported an error mid-stream: " + scrub_secrets(upstream_message, secrets)
    else:
        message = _STREAM_FAILURES.get(status, "The stream failed.")
    return RelayError(504 if status == "upstream_timeout" else 502, message, "upstream_error", status)
