"""Properties of pricing, reservation and settlement, through the real QuotaLedger and real Prices.

For any prices an operator may write and any sequence of concurrent requests that succeed, fail, over-report
or are cut off: a reservation covers every usage within its bound, each request is charged at most its
reservation, the charges add up exactly to the balance change, and no balance goes below zero.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay.metering.pricing import BUILTIN_PRICES, Price, Usage, price_from_spec
from llmrelay.metering.quota import QuotaLedger, Settlement, plan_reservation
from tests.keys import key_state

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# USD per 1M tokens as operators write them (up to 6 decimals), and per request.
RATES = st.decimals(min_value=0, max_value=100, places=6, allow_nan=False, allow_infinity=False).map(str)


@st.composite
def prices(draw: st.DrawFn) -> Price:
    """A built-in price, or an operator's: any mix of input, output, cached input, cache write (cached input or
    cache writes may cost more than plain input), per-request price and longest reply."""
    if draw(st.booleans()):
        return price_from_spec(
            BUILTIN_PRICES[draw(st.sampled_from(sorted(n for n, s in BUILTIN_PRICES.items() if "output" in s)))]
        )
    spec: dict[str, object] = {"input": draw(RATES), "output": draw(RATES)}
    for field in ("cached_input", "cache_write"):
        if draw(st.booleans()):
            spec[field] = draw(RATES)
    if draw(st.booleans()):
        spec["per_request"] = draw(st.decimals(min_value=0, max_value=1, places=9).map(str))
    spec["max_output_tokens"] = draw(st.integers(1, 200_000))
    return price_from_spec(spec)


@st.composite
def usage_within(draw: st.DrawFn, prompt_bound: int, output_bound: int) -> Usage:
    """Any usage that stays within the bound: prompt tokens (some read from or written to a cache) up to the
    prompt bound, completion up to the output bound."""
    prompt = draw(st.integers(0, prompt_bound))
    cached = draw(st.integers(0, prompt))
    written = draw(st.integers(0, prompt - cached))
    return Usage(prompt, draw(st.integers(0, output_bound)), cached_tokens=cached, cache_write_tokens=written)


@PROPERTY_SETTINGS
@given(data=st.data(), price=prices(), prompt=st.integers(0, 100_000), choices=st.integers(1, 4))
def test_a_reservation_covers_every_usage_within_its_bound(
    data: st.DataObject, price: Price, prompt: int, choices: int
) -> None:
    requested = data.draw(st.one_of(st.none(), st.integers(1, 100_000)))
    reserve, cap = plan_reservation(price, prompt, requested, choices, None)
    assert cap is None
    output = (requested if requested is not None else price.max_output_tokens) * choices
    usage = data.draw(usage_within(prompt, output))
    assert price.cost_nano(usage) <= reserve


@PROPERTY_SETTINGS
@given(data=st.data(), price=prices(), prompt=st.integers(0, 20_000), choices=st.integers(1, 3))
def test_a_capped_reservation_is_affordable_and_covers_the_capped_reply(
    data: st.DataObject, price: Price, prompt: int, choices: int
) -> None:
    full, _ = plan_reservation(price, prompt, None, choices, None)
    available = data.draw(st.integers(0, full))
    reserve, cap = plan_reservation(price, prompt, None, choices, available)
    if cap is None:
        return  # either the full reply is affordable or nothing is (the reservation is then refused)
    assert reserve <= available
    usage = data.draw(usage_within(prompt, cap * choices))
    assert price.cost_nano(usage) <= reserve


@PROPERTY_SETTINGS
@given(price=prices(), small=usage_within(5_000, 5_000), extra=usage_within(5_000, 5_000))
def test_cost_grows_with_usage(price: Price, small: Usage, extra: Usage) -> None:
    bigger = Usage(
        small.prompt_tokens + extra.prompt_tokens,
        small.completion_tokens + extra.completion_tokens,
        cached_tokens=small.cached_tokens + extra.cached_tokens,
        cache_write_tokens=small.cache_write_tokens + extra.cache_write_tokens,
    )
    assert 0 <= price.cost_nano(small) <= price.cost_nano(bigger)
    # One rounding per request: the sum of two requests' costs is within a nano of their combined cost.
    assert (
        abs(price.cost_nano(small) + price.cost_nano(extra) - price.cost_nano(bigger) - price.cost_nano(Usage())) <= 1
    )


# ---------------------------------------------------------------------------------------------- settlement

KINDS = ("success", "failure", "over_report", "disconnect")


@dataclass
class Request:
    prompt: int
    max_tokens: int | None
    choices: int
    kind: str
    steps: int  # event-loop turns the upstream takes, so that requests interleave
    fraction: float  # how much of the bound a success or disconnect used
    excess: int  # tokens an over-report adds beyond the bound


REQUESTS = st.builds(
    Request,
    prompt=st.integers(0, 3_000),
    max_tokens=st.one_of(st.none(), st.integers(1, 2_000)),
    choices=st.integers(1, 3),
    kind=st.sampled_from(KINDS),
    steps=st.integers(0, 5),
    fraction=st.floats(0, 1),
    excess=st.integers(1, 10**7),
)


def reported_usage(request: Request, price: Price, cap: int | None) -> Usage | None:
    """What the upstream reports for the request (None: the call failed)."""
    output = (request.max_tokens or cap or price.max_output_tokens) * request.choices
    if request.kind == "failure":
        return None
    if request.kind == "over_report":
        return Usage(request.prompt + request.excess, output + request.excess)
    share = request.fraction if request.kind == "success" else request.fraction / 2
    return Usage(request.prompt, int(output * share))


@PROPERTY_SETTINGS
@given(
    price=prices(),
    quota=st.one_of(st.none(), st.integers(0, 10**9)),
    spent=st.integers(0, 10**8),
    requests=st.lists(REQUESTS, min_size=1, max_size=25),
)
def test_concurrent_requests_are_charged_exactly_and_never_overdraw(
    price: Price, quota: int | None, spent: int, requests: list[Request]
) -> None:
    if quota is not None:
        spent = min(spent, quota)
    ledger = QuotaLedger()
    key = key_state(quota, spent)
    settled: list[tuple[Request, int, int, Settlement]] = []

    def check_balance() -> None:
        if quota is not None:
            assert key.used_nano + key.reserved_nano <= quota

    async def one(request: Request) -> None:
        reserve, cap = plan_reservation(
            price, request.prompt, request.max_tokens, request.choices, ledger.available_nano(key)
        )
        if not await ledger.reserve(key, reserve):
            return
        check_balance()
        for _ in range(request.steps):
            await asyncio.sleep(0)
        usage = reported_usage(request, price, cap)
        reported = 0 if usage is None else price.cost_nano(usage)
        settlement = await ledger.settle(key, reserve, reported)
        check_balance()
        settled.append((request, reserve, reported, settlement))

    async def run_all() -> None:
        await asyncio.gather(*(one(r) for r in requests))

    asyncio.run(run_all())

    charged = sum(s.charged_nano for *_, s in settled)
    assert key.used_nano - spent == charged  # the charges add up exactly to the balance change
    assert key.reserved_nano == 0
    assert key.request_count == len(settled)
    if quota is not None:
        assert key.quota_nano - key.used_nano >= 0  # never below zero
    for request, reserve, reported, settlement in settled:
        assert 0 <= settlement.charged_nano <= reserve
        assert settlement.charged_nano + settlement.overrun_nano == reported
        if request.kind == "failure":
            assert settlement == Settlement(0, 0)
        elif request.kind in ("success", "disconnect"):
            assert settlement.overrun_nano == 0  # usage within the bound is charged in full
