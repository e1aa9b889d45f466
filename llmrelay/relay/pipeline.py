"""The relay: authorize the model → route → price → reserve → call → relay → meter → settle → record.

Nothing here waits on the database: keys, routes and prices are in memory, and the usage record is queued.
Every reservation ends in exactly one settlement and one usage record, whatever happens: upstream errors,
timeouts, the client going away, or the gateway cancelling the request at shutdown. What is charged:

- a reply relayed in full: the upstream's reported usage (or the offline count), at most the reservation;
- a failed upstream call: nothing;
- a stream cut short (client gone, upstream broken, gateway shutting down): the prompt and what was
  delivered, from the upstream's report or counted offline;
- a request abandoned while the upstream was working on it (non-stream client gone, shutdown): the prompt,
  counted offline (the upstream has processed it), no completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from llmrelay.metering.money import MoneyError, nano_to_usd
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
    scrub_bytes,
    scrub_secrets,
    upstream_timeout,
    upstream_unreachable,
)
from llmrelay.relay.jobs import Job, Reply, TokenJob
from llmrelay.relay.routing import Route, Router
from llmrelay.relay.streaming import SseSplitter
from llmrelay.store.cache import KeyState
from llmrelay.store.schema import MAX_MODEL_NAME
from llmrelay.store.usage import UsageRecord
from llmrelay.surfaces.http import HttpRequest

log = logging.getLogger("llmrelay.relay")
NON_STREAM_WATCH_DELAY = 0.05  # seconds an upstream call runs before its client's departure is watched for


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
    message = scrub_secrets(message, channel.secrets)
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
        # Reported cost that settlement did not charge (beyond the reservations), for /metrics.
        self.overrun_nano_total = 0
        self.overrun_requests = 0
        self._inflight: set[asyncio.Task[object]] = set()  # requests between reservation and record

    async def drain(self, timeout: float) -> None:
        """Wait until every request that holds a reservation has settled and queued its usage record (the
        cancelled ones bill what they delivered first), so that a shutdown flush finds every record."""
        pending = {task for task in self._inflight if not task.done()}
        if pending:
            log.info("waiting for %d request(s) to settle before flushing usage", len(pending))
            await asyncio.wait(pending, timeout=timeout)

    def route_and_price(self, key: KeyState, model: str, capability: Capability | None = None) -> tuple[Route, Price]:
        """The route and price for a model this key may use, or the 404/400 the client should see."""
        if len(model) > MAX_MODEL_NAME:
            raise bad_request(f"Model names are at most {MAX_MODEL_NAME} characters.", "model")
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
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
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
            try:
                await self._settle(http, key, job, route, price, reserved, outcome)
            finally:
                if task is not None:
                    self._inflight.discard(task)

    async def _settle(
        self, http: HttpRequest, key: KeyState, job: Job, route: Route, price: Price, reserved: int, outcome: Outcome
    ) -> None:
        """Charge the reported cost, at most the reservation (the ledger enforces it), and record the request
        with what was charged and what was reported beyond it."""
        usage = outcome.usage or Usage()
        reported = 0
        if outcome.usage is not None:
            try:
                reported = price.cost_nano(usage)
            except MoneyError:  # a unit the price does not cover: charge the reservation, which did cover it
                log.exception("request %s: the usage cannot be priced; charging the reservation", http.request_id)
                reported = reserved
        settlement = await self.ledger.settle(key, reserved, reported)
        if settlement.overrun_nano:
            self.overrun_nano_total += settlement.overrun_nano
            self.overrun_requests += 1
            log.warning(
                "request %s (key %d, model %s): the upstream reported $%s, more than the reserved $%s; "
                "charged the reservation, overrun $%s",
                http.request_id,
                key.id,
                job.model,
                nano_to_usd(reported),
                nano_to_usd(reserved),
                nano_to_usd(settlement.overrun_nano),
            )
        self.recorder.record(
            UsageRecord(
                request_id=http.request_id,
                created_ms=int(time.time() * 1000),
                key_id=key.id,
                endpoint=job.endpoint,
                model=job.model,
                upstream_model=route.upstream_model,
                channel=route.channel.config.name,
                prompt_tokens=usage.prompt_tokens,
                cached_tokens=usage.cached_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                completion_tokens=usage.completion_tokens,
                cost_nano=settlement.charged_nano,
                status=outcome.status,
                http_status=outcome.http_status,
                latency_ms=int((time.perf_counter() - http.started) * 1000),
                stream=job.stream,
                usage_source=outcome.usage_source,
                images=usage.images,
                characters=usage.characters,
                audio_seconds=usage.audio_seconds,
                overrun_nano=settlement.overrun_nano,
            )
        )

    async def _abandon(self, job: Job, route: Route, outcome: Outcome, status: str) -> None:
        """Bill a request left while the upstream was working on it: the job's documented charge (token jobs:
        the prompt, counted offline; no completion)."""
        outcome.status, outcome.http_status = status, 499
        try:
            abandoned = await job.abandoned_usage(route)
        except Exception:
            log.exception("counting the prompt of an abandoned request failed; it is not charged")
            return
        if abandoned is not None:
            outcome.usage, outcome.usage_source = abandoned

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
                # Scrubbed before the message is cut short, so no part of a secret survives a cut.
                body = scrub_bytes(body, channel.secret_bytes)
                raise upstream_http_error(response.status, channel.provider.error_message(body), channel)
            return response
        except TimeoutError:
            raise upstream_timeout() from None
        except aiohttp.ClientError as exc:
            # The detail (host and port, OS error) is for the operator's log, not for clients.
            log.warning(
                "request %s: channel %s unreachable: %s",
                http.request_id,
                channel.config.name,
                scrub_secrets(f"{type(exc).__name__}: {exc}", channel.secrets),
            )
            raise upstream_unreachable(type(exc).__name__) from None
        finally:
            http.upstream_seconds += time.perf_counter() - began

    async def _fetch_body(self, http: HttpRequest, channel: Channel, upstream: UpstreamRequest) -> tuple[bytes, str]:
        """Call the upstream and read its whole reply: (body, content type)."""
        response = await self._open(http, channel, upstream)
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
        return scrub_bytes(body, channel.secret_bytes), response.headers.get("content-type", "application/json")

    async def _relay_body(
        self, http: HttpRequest, job: Job, route: Route, upstream: UpstreamRequest, outcome: Outcome
    ) -> None:
        # A client that goes away while the upstream works cancels the upstream call (like a stream's client).
        task = asyncio.current_task()
        assert task is not None
        watcher = DisconnectWatch(http, task.cancel, delay=NON_STREAM_WATCH_DELAY)
        try:
            body, content_type = await self._fetch_body(http, route.channel, upstream)
        except asyncio.CancelledError:
            # The watcher's cancel is ours to take back; any other (shutdown) is not.
            if watcher.gone and task.uncancel() == 0:
                await self._abandon(job, route, outcome, "client_closed")
                http.status = 499  # nothing was sent; the metrics count it as the client's close
                return
            await self._abandon(job, route, outcome, "cancelled")
            with contextlib.suppress(Exception):
                await http.respond_error(cancellation(http))
            raise
        finally:
            watcher.stop()
        try:
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
        watcher = DisconnectWatch(http, response.close)
        try:
            secrets = route.channel.secret_bytes
            async for data in response.content.iter_any():
                await http.send({"type": "http.response.body", "body": scrub_bytes(data, secrets), "more_body": True})
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
        response: aiohttp.ClientResponse | None = None
        tap: StreamTap | None = None
        watcher: DisconnectWatch | None = None
        try:
            response = await self._open(http, route.channel, upstream)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                raise RelayError(
                    502, "The upstream did not answer with an event stream.", "upstream_error", "bad_upstream_response"
                )
            await http.start_response(200, job.stream_headers())
            tap = job.stream_tap(route)
            watcher = DisconnectWatch(http, response.close)
            await self._pump(http, response, tap, outcome, watcher, route.channel.secret_bytes)
        except asyncio.CancelledError:
            # Cancelled (the gateway's shutdown limit): bill what was delivered, end the client's stream with
            # an error in its format if it is still there, and let the cancellation go on.
            outcome.status, outcome.http_status = "cancelled", 499
            if response is not None:
                response.close()
            if tap is None:
                await self._abandon(job, route, outcome, "cancelled")
            else:
                await self._meter_cut_stream(job, route, tap, outcome)
            with contextlib.suppress(Exception):
                if not http.response_started:
                    await http.respond_error(cancellation(http))
                elif tap is not None and not (watcher is not None and watcher.gone):
                    tail = job.stream_failure(cancellation(http))
                    await http.send({"type": "http.response.body", "body": tail, "more_body": False})
            raise
        finally:
            if watcher is not None:
                watcher.stop()
            if response is not None:
                if outcome.status == "ok":
                    response.release()  # back to the keep-alive pool
                else:
                    response.close()  # a broken or abandoned stream must not be reused
        assert tap is not None and watcher is not None
        outcome.usage, outcome.usage_source = await job.meter_stream(tap, route)
        if watcher.gone:
            return
        if outcome.status == "ok" and tap.done:
            tail = tap.finish(outcome.usage)
        else:
            if outcome.status == "ok":
                outcome.status = "upstream_error" if tap.error_message else "upstream_incomplete"
            failure = stream_failure(outcome.status, tap.error_message, route.channel.secrets)
            tail = job.stream_failure(failure)
        await http.send({"type": "http.response.body", "body": tail, "more_body": False})

    @staticmethod
    async def _meter_cut_stream(job: Job, route: Route, tap: StreamTap, outcome: Outcome) -> None:
        try:
            outcome.usage, outcome.usage_source = await job.meter_stream(tap, route)
        except Exception:
            log.exception("metering a cancelled stream failed; it is not charged")

    async def _pump(
        self,
        http: HttpRequest,
        response: aiohttp.ClientResponse,
        tap: StreamTap,
        outcome: Outcome,
        watcher: DisconnectWatch,
        secrets: tuple[bytes, ...],
    ) -> None:
        """Relay events as they arrive; when the client goes away the watcher closes the upstream."""
        splitter = SseSplitter()
        send = http.send
        try:
            async for data in response.content.iter_any():
                out = b"".join([piece for event in splitter.feed(data) if (piece := tap.feed(event))])
                if out:
                    out = scrub_bytes(out, secrets)  # whole events: a secret cannot straddle two sends
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                if watcher.gone:
                    break
            last = splitter.remainder()
            if last.endswith(b"\n") and not watcher.gone:  # a final event without its blank line
                piece = tap.feed(last + b"\n")
                if piece:
                    await send({"type": "http.response.body", "body": scrub_bytes(piece, secrets), "more_body": True})
        except TimeoutError:
            outcome.status, outcome.http_status = "upstream_timeout", 504
        except aiohttp.ClientError:
            if not watcher.gone:
                outcome.status, outcome.http_status = "upstream_disconnected", 502
        except Exception:  # an event the tap cannot read or translate: end the client's stream with an error
            log.exception("request %s: an upstream stream event could not be relayed", http.request_id)
            outcome.status, outcome.http_status = "bad_upstream_stream", 502
        if watcher.gone:
            outcome.status, outcome.http_status = "client_closed", 499


class DisconnectWatch:
    """Waits for the client to go away while the upstream works, and then calls `on_gone`: closing the
    upstream response (a stream: which ends the relay loop reading from it) or cancelling the upstream call.

    With a `delay`, watching starts only once the upstream has taken that long: a watcher is a task, and
    most non-stream replies come back before a client could usefully be noticed leaving (the delay bounds
    how late a departure is acted on)."""

    __slots__ = ("_http", "_on_gone", "_stopped", "_timer", "_waiter", "gone")

    def __init__(self, http: HttpRequest, on_gone: Callable[[], object], delay: float = 0.0) -> None:
        self.gone = False
        self._stopped = False
        self._http = http
        self._on_gone = on_gone
        self._waiter: asyncio.Future[dict[str, object]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if delay > 0:
            self._timer = asyncio.get_running_loop().call_later(delay, self._watch)
        else:
            self._watch()

    def _watch(self) -> None:
        self._timer = None
        self._waiter = asyncio.ensure_future(self._http.receive())
        self._waiter.add_done_callback(self._on_receive)

    def _on_receive(self, waiter: asyncio.Future[dict[str, object]]) -> None:
        if self._stopped or waiter.cancelled() or waiter.exception() is not None:
            return
        if waiter.result().get("type") == "http.disconnect":
            self.gone = True
            self._on_gone()

    def stop(self) -> None:
        """No more watching: a disconnect seen from now on is not acted on."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._waiter is not None:
            self._waiter.cancel()


def cancellation(http: HttpRequest) -> RelayError:
    """Why a request was cancelled: it ran past the gateway's request time limit, or the gateway is stopping."""
    if http.deadline_passed:
        return RelayError(
            504,
            "The request ran longer than this gateway allows (limits.request_timeout); what was delivered is billed.",
            "server_error",
            "request_timeout",
        )
    return shutting_down()


def shutting_down() -> RelayError:
    """The error a request cancelled by the gateway's shutdown ends with."""
    return RelayError(
        503,
        "The gateway is shutting down and cancelled this request; what was delivered is billed. Retry it.",
        "server_error",
        "shutting_down",
    )


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
