"""Per-key rate limits: requests per minute (RPM), tokens per minute (TPM) and requests in flight.

The relay sees one interface, `RateLimiter`: `admit` before a request is sent upstream (it raises the 429
when a limit is reached) and `release` exactly once when the request has ended. Where the counters live is
the implementation's business: `LocalRateLimiter` keeps them in this process, and counters shared by several
nodes (Redis) can replace it without a change above this interface. Neither method awaits, which keeps a
check and its charge together; a shared implementation keeps that by answering from what it holds locally
(say, a share of each bucket leased from Redis in the background) rather than by a round trip per request.

RPM and TPM are token buckets, as OpenAI's are: a bucket holds N (requests or tokens), refills continuously at
N per minute and is full again a minute after it was emptied. Each is kept as one integer, the moment the
bucket will be full again (the "theoretical arrival time" of the generic cell rate algorithm), so there is
no separate refill step, and in integer nanoseconds, so a limit holds exactly at its boundary.

This module imports nothing from the store or the surfaces: the key cache (`store/cache.py`) holds a key's
`KeyLimits`, and the relay passes them in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from llmrelay.relay.errors import RelayError

NS_PER_MINUTE = 60_000_000_000
NS_PER_MS = 1_000_000
NS_PER_SECOND = 1_000_000_000

Headers = list[tuple[bytes, bytes]]

# OpenAI's header names (https://platform.openai.com/docs/guides/rate-limits), lowercase as ASGI wants them.
LIMIT_REQUESTS = b"x-ratelimit-limit-requests"
REMAINING_REQUESTS = b"x-ratelimit-remaining-requests"
RESET_REQUESTS = b"x-ratelimit-reset-requests"
LIMIT_TOKENS = b"x-ratelimit-limit-tokens"
REMAINING_TOKENS = b"x-ratelimit-remaining-tokens"
RESET_TOKENS = b"x-ratelimit-reset-tokens"
RETRY_AFTER = b"retry-after"
RETRY_AFTER_MS = b"retry-after-ms"  # read before Retry-After by the openai and anthropic SDKs
# The openai SDK obeys this header: a request larger than the key's TPM would be refused on every retry.
DO_NOT_RETRY = (b"x-should-retry", b"false")
CODE = "rate_limit_exceeded"


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's limits; None is no limit. A key with none at all has no KeyLimits (see `key_limits`)."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


def key_limits(rpm: int | None, tpm: int | None, max_parallel: int | None) -> KeyLimits | None:
    """The limits of a key, or None when it has none, so that the hot path's one test is `is not None`."""
    if rpm is None and tpm is None and max_parallel is None:
        return None
    return KeyLimits(rpm, tpm, max_parallel)


class Admission:
    """A request let through: what `release` needs, and the x-ratelimit-* headers for its response."""

    __slots__ = ("counters", "headers", "key_id", "tokens")

    def __init__(self, key_id: int, tokens: int, headers: Headers, counters: object) -> None:
        self.key_id = key_id
        self.tokens = tokens  # charged to the TPM bucket at admission (0 when the key has no TPM limit)
        self.headers = headers
        self.counters = counters  # the limiter's own handle; None once released


class RateLimiter(Protocol):
    def admit(self, key_id: int, limits: KeyLimits, tokens: int) -> Admission:
        """Let a request estimated at `tokens` through, or raise a 429 RelayError (with headers)."""
        ...

    def release(self, admission: Admission, used_tokens: int) -> None:
        """The request ended having used `used_tokens`; call exactly once per admission."""
        ...


def format_duration(ms: int) -> str:
    """A duration as OpenAI writes it in x-ratelimit-reset-*: "20ms", "1s", "11.2s", "6m0s", "1h0m0s"."""
    if ms < 1000:
        return f"{ms}ms" if ms > 0 else "0s"
    seconds, fraction = divmod(ms, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{seconds}.{fraction:03d}".rstrip("0") + "s" if fraction else f"{seconds}s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


NO_LIMITS = KeyLimits()


class _Counters:
    """One key's buckets and in-flight count, with the header bytes its limits make constant.

    A bucket's state is `*_full`, the moment it will be full again, in nanoseconds times its limit N (so
    that refilling N per minute adds whole numbers). `debt = full - now * N` is then what the bucket lacks,
    times NS_PER_MINUTE, whatever N is: a debt at or below zero is a full bucket, and a debt above
    N * NS_PER_MINUTE (a TPM bucket charged more at release than estimated at admission) is one below empty.
    """

    __slots__ = ("in_flight", "limits", "requests_limit", "rpm_full", "tokens_limit", "tpm_full")

    def __init__(self, limits: KeyLimits, now: int) -> None:
        self.in_flight = 0
        self.rpm_full = 0
        self.tpm_full = 0
        self.limits = NO_LIMITS
        self.apply(limits, now)

    def apply(self, limits: KeyLimits, now: int) -> None:
        """Take new limits, keeping what was used: a bucket's debt carries over into its new size, and a
        bucket that is new starts full."""
        old = self.limits
        self.rpm_full = _rescale(self.rpm_full, old.rpm, limits.rpm, now)
        self.tpm_full = _rescale(self.tpm_full, old.tpm, limits.tpm, now)
        self.limits = limits
        self.requests_limit = (LIMIT_REQUESTS, b"%d" % (limits.rpm or 0))
        self.tokens_limit = (LIMIT_TOKENS, b"%d" % (limits.tpm or 0))

    def idle(self, now: int) -> bool:
        """Nothing in flight and every bucket full: forgetting these counters loses nothing."""
        limits = self.limits
        return (
            self.in_flight == 0
            and (limits.rpm is None or self.rpm_full <= now * limits.rpm)
            and (limits.tpm is None or self.tpm_full <= now * limits.tpm)
        )


def _rescale(full: int, old: int | None, new: int | None, now: int) -> int:
    if new is None:
        return 0
    debt = max(full - now * old, 0) if old is not None else 0
    return now * new + debt


def _add_bucket_headers(
    headers: Headers, limit: tuple[bytes, bytes], remaining_name: bytes, reset_name: bytes, rate: int, debt: int
) -> None:
    """A bucket's limit, remaining (whole units, floored, never below 0) and reset (time until full)."""
    headers.append(limit)
    if debt <= 0:
        headers.append((remaining_name, limit[1]))
        headers.append((reset_name, b"0s"))
        return
    remaining = rate - _ceil_div(debt, NS_PER_MINUTE)
    headers.append((remaining_name, b"%d" % remaining if remaining > 0 else b"0"))
    headers.append((reset_name, format_duration(_ceil_div(debt, rate * NS_PER_MS)).encode()))


class LocalRateLimiter:
    """The counters in this process. Every gateway request runs on one event loop, and neither method
    awaits, so a check and its debit happen together and the limits hold exactly under concurrent load
    without a lock. (Several worker processes each count on their own: shared counters need Redis.)

    Memory stays bounded: the counters of a key with nothing in flight and full buckets, which would start
    afresh exactly as they are, are dropped once a minute."""

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock  # integer nanoseconds, so that bucket arithmetic is exact
        self._counters: dict[int, _Counters] = {}
        self._next_sweep = clock() + NS_PER_MINUTE

    def __len__(self) -> int:
        """The keys whose counters are held."""
        return len(self._counters)

    def admit(self, key_id: int, limits: KeyLimits, tokens: int) -> Admission:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        counters = self._counters.get(key_id)
        if counters is None:
            counters = self._counters[key_id] = _Counters(limits, now)
        elif counters.limits is not limits:  # the key cache keeps one KeyLimits while they do not change
            counters.apply(limits, now)
        rpm, tpm, parallel = limits.rpm, limits.tpm, limits.max_parallel
        rpm_debt = tpm_debt = 0
        if rpm is not None:
            rpm_debt = max(counters.rpm_full - now * rpm, 0)
        if tpm is not None:
            tokens = max(tokens, 0)
            tpm_debt = max(counters.tpm_full - now * tpm, 0)
        else:
            tokens = 0
        # Every limit is checked before any is charged: a refused request costs nothing.
        if (
            (rpm is not None and rpm_debt + NS_PER_MINUTE > rpm * NS_PER_MINUTE)
            or (tpm is not None and tpm_debt + tokens * NS_PER_MINUTE > tpm * NS_PER_MINUTE)
            or (parallel is not None and counters.in_flight >= parallel)
        ):
            raise _refusal(counters, tokens, rpm_debt, tpm_debt)
        headers: Headers = []
        if rpm is not None:
            rpm_debt += NS_PER_MINUTE
            counters.rpm_full = now * rpm + rpm_debt
            _add_bucket_headers(headers, counters.requests_limit, REMAINING_REQUESTS, RESET_REQUESTS, rpm, rpm_debt)
        if tpm is not None:
            tpm_debt += tokens * NS_PER_MINUTE
            counters.tpm_full = now * tpm + tpm_debt
            _add_bucket_headers(headers, counters.tokens_limit, REMAINING_TOKENS, RESET_TOKENS, tpm, tpm_debt)
        counters.in_flight += 1
        return Admission(key_id, tokens, headers, counters)

    def release(self, admission: Admission, used_tokens: int) -> None:
        counters = admission.counters
        if not isinstance(counters, _Counters):  # released already: a second release changes nothing
            return
        admission.counters = None
        counters.in_flight -= 1
        if counters.limits.tpm is not None:
            # The TPM bucket was charged the estimate; it now holds what was used. A refund can fill it no
            # further than full (a debt below zero counts as none); a further charge can take it below empty,
            # which holds back the key's next requests until it has refilled.
            extra = max(used_tokens, 0) - admission.tokens
            if extra:
                counters.tpm_full += extra * NS_PER_MINUTE

    def _sweep(self, now: int) -> None:
        self._next_sweep = now + NS_PER_MINUTE
        for key_id in [key_id for key_id, counters in self._counters.items() if counters.idle(now)]:
            del self._counters[key_id]


def _refusal(counters: _Counters, tokens: int, rpm_debt: int, tpm_debt: int) -> RelayError:
    """The 429 for a request over one or more of its key's limits: it names the limit that keeps it waiting
    longest, and says how long (Retry-After) when waiting helps."""
    limits = counters.limits
    rpm, tpm, parallel = limits.rpm, limits.tpm, limits.max_parallel
    closed = _closed_by(limits)
    if closed is not None:
        return RelayError(429, closed, "requests", CODE, headers=[DO_NOT_RETRY])
    headers: Headers = []
    if rpm is not None:
        _add_bucket_headers(headers, counters.requests_limit, REMAINING_REQUESTS, RESET_REQUESTS, rpm, rpm_debt)
    if tpm is not None:
        _add_bucket_headers(headers, counters.tokens_limit, REMAINING_TOKENS, RESET_TOKENS, tpm, tpm_debt)
    if tpm is not None and tokens > tpm:
        headers.append(DO_NOT_RETRY)
        message = (
            f"Request too large for this API key on tokens per minute (TPM): Limit {tpm}, Requested {tokens}. "
            "The input or output tokens must be reduced in order to run successfully."
        )
        return RelayError(429, message, "tokens", CODE, headers=headers)
    # (wait, message, type) of each limit that refuses; the parallel limit's wait is not known, so a second.
    refusals: list[tuple[int, str, str]] = []
    if rpm is not None and rpm_debt + NS_PER_MINUTE > rpm * NS_PER_MINUTE:
        wait = _ceil_div(rpm_debt + NS_PER_MINUTE - rpm * NS_PER_MINUTE, rpm)
        refusals.append((wait, _bucket_message("requests per minute (RPM)", rpm, rpm_debt, 1, wait), "requests"))
    if tpm is not None and tpm_debt + tokens * NS_PER_MINUTE > tpm * NS_PER_MINUTE:
        wait = _ceil_div(tpm_debt + (tokens - tpm) * NS_PER_MINUTE, tpm)
        refusals.append((wait, _bucket_message("tokens per minute (TPM)", tpm, tpm_debt, tokens, wait), "tokens"))
    if parallel is not None and counters.in_flight >= parallel:
        message = (
            f"Too many requests in flight for this API key: Limit {parallel}, In flight {counters.in_flight}. "
            "Please try again when one of them has finished."
        )
        refusals.append((NS_PER_SECOND, message, "requests"))
    wait_ns, message, kind = max(refusals, key=lambda refusal: refusal[0])
    headers.append((RETRY_AFTER, b"%d" % max(_ceil_div(wait_ns, NS_PER_SECOND), 1)))
    headers.append((RETRY_AFTER_MS, b"%d" % max(_ceil_div(wait_ns, NS_PER_MS), 1)))
    return RelayError(429, message, kind, CODE, headers=headers)


def _closed_by(limits: KeyLimits) -> str | None:
    """The message for a limit below 1, which lets no request through. The store never writes one (the CLI
    and the admin API refuse it), but a row edited by hand may hold it: it refuses, and never divides by 0."""
    for name, value in (
        ("requests per minute (RPM)", limits.rpm),
        ("tokens per minute (TPM)", limits.tpm),
        ("parallel requests", limits.max_parallel),
    ):
        if value is not None and value < 1:
            return f"This API key's limit on {name} is {value}: it lets no request through."
    return None


def _bucket_message(name: str, limit: int, debt: int, requested: int, wait_ns: int) -> str:
    used = _ceil_div(debt, NS_PER_MINUTE)  # whole units, as OpenAI counts them
    wait = format_duration(max(_ceil_div(wait_ns, NS_PER_MS), 1))
    return (
        f"Rate limit reached for this API key on {name}: Limit {limit}, Used {used}, Requested {requested}. "
        f"Please try again in {wait}."
    )
