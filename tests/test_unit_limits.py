"""Per-key rate limits (relay/limits.py): token buckets for RPM and TPM and an in-flight count, on a fake
clock, so every boundary is checked to the nanosecond."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay.relay.errors import RelayError
from llmrelay.relay.limits import (
    Admission,
    KeyLimits,
    LocalRateLimiter,
    RateLimiter,
    format_duration,
    key_limits,
)
from llmrelay.store.cache import KeyState
from llmrelay.store.keys import KeyRecord
from tests.keys import key_record

SECOND = 1_000_000_000
KEY = 7


class Clock:
    """Integer nanoseconds that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000 * SECOND

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float = 0, ns: int = 0) -> None:
        self.now += int(seconds * SECOND) + ns


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> LocalRateLimiter:
    return LocalRateLimiter(clock)


def headers(admission_or_error: Admission | RelayError) -> dict[str, str]:
    pairs = admission_or_error.headers or []
    assert len({name for name, _ in pairs}) == len(pairs), "no header twice"
    return {name.decode(): value.decode() for name, value in pairs}


def refused(limiter: LocalRateLimiter, limits: KeyLimits, tokens: int = 0, key_id: int = KEY) -> RelayError:
    with pytest.raises(RelayError) as raised:
        limiter.admit(key_id, limits, tokens)
    error = raised.value
    assert (error.status, error.code) == (429, "rate_limit_exceeded")
    return error


# ------------------------------------------------------------------------------------------------ RPM


def test_rpm_lets_exactly_the_limit_through_and_refills_one_request_per_interval(
    limiter: LocalRateLimiter, clock: Clock
) -> None:
    limits = KeyLimits(rpm=5)
    for _ in range(5):
        limiter.admit(KEY, limits, 0)
    error = refused(limiter, limits)
    assert error.type == "requests"
    assert error.message == (
        "Rate limit reached for this API key on requests per minute (RPM): Limit 5, Used 5, Requested 1. "
        "Please try again in 12s."
    )
    clock.advance(12, ns=-1)  # one request refills in 60 s / 5 = 12 s, not a nanosecond sooner
    refused(limiter, limits)
    clock.advance(ns=1)
    limiter.admit(KEY, limits, 0)
    refused(limiter, limits)


def test_rpm_bucket_is_full_again_a_minute_after_it_was_emptied(limiter: LocalRateLimiter, clock: Clock) -> None:
    limits = KeyLimits(rpm=3)
    for _ in range(3):
        limiter.admit(KEY, limits, 0)
    clock.advance(60)
    for _ in range(3):
        limiter.admit(KEY, limits, 0)
    refused(limiter, limits)


def test_the_bucket_never_holds_more_than_the_limit(limiter: LocalRateLimiter, clock: Clock) -> None:
    limits = KeyLimits(rpm=2)
    limiter.admit(KEY, limits, 0)
    clock.advance(3600)  # an hour idle refills to 2, not to 120
    limiter.admit(KEY, limits, 0)
    limiter.admit(KEY, limits, 0)
    refused(limiter, limits)


def test_keys_have_their_own_buckets(limiter: LocalRateLimiter) -> None:
    limits = KeyLimits(rpm=1)
    limiter.admit(1, limits, 0)
    limiter.admit(2, limits, 0)
    refused(limiter, limits, key_id=1)


# ------------------------------------------------------------------------------------------------ TPM


def test_tpm_charges_the_estimate_and_release_corrects_it_to_what_was_used(
    limiter: LocalRateLimiter, clock: Clock
) -> None:
    limits = KeyLimits(tpm=1000)
    first = limiter.admit(KEY, limits, 600)
    assert first.tokens == 600 and headers(first)["x-ratelimit-remaining-tokens"] == "400"
    error = refused(limiter, limits, 500)
    assert error.type == "tokens"
    assert "tokens per minute (TPM): Limit 1000, Used 600, Requested 500" in error.message
    assert headers(error)["retry-after"] == "6"  # 100 tokens short, at 1000 a minute
    limiter.release(first, 100)  # the reply was short: 500 tokens come back
    second = limiter.admit(KEY, limits, 500)
    assert headers(second)["x-ratelimit-remaining-tokens"] == "400"


def test_release_charges_what_the_estimate_missed_even_below_empty(limiter: LocalRateLimiter, clock: Clock) -> None:
    limits = KeyLimits(tpm=1000)
    admission = limiter.admit(KEY, limits, 800)
    limiter.release(admission, 1500)  # 700 more than estimated: the bucket is 500 below empty
    error = refused(limiter, limits, 1)
    assert "Used 1500" in error.message
    assert headers(error)["x-ratelimit-remaining-tokens"] == "0"
    assert headers(error)["x-ratelimit-reset-tokens"] == "1m30s"  # 1500 tokens at 1000 a minute
    assert headers(error)["retry-after"] == "31"  # until 1 token is back: 501 tokens, 30.06 s
    clock.advance(30.06)
    limiter.admit(KEY, limits, 1)


def test_a_refund_fills_the_bucket_no_further_than_full(limiter: LocalRateLimiter, clock: Clock) -> None:
    limits = KeyLimits(tpm=1000)
    admission = limiter.admit(KEY, limits, 1000)
    clock.advance(60)  # refilled meanwhile
    limiter.release(admission, 0)
    limiter.admit(KEY, limits, 1000)
    refused(limiter, limits, 1)


def test_a_request_larger_than_the_tpm_limit_is_refused_for_good(limiter: LocalRateLimiter) -> None:
    limits = KeyLimits(tpm=100)
    error = refused(limiter, limits, 101)
    assert error.type == "tokens"
    assert error.message.startswith(
        "Request too large for this API key on tokens per minute (TPM): Limit 100, Requested 101."
    )
    shown = headers(error)
    assert "retry-after" not in shown and "retry-after-ms" not in shown  # waiting would not help
    assert shown["x-should-retry"] == "false"  # the openai SDK then does not retry
    assert shown["x-ratelimit-remaining-tokens"] == "100"  # nothing was charged
    limiter.admit(KEY, limits, 100)  # the whole bucket at once is allowed


def test_tokens_are_not_counted_for_a_key_without_tpm(limiter: LocalRateLimiter) -> None:
    admission = limiter.admit(KEY, KeyLimits(rpm=10), 10**12)
    assert admission.tokens == 0
    limiter.release(admission, 10**12)


# ------------------------------------------------------------------------------------------------ parallel


def test_max_parallel_counts_requests_in_flight(limiter: LocalRateLimiter) -> None:
    limits = KeyLimits(max_parallel=2)
    first = limiter.admit(KEY, limits, 0)
    limiter.admit(KEY, limits, 0)
    error = refused(limiter, limits)
    assert error.type == "requests"
    assert error.message.startswith("Too many requests in flight for this API key: Limit 2, In flight 2.")
    assert headers(error) == {"retry-after": "1", "retry-after-ms": "1000"}
    limiter.release(first, 0)
    limiter.admit(KEY, limits, 0)


def test_a_second_release_changes_nothing(limiter: LocalRateLimiter) -> None:
    limits = KeyLimits(max_parallel=1, tpm=100)
    admission = limiter.admit(KEY, limits, 10)
    limiter.release(admission, 10)
    limiter.release(admission, 90)
    again = limiter.admit(KEY, limits, 0)
    refused(limiter, limits)  # the in-flight count did not go below zero
    assert headers(again)["x-ratelimit-remaining-tokens"] == "90"  # and the second release charged nothing


# ------------------------------------------------------------------------------------------------ all limits


@pytest.mark.parametrize(
    ("limits", "first_tokens", "second_tokens", "refused_by"),
    [
        (KeyLimits(rpm=10, tpm=100, max_parallel=5), 100, 50, "tokens"),
        (KeyLimits(rpm=1, tpm=100, max_parallel=5), 10, 10, "requests"),
        (KeyLimits(rpm=10, tpm=100, max_parallel=1), 10, 10, "in flight"),
    ],
)
def test_a_refused_request_charges_no_limit(
    limiter: LocalRateLimiter, limits: KeyLimits, first_tokens: int, second_tokens: int, refused_by: str
) -> None:
    first = limiter.admit(KEY, limits, first_tokens)
    before = headers(first)
    error = refused(limiter, limits, second_tokens)
    assert refused_by in error.message or error.type == refused_by
    after = headers(error)
    for name in ("x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"):
        assert after[name] == before[name], name  # the refusal took nothing from any bucket
    limiter.release(first, first_tokens)
    assert limiter._counters[KEY].in_flight == 0


def test_the_refusal_names_the_limit_that_keeps_the_request_waiting_longest(limiter: LocalRateLimiter) -> None:
    limits = KeyLimits(rpm=2, tpm=60, max_parallel=10)
    limiter.admit(KEY, limits, 1)
    limiter.admit(KEY, limits, 59)
    error = refused(limiter, limits, 60)  # RPM frees a request in 30 s, TPM 60 tokens in 60 s
    assert error.type == "tokens" and headers(error)["retry-after"] == "60"


def test_limits_hold_exactly_under_concurrent_requests(limiter: LocalRateLimiter) -> None:
    limits = KeyLimits(rpm=50, tpm=10_000, max_parallel=8)
    in_flight = peak = 0
    outcomes: list[str] = []

    async def request() -> None:
        nonlocal in_flight, peak
        await asyncio.sleep(0)
        try:
            admission = limiter.admit(KEY, limits, 100)
        except RelayError as error:
            outcomes.append(error.type)
            return
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)  # the upstream call: other requests run meanwhile
        in_flight -= 1
        limiter.release(admission, 100)
        outcomes.append("ok")

    async def load() -> None:
        for _ in range(20):
            await asyncio.gather(*(request() for _ in range(30)))

    asyncio.run(load())  # the fake clock stands still: nothing refills
    assert outcomes.count("ok") == 50 and peak == 8
    assert len(outcomes) == 600


# ------------------------------------------------------------------------------------------------ headers


def test_headers_after_an_admission(limiter: LocalRateLimiter) -> None:
    admission = limiter.admit(KEY, KeyLimits(rpm=60, tpm=10_000, max_parallel=4), 250)
    assert admission.key_id == KEY and admission.tokens == 250
    assert admission.headers == [
        (b"x-ratelimit-limit-requests", b"60"),
        (b"x-ratelimit-remaining-requests", b"59"),
        (b"x-ratelimit-reset-requests", b"1s"),  # one request of 60 a minute
        (b"x-ratelimit-limit-tokens", b"10000"),
        (b"x-ratelimit-remaining-tokens", b"9750"),
        (b"x-ratelimit-reset-tokens", b"1.5s"),  # 250 tokens of 10,000 a minute
    ]


@pytest.mark.parametrize(
    ("limits", "names"),
    [
        (KeyLimits(rpm=5), {"requests"}),
        (KeyLimits(tpm=5), {"tokens"}),
        (KeyLimits(rpm=5, max_parallel=3), {"requests"}),
        (KeyLimits(max_parallel=3), set()),
    ],
)
def test_only_the_limits_a_key_has_get_headers(limiter: LocalRateLimiter, limits: KeyLimits, names: set[str]) -> None:
    shown = headers(limiter.admit(KEY, limits, 1))
    assert {name.rsplit("-", 1)[1] for name in shown} == names
    assert len(shown) == 3 * len(names)


def test_remaining_is_floored_and_reset_counts_down(limiter: LocalRateLimiter, clock: Clock) -> None:
    limits = KeyLimits(rpm=60)
    for _ in range(3):
        limiter.admit(KEY, limits, 0)
    clock.advance(1.5)  # 1.5 requests back: 58.5 in the bucket
    shown = headers(limiter.admit(KEY, limits, 0))  # 57.5 left
    assert shown["x-ratelimit-remaining-requests"] == "57"
    assert shown["x-ratelimit-reset-requests"] == "2.5s"
    clock.advance(60)
    shown = headers(limiter.admit(KEY, limits, 0))
    assert shown["x-ratelimit-remaining-requests"] == "59" and shown["x-ratelimit-reset-requests"] == "1s"


@pytest.mark.parametrize(
    ("rpm", "retry_after", "retry_after_ms", "wait"),
    [
        (7, "9", "8572", "8.572s"),  # 60 / 7 = 8.5714... s, rounded up
        (60, "1", "1000", "1s"),
        (1, "60", "60000", "1m0s"),
    ],
)
def test_retry_after_is_rounded_up(
    limiter: LocalRateLimiter, rpm: int, retry_after: str, retry_after_ms: str, wait: str
) -> None:
    limits = KeyLimits(rpm=rpm)
    for _ in range(rpm):
        limiter.admit(KEY, limits, 0)
    error = refused(limiter, limits)
    shown = headers(error)
    assert shown["retry-after"] == retry_after and shown["retry-after-ms"] == retry_after_ms
    assert error.message.endswith(f"Please try again in {wait}.")


def test_retry_after_is_at_least_a_second(limiter: LocalRateLimiter) -> None:
    limits = KeyLimits(tpm=10**9)
    limiter.admit(KEY, limits, 10**9)
    error = refused(limiter, limits, 1)  # one token back takes 60 ns
    assert headers(error)["retry-after"] == "1" and headers(error)["retry-after-ms"] == "1"
    assert error.message.endswith("Please try again in 1ms.")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (1, "1ms"),
        (20, "20ms"),
        (999, "999ms"),
        (1000, "1s"),
        (1500, "1.5s"),
        (11_200, "11.2s"),
        (8_572, "8.572s"),
        (59_999, "59.999s"),
        (60_000, "1m0s"),
        (90_500, "1m30.5s"),
        (360_000, "6m0s"),
        (3_600_000, "1h0m0s"),
        (3_723_004, "1h2m3.004s"),
    ],
)
def test_durations_are_written_as_openai_writes_them(ms: int, text: str) -> None:
    assert format_duration(ms) == text


# ------------------------------------------------------------------------------------------------ limits


def test_changed_limits_keep_what_was_used(limiter: LocalRateLimiter) -> None:
    limiter.admit(KEY, KeyLimits(rpm=5), 0)
    limiter.admit(KEY, KeyLimits(rpm=5), 0)
    raised = KeyLimits(rpm=10)
    shown = headers(limiter.admit(KEY, raised, 0))
    assert shown["x-ratelimit-limit-requests"] == "10"
    assert shown["x-ratelimit-remaining-requests"] == "7"  # 2 used before, 1 now
    added = KeyLimits(rpm=10, tpm=100)  # a new bucket starts full
    assert headers(limiter.admit(KEY, added, 40))["x-ratelimit-remaining-tokens"] == "60"


def test_a_limit_below_one_refuses_requests_without_failing(limiter: LocalRateLimiter) -> None:
    # Neither front end stores one, but a row edited by hand may hold it.
    for key_id, limits in enumerate((KeyLimits(rpm=0), KeyLimits(tpm=0), KeyLimits(rpm=-3))):
        for _ in range(2):
            error = refused(limiter, limits, 1, key_id=key_id)
            assert "lets no request through" in error.message or "Request too large" in error.message
            assert headers(error)["x-should-retry"] == "false"
    empty = KeyLimits(tpm=0)
    limiter.release(limiter.admit(9, empty, 0), 5)  # nothing estimated, 5 used: below empty
    assert "lets no request through" in refused(limiter, empty, 0, key_id=9).message
    assert "lets no request through" in refused(limiter, KeyLimits(max_parallel=0), key_id=10).message


def test_counters_of_idle_keys_are_dropped(limiter: LocalRateLimiter, clock: Clock) -> None:
    limits = KeyLimits(rpm=60, tpm=1000, max_parallel=5)
    busy = limiter.admit(1, limits, 10)  # still in flight at the sweep
    limiter.release(limiter.admit(2, limits, 10), 10)
    limiter.release(limiter.admit(3, KeyLimits(rpm=1), 0), 0)
    clock.advance(59)  # key 3's bucket refills a request in 60 s
    late = limiter.admit(4, limits, 0)
    assert len(limiter) == 4
    clock.advance(1)  # a minute since the limiter started: the sweep is due
    limiter.release(limiter.admit(5, limits, 0), 0)
    assert set(limiter._counters) == {1, 4, 5}  # 2 and 3 were full and idle
    limiter.release(busy, 10)
    limiter.release(late, 0)
    clock.advance(60)
    limiter.admit(6, limits, 0)
    assert set(limiter._counters) == {6}


def test_the_local_limiter_is_a_rate_limiter(clock: Clock) -> None:
    limiter: RateLimiter = LocalRateLimiter(clock)
    limiter.release(limiter.admit(KEY, KeyLimits(rpm=1), 0), 0)


# ------------------------------------------------------------------------------------------------ key cache


def record(**limits: int | None) -> KeyRecord:
    return key_record(id=KEY, **limits)


def test_a_key_without_limits_has_none_and_unchanged_limits_stay_one_object() -> None:
    assert KeyState(record()).limits is None
    assert key_limits(None, None, None) is None
    state = KeyState(record(rpm=60, max_parallel=2))
    limits = state.limits
    assert limits == KeyLimits(rpm=60, tpm=None, max_parallel=2)
    state.update(record(rpm=60, max_parallel=2), 0, 0)
    assert state.limits is limits  # the limiter notices a change by identity
    state.update(record(rpm=30, max_parallel=2), 0, 0)
    assert state.limits == KeyLimits(rpm=30, max_parallel=2)
    state.update(record(), 0, 0)
    assert state.limits is None
