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
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from llmrelay.metering.money import MoneyError, nano_to_usd
from llmrelay.metering.pricing import Price, PriceTable, Usage
from llmrelay.metering.quota import QuotaLedger
from llmrelay.metering.recorder import UsageRecorder
from llmrelay.providers.base import Capability, Channel, StreamTap, UpstreamRequest
from llmrelay.providers.connections import UpstreamConnection, UpstreamConnectionError
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
from llmrelay.relay.failures import UpstreamFailure, UpstreamRefusal, hint, status_failure
from llmrelay.relay.health import Failure
from llmrelay.relay.jobs import Job, Reply, TokenJob
from llmrelay.relay.limits import LocalRateLimiter, RateLimiter
from llmrelay.relay.routing import Candidates, Route, Router
from llmrelay.relay.streaming import BodyRelay, EventRelay
from llmrelay.store.cache import KeyState
from llmrelay.store.schema import MAX_MODEL_NAME
from llmrelay.store.usage import UsageRecord
from llmrelay.surfaces.http import BodyWriter, HttpRequest

log = logging.getLogger("llmrelay.relay")
NON_STREAM_WATCH_DELAY = 0.05  # seconds an upstream call runs before its client's departure is watched for


@dataclass(slots=True)
class Outcome:
    """What a relayed request produced, for settlement and its usage record."""

    status: str = "ok"
    http_status: int = 200
    usage: Usage | None = None
    usage_source: str = "upstream"
    route: Route | None = None  # the route of the attempt under way (after it, the one that served)


class Relay:
    """Runs any Job: route → price → reserve → call → relay → meter → settle → record."""

    def __init__(
        self,
        router: Router,
        prices: PriceTable,
        ledger: QuotaLedger,
        recorder: UsageRecorder,
        images: ImageFetcher,
        limiter: RateLimiter | None = None,
        max_attempts: int = 3,
    ) -> None:
        self.router = router
        self.limiter = limiter or LocalRateLimiter()
        self.max_attempts = max_attempts
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

    def candidates_and_price(
        self, key: KeyState, model: str, capability: Capability | None = None
    ) -> tuple[Candidates, Price]:
        """The channels that may serve a model this key may use and its price, or the 404/400 the client
        should see."""
        if len(model) > MAX_MODEL_NAME:
            raise bad_request(f"Model names are at most {MAX_MODEL_NAME} characters.", "model")
        if not key.may_use(model):
            raise model_not_found(model, "is not enabled for this API key")
        candidates = self.router.candidates(model)
        if candidates is None:
            raise model_not_found(model)
        route = candidates.first
        if capability is not None and capability not in route.channel.provider.capabilities:
            raise bad_request(f"The model `{model}` does not support {capability.value}.", "model", "unsupported_model")
        price = self.prices.lookup(model) or self.prices.lookup(route.upstream_model)
        if price is None:
            raise model_not_found(model, "has no price set on this gateway, so it cannot be billed")
        return candidates, price

    def route_and_price(self, key: KeyState, model: str, capability: Capability | None = None) -> tuple[Route, Price]:
        """The preferred route of a model and its price (for requests that are answered without failover)."""
        candidates, price = self.candidates_and_price(key, model, capability)
        return candidates.first, price

    async def run(self, http: HttpRequest, key: KeyState, job: Job) -> None:
        candidates, price = self.candidates_and_price(key, job.model, job.capability)
        route = self._choose(job, candidates, ())  # no channel can take it now: a 503 at once
        reserved, cap = await job.plan(price, self.ledger.available_nano(key), route)
        admission = None
        if key.limits is not None:
            admission = self.limiter.admit(key.id, key.limits, job.rate_tokens())
            http.extra_headers = admission.headers
        try:
            if not await self.ledger.reserve(key, reserved):
                raise insufficient_quota(
                    "You exceeded your current quota: this request needs up to "
                    f"${nano_to_usd(reserved)} and the key's remaining balance cannot cover it. Top up the key"
                    + (" or lower max_tokens." if isinstance(job, TokenJob) else ".")
                )
        except BaseException:
            if admission is not None:
                self.limiter.release(admission, 0)
            raise
        outcome = Outcome(route=route)
        route.channel.health.in_flight += 1
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            if job.reply is Reply.EVENTS and job.stream:
                await self._relay_events(http, job, candidates, cap, outcome)
            elif job.reply is Reply.BYTES:
                await self._relay_bytes(http, job, candidates, cap, outcome)
            else:
                await self._relay_body(http, job, candidates, cap, outcome)
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
            served = outcome.route
            if served is not None:
                served.channel.health.in_flight -= 1
            try:
                await self._settle(http, key, job, served or route, price, reserved, outcome)
            finally:
                if task is not None:
                    self._inflight.discard(task)
                if admission is not None:
                    usage = outcome.usage
                    self.limiter.release(admission, usage.prompt_tokens + usage.completion_tokens if usage else 0)

    def _choose(self, job: Job, candidates: Candidates, tried: list[Channel]) -> Route:
        """The next channel to try: one with the job's capability (a model may be listed by channels of
        several types), never one this request already tried."""
        while True:
            route = self.router.choose(job.model, candidates, tried)
            if job.capability in route.channel.provider.capabilities:
                return route
            tried = [*tried, route.channel]

    async def _attempts(
        self,
        http: HttpRequest,
        job: Job,
        candidates: Candidates,
        cap: int | None,
        outcome: Outcome,
        attempt: Attempt[T],
    ) -> T:
        """Run `attempt` on the request's channel and, while it fails in a way another channel may retry, on
        the next ones (up to routing.max_attempts); the client gets the last failure's error. Each failure is
        logged and counted in the channel's health; the route that served is left in `outcome.route`."""
        tried: list[Channel] = []
        route = outcome.route
        assert route is not None
        while True:
            channel = route.channel
            began = time.perf_counter()
            try:
                await job.prepare(route, self.images)
                result = await attempt(route, job.upstream_request(route, cap))
            except UpstreamRefusal as refusal:
                log.warning(
                    "request %s: channel %s refused model %s (HTTP %d: %s)%s; relayed to the client",
                    http.request_id,
                    channel.config.name,
                    job.model,
                    refusal.status,
                    refusal.message,
                    hint(channel, f"HTTP {refusal.status}"),
                )
                raise
            except UpstreamFailure as failure:
                channel.health.in_flight -= 1
                outcome.route = None
                resting = channel.health.failed(job.model, failure.kind, failure.detail, failure.retry_after)
                tried.append(channel)
                following = None
                if len(tried) < self.max_attempts:
                    with contextlib.suppress(RelayError):
                        following = self._choose(job, candidates, tried)
                log_failed_attempt(http, job.model, channel, failure, resting, len(tried), following)
                if following is None:
                    raise failure.error from None
                route = outcome.route = following
                following.channel.health.in_flight += 1
                continue
            channel.health.succeeded(job.model, int((time.perf_counter() - began) * 1000))
            return result

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

    async def _abandon(self, job: Job, outcome: Outcome, status: str) -> None:
        """Bill a request left while the upstream was working on it: the job's documented charge (token jobs:
        the prompt, counted offline; no completion)."""
        outcome.status, outcome.http_status = status, 499
        if outcome.route is None:  # between two attempts: no upstream holds the request
            return
        try:
            abandoned = await job.abandoned_usage(outcome.route)
        except Exception:
            log.exception("counting the prompt of an abandoned request failed; it is not charged")
            return
        if abandoned is not None:
            outcome.usage, outcome.usage_source = abandoned

    async def _open(self, http: HttpRequest, channel: Channel, upstream: UpstreamRequest) -> UpstreamConnection:
        """Send the upstream request and wait for its reply's headers (within the channel's first-byte time);
        an error status, a timeout or a lost connection is raised as an UpstreamFailure when another channel may
        retry it, else as the client's error."""
        config = channel.config
        began = time.perf_counter()
        try:
            with _upstream_failures(channel, "no reply"):
                connection = await channel.connections.open(
                    upstream.url, upstream.headers, upstream.body, config.connect_timeout, config.first_byte_timeout
                )
            if connection.status >= 400:
                status, headers = connection.status, connection.headers
                with _upstream_failures(channel, "the error reply stopped arriving"):
                    try:
                        body = await connection.read_all()
                    finally:
                        connection.release()  # back to the pool if the reply ended cleanly, else closed
                # Scrubbed before the message is cut short, so no part of a secret survives a cut.
                raise status_failure(status, scrub_bytes(body, channel.secret_bytes), headers, channel)
        finally:
            http.upstream_seconds += time.perf_counter() - began
        return connection

    async def _read_reply(self, http: HttpRequest, channel: Channel, upstream: UpstreamRequest) -> tuple[bytes, str]:
        """Call the upstream and read its whole reply: (body, content type)."""
        connection = await self._open(http, channel, upstream)
        connection.idle_limit(channel.config.idle_timeout)  # the reply has begun
        began = time.perf_counter()
        try:
            with _upstream_failures(channel, "the reply stopped arriving"):
                body = await connection.read_all()
        finally:
            connection.release()  # back to the pool if the reply ended cleanly, else closed
            http.upstream_seconds += time.perf_counter() - began
        return scrub_bytes(body, channel.secret_bytes), connection.headers.get("content-type", "application/json")

    async def _relay_body(
        self, http: HttpRequest, job: Job, candidates: Candidates, cap: int | None, outcome: Outcome
    ) -> None:
        async def attempt(route: Route, upstream: UpstreamRequest) -> tuple[Usage, str, bytes, str]:
            body, content_type = await self._read_reply(http, route.channel, upstream)
            try:
                return await job.finish_body(body, content_type, route)
            except ValueError:
                error = RelayError(
                    502,
                    "The upstream returned a reply this gateway cannot read.",
                    "upstream_error",
                    "bad_upstream_response",
                )
                raise UpstreamFailure(Failure.FAILED, error, "an unreadable reply") from None

        # A client that goes away while the upstream works cancels the upstream call (like a stream's client).
        task = asyncio.current_task()
        assert task is not None
        watcher = DisconnectWatch(http, task.cancel, delay=NON_STREAM_WATCH_DELAY)
        try:
            usage, source, body, content_type = await self._attempts(http, job, candidates, cap, outcome, attempt)
        except asyncio.CancelledError:
            # The watcher's cancel is ours to take back; any other (shutdown) is not.
            if watcher.gone and task.uncancel() == 0:
                await self._abandon(job, outcome, "client_closed")
                http.status = 499  # nothing was sent; the metrics count it as the client's close
                return
            await self._abandon(job, outcome, "cancelled")
            with contextlib.suppress(Exception):
                await http.respond_error(cancellation(http))
            raise
        finally:
            watcher.stop()
        outcome.usage, outcome.usage_source = usage, source  # billed only once the reply is known to be usable
        await http.respond(200, body, content_type.encode())

    async def _relay_bytes(
        self, http: HttpRequest, job: Job, candidates: Candidates, cap: int | None, outcome: Outcome
    ) -> None:
        """Relay a binary body (audio) chunk by chunk as it arrives; the job is billed on what it asked for."""

        def attempt(route: Route, upstream: UpstreamRequest) -> Awaitable[UpstreamConnection]:
            return self._open(http, route.channel, upstream)

        connection = await self._attempts(http, job, candidates, cap, outcome, attempt)
        route = outcome.route
        assert route is not None
        connection.idle_limit(route.channel.config.idle_timeout)
        try:
            content_type = connection.headers.get("content-type", "application/octet-stream").encode()
            body = await http.start_stream(200, [(b"content-type", content_type)])
            outcome.usage, outcome.usage_source = await job.meter(b"", route)
        except BaseException:
            connection.close()
            raise
        body.when_writable(connection.resume_reading)
        watcher = DisconnectWatch(http, connection.close)
        try:
            await connection.relay(BodyRelay(body, connection, route.channel.secret_bytes).feed)
        except (TimeoutError, UpstreamConnectionError):
            outcome.status, outcome.http_status = ("client_closed", 499) if watcher.gone else ("upstream_broken", 502)
        finally:
            watcher.stop()
            body.when_writable(None)
            if outcome.status == "ok":
                connection.release()
            else:
                connection.close()
        if not watcher.gone:
            await body.end(b"")

    async def _open_stream(
        self, http: HttpRequest, channel: Channel, upstream: UpstreamRequest
    ) -> tuple[UpstreamConnection, bytes]:
        """Open an upstream event stream and read its first bytes (within the channel's first-byte time):
        until then nothing has reached the client, and a failure may still go to another channel."""
        connection = await self._open(http, channel, upstream)
        began = time.perf_counter()
        try:
            if not connection.headers.get("content-type", "").startswith("text/event-stream"):
                error = RelayError(
                    502, "The upstream did not answer with an event stream.", "upstream_error", "bad_upstream_response"
                )
                raise UpstreamFailure(Failure.FAILED, error, "the reply is not an event stream")
            with _upstream_failures(channel, "no first event"):
                first = await connection.first_data()
            if not first:
                raise UpstreamFailure(
                    Failure.FAILED,
                    upstream_unreachable("the stream ended before its first event"),
                    "the stream ended before its first event",
                )
        except BaseException:
            connection.close()
            raise
        finally:
            http.upstream_seconds += time.perf_counter() - began
        connection.idle_limit(channel.config.idle_timeout)
        return connection, first

    async def _relay_events(
        self, http: HttpRequest, job: Job, candidates: Candidates, cap: int | None, outcome: Outcome
    ) -> None:
        connection: UpstreamConnection | None = None
        tap: StreamTap | None = None
        watcher: DisconnectWatch | None = None
        body: BodyWriter | None = None

        def attempt(route: Route, upstream: UpstreamRequest) -> Awaitable[tuple[UpstreamConnection, bytes]]:
            return self._open_stream(http, route.channel, upstream)

        try:
            connection, first = await self._attempts(http, job, candidates, cap, outcome, attempt)
            route = outcome.route
            assert route is not None
            tap = job.stream_tap(route)
            body = await http.start_stream(200, job.stream_headers())
            body.when_writable(connection.resume_reading)
            watcher = DisconnectWatch(http, connection.close)
            relay = EventRelay(tap, body, connection, route.channel.secret_bytes)
            await self._pump(http, connection, first, relay, outcome, watcher)
        except asyncio.CancelledError:
            # Cancelled (the gateway's shutdown limit): bill what was delivered, end the client's stream with
            # an error in its format if it is still there, and let the cancellation go on.
            outcome.status, outcome.http_status = "cancelled", 499
            if connection is not None:
                connection.close()
            if tap is None:
                await self._abandon(job, outcome, "cancelled")
            else:
                await self._meter_cut_stream(job, tap, outcome)
            with contextlib.suppress(Exception):
                if not http.response_started:
                    await http.respond_error(cancellation(http))
                elif body is not None and tap is not None and not (watcher is not None and watcher.gone):
                    await body.end(job.stream_failure(cancellation(http)))
            raise
        finally:
            if watcher is not None:
                watcher.stop()
            if body is not None:
                body.when_writable(None)
            if connection is not None:
                if outcome.status == "ok":
                    connection.release()  # back to the keep-alive pool
                else:
                    connection.close()  # a broken or abandoned stream must not be reused
        assert tap is not None and watcher is not None and body is not None and outcome.route is not None
        route = outcome.route
        outcome.usage, outcome.usage_source = await job.meter_stream(tap, route)
        if outcome.status in _CHANNEL_FAULTS:  # too late to retry, but the channel's record should show it
            route.channel.health.failed(job.model, Failure.FAILED, _STREAM_FAILURES[outcome.status])
        if watcher.gone:
            return
        if outcome.status == "ok" and tap.done:
            tail = tap.finish(outcome.usage)
        else:
            if outcome.status == "ok":
                outcome.status = "upstream_error" if tap.error_message else "upstream_incomplete"
            failure = stream_failure(outcome.status, tap.error_message, route.channel.secrets)
            tail = job.stream_failure(failure)
        await body.end(tail)

    @staticmethod
    async def _meter_cut_stream(job: Job, tap: StreamTap, outcome: Outcome) -> None:
        assert outcome.route is not None
        try:
            outcome.usage, outcome.usage_source = await job.meter_stream(tap, outcome.route)
        except Exception:
            log.exception("metering a cancelled stream failed; it is not charged")

    async def _pump(
        self,
        http: HttpRequest,
        connection: UpstreamConnection,
        first: bytes,
        relay: EventRelay,
        outcome: Outcome,
        watcher: DisconnectWatch,
    ) -> None:
        """Relay events as they arrive (`first`: what the upstream has sent already); when the client goes
        away the watcher closes the upstream connection, which ends the relay."""
        try:
            relay.feed_first(first)
            await connection.relay(relay.feed, relay.whole_chunks)
            if not watcher.gone:
                relay.finish()
        except TimeoutError:
            outcome.status, outcome.http_status = "upstream_timeout", 504
        except UpstreamConnectionError:
            if not watcher.gone:
                outcome.status, outcome.http_status = "upstream_disconnected", 502
        except Exception:  # an event the tap cannot read or translate: end the client's stream with an error
            log.exception("request %s: an upstream stream event could not be relayed", http.request_id)
            outcome.status, outcome.http_status = "bad_upstream_stream", 502
        if watcher.gone:
            outcome.status, outcome.http_status = "client_closed", 499


T = TypeVar("T")
Attempt = Callable[[Route, UpstreamRequest], Awaitable[T]]
# How a stream that began can fail on the channel's side (counted in its health; no retry is possible).
_CHANNEL_FAULTS = frozenset({"upstream_timeout", "upstream_disconnected", "bad_upstream_stream"})


@contextlib.contextmanager
def _upstream_failures(channel: Channel, waiting_for: str) -> Iterator[None]:
    """A timeout or a broken connection while `waiting_for` something from the upstream, raised as the
    UpstreamFailure that another channel may retry (the detail, with host and OS error, is for the log)."""
    try:
        yield
    except TimeoutError:
        raise UpstreamFailure(Failure.FAILED, upstream_timeout(), f"timed out ({waiting_for})") from None
    except UpstreamConnectionError as exc:
        detail = scrub_secrets(f"unreachable: {exc}", channel.secrets)
        raise UpstreamFailure(Failure.FAILED, upstream_unreachable(exc.summary), detail) from None


def log_failed_attempt(
    http: HttpRequest,
    model: str,
    channel: Channel,
    failure: UpstreamFailure,
    resting: float,
    attempt: int,
    following: Route | None,
) -> None:
    """One WARNING line per failed attempt: which channel, for which model, why, and what happens next."""
    consequence = ""
    if failure.kind is Failure.CREDENTIALS:
        consequence = "; channel disabled"
    elif resting:
        consequence = f"; channel rests for this model {resting:.1f} s"
    then = f"retrying on channel {following.channel.config.name}" if following else "no channel left to try"
    log.warning(
        "request %s: attempt %d for model %s on channel %s failed (%s)%s%s; %s",
        http.request_id,
        attempt,
        model,
        channel.config.name,
        failure.detail,
        hint(channel, failure.detail),
        consequence,
        then,
    )


class DisconnectWatch:
    """Waits for the client to go away while the upstream works, and then calls `on_gone`: closing the
    upstream response (a stream: which ends the relay loop reading from it) or cancelling the upstream call.

    The server's own notice of a lost connection when it offers one (server.py); else a task waiting on
    `receive` for `http.disconnect`. With a `delay`, watching starts only once the upstream has taken that
    long: most non-stream replies come back before a client could usefully be noticed leaving (the delay
    bounds how late a departure is acted on)."""

    __slots__ = ("_http", "_notified", "_on_gone", "_stopped", "_timer", "_waiter", "gone")

    def __init__(self, http: HttpRequest, on_gone: Callable[[], object], delay: float = 0.0) -> None:
        self.gone = False
        self._stopped = False
        self._notified = False
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
        self._notified = self._http.when_gone(self._gone)
        if not self._notified:
            self._waiter = asyncio.ensure_future(self._http.receive())
            self._waiter.add_done_callback(self._on_receive)

    def _on_receive(self, waiter: asyncio.Future[dict[str, object]]) -> None:
        if not waiter.cancelled() and waiter.exception() is None and waiter.result().get("type") == "http.disconnect":
            self._gone()

    def _gone(self) -> None:
        if not self._stopped:
            self.gone = True
            self._on_gone()

    def stop(self) -> None:
        """No more watching: a disconnect seen from now on is not acted on."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._notified:
            self._http.when_gone(None)
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
