"""Pure-function tests for exact money, prices, quota reservations and offline token counting.

Expected values are derived from the published rules (USD per 1M tokens, 1 USD = 1e9 nano-dollars,
one half-up rounding per request), never read back from the implementation.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from fractions import Fraction

import bpe_openai
import orjson
import pytest

from llmrelay.metering.money import NANO_PER_USD, MoneyError, format_usd, nano_to_usd, to_decimal, usd_to_nano
from llmrelay.metering.pricing import (
    OPENAI_MODELS,
    Price,
    PriceTable,
    Usage,
    build_price_table,
    price_from_spec,
)
from llmrelay.metering.quota import QuotaLedger, plan_reservation
from llmrelay.metering.tokens import count_chat_prompt, count_completion, count_text, encoding_name_for
from tests.keys import key_state

NANO = 1_000_000_000
MILLION = 1_000_000


def nano_per_token(usd_per_million: str) -> Fraction:
    """USD per 1M tokens → exact nano-dollars per token, computed independently with Fractions."""
    return Fraction(usd_per_million) * NANO / MILLION


def round_half_up(value: Fraction) -> int:
    """Round a non-negative exact amount to the nearest integer, .5 going up."""
    floor = value.numerator // value.denominator
    return floor + (1 if value - floor >= Fraction(1, 2) else 0)


def expected_cost(
    input_usd: str, output_usd: str, cached_usd: str | None, prompt: int, completion: int, cached: int = 0
) -> int:
    """The billed cost by the documented rule: exact sum per request, rounded once, half up."""
    cached_rate = nano_per_token(cached_usd if cached_usd is not None else input_usd)
    exact = (
        (prompt - cached) * nano_per_token(input_usd) + cached * cached_rate + completion * nano_per_token(output_usd)
    )
    return round_half_up(exact)


# --------------------------------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("amount", "nano"),
    [
        ("1", NANO),
        ("0", 0),
        ("2.50", 2_500_000_000),
        ("0.000000001", 1),
        ("0.0000000005", 1),  # exactly half a nano rounds up
        ("0.00000000049999", 0),
        ("0.0000000015", 2),  # half up, not half even (banker's rounding would give 2 here too)
        ("0.0000000025", 3),  # half up; banker's rounding would give 2
        ("  12.5  ", 12_500_000_000),
        ("1e-9", 1),
        ("1E3", 1000 * NANO),
        (5, 5 * NANO),
        (0.1, 100_000_000),
        (0.075, 75_000_000),
        (Decimal("0.3"), 300_000_000),
        ("9223372036.854775807", 9_223_372_036_854_775_807),  # BIGINT max, exactly
    ],
)
def test_usd_to_nano_exact(amount: object, nano: int) -> None:
    assert usd_to_nano(amount) == nano


def test_no_float_drift_when_summing_amounts() -> None:
    assert 0.1 + 0.2 != 0.3  # the float trap this module exists to avoid
    assert usd_to_nano(0.1) + usd_to_nano(0.2) == usd_to_nano(0.3) == 300_000_000
    assert sum(usd_to_nano(0.1) for _ in range(10)) == NANO
    assert sum(usd_to_nano("0.01") for _ in range(100)) == NANO
    # 1/3 of a dollar three times is billed as three rounded thirds, not a float accumulation.
    third = usd_to_nano(Decimal(1) / 3)
    assert third == 333_333_333


def test_usd_to_nano_rounds_once_at_the_ninth_decimal() -> None:
    # The exact value is 123456789.4999…9 nano (30 significant digits): half up at the ninth decimal
    # gives 123456789. Rounding twice (first to 28 digits, then to an integer) would give 123456790.
    assert usd_to_nano("0.123456789499999999999999999999") == 123_456_789


@pytest.mark.parametrize("bad", [True, False, "abc", "", "NaN", "Infinity", "-inf", "1,5", "5 USD", None, "$5"])
def test_to_decimal_rejects_junk(bad: object) -> None:
    with pytest.raises(MoneyError):
        to_decimal(bad)


@pytest.mark.parametrize("nano", [0, 1, 7, 999_999_999, NANO, 1_234_567_891, 9_223_372_036_854_775_807])
def test_nano_to_usd_is_exact_and_round_trips(nano: int) -> None:
    usd = nano_to_usd(nano)
    assert isinstance(usd, Decimal)
    assert Fraction(usd) == Fraction(nano, NANO)
    assert usd_to_nano(usd) == nano


def test_nano_to_usd_digits() -> None:
    assert format(nano_to_usd(1), "f") == "0.000000001"
    assert format(nano_to_usd(12_345), "f") == "0.000012345"
    assert nano_to_usd(2_500_000_000) == Decimal("2.5")
    assert NANO_PER_USD == NANO


@pytest.mark.parametrize(
    ("nano", "places", "text"),
    [
        (None, 6, "unlimited"),
        (0, 6, "$0.000000"),
        (1_234_567, 6, "$0.001235"),  # 0.001234567 → half up at six places
        (500, 6, "$0.000001"),  # 0.0000005 → half up
        (499, 6, "$0.000000"),
        (5 * NANO, 2, "$5.00"),
        (1_005_000_000, 2, "$1.01"),  # 1.005 rounds half up (float formatting would give 1.00)
    ],
)
def test_format_usd(nano: int | None, places: int, text: str) -> None:
    assert format_usd(nano, places) == text


# --------------------------------------------------------------------------------------------------- prices

PRICES = build_price_table()


@pytest.mark.parametrize(
    ("model", "input_usd", "cached_usd", "output_usd"),
    [
        ("gpt-4o", "2.50", "1.25", "10"),
        ("gpt-4o-mini", "0.15", "0.075", "0.60"),
        ("gpt-4", "30", None, "60"),  # no cached price published: cached input is billed as input
        ("gemini-1.5-flash-latest", "0.075", "0.01875", "0.30"),
        ("claude-3-5-sonnet-latest", "3", "0.30", "15"),
    ],
)
@pytest.mark.parametrize(
    ("prompt", "completion", "cached"),
    [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 1), (3, 0, 3), (1000, 500, 0), (1000, 500, 400), (123_457, 7, 99_999)],
)
def test_builtin_price_costs(
    model: str, input_usd: str, cached_usd: str | None, output_usd: str, prompt: int, completion: int, cached: int
) -> None:
    price = PRICES.lookup(model)
    assert price is not None
    expected = expected_cost(input_usd, output_usd, cached_usd, prompt, completion, cached)
    assert price.cost_nano(Usage(prompt, completion, cached)) == expected


def test_gpt_4o_costs_by_the_published_rates() -> None:
    price = PRICES.lookup("gpt-4o")
    assert price is not None
    # $2.50 per 1M input, $10 per 1M output, $1.25 per 1M cached input.
    assert price.cost_nano(Usage(MILLION, 0)) == usd_to_nano("2.50")
    assert price.cost_nano(Usage(0, MILLION)) == usd_to_nano("10")
    assert price.cost_nano(Usage(MILLION, 0, MILLION)) == usd_to_nano("1.25")
    assert price.cost_nano(Usage(MILLION, MILLION, 400_000)) == usd_to_nano("2") + usd_to_nano("10")
    assert price.cost_nano(Usage(1, 0)) == 2500
    assert price.cost_nano(Usage(1, 0, 1)) == 1250
    assert price.cost_nano(Usage(0, 1)) == 10_000


def test_cost_is_rounded_once_per_request_not_per_token() -> None:
    flash = PRICES.lookup("gemini-1.5-flash-latest")
    assert flash is not None
    # Cached flash input is 18.75 nano per token.
    assert flash.cost_nano(Usage(1, 0, 1)) == 19
    assert flash.cost_nano(Usage(2, 0, 2)) == 38  # 37.5 → 38
    assert flash.cost_nano(Usage(3, 0, 3)) == 56  # 56.25; per-token rounding would give 57
    assert flash.cost_nano(Usage(4, 0, 4)) == 75


@pytest.mark.parametrize(("tokens", "billed"), [(1, 1), (2, 1), (3, 2), (5, 3), (7, 4), (0, 0)])
def test_half_nano_rounds_up(tokens: int, billed: int) -> None:
    # $0.0005 per 1M tokens is exactly half a nano-dollar per token.
    price = price_from_spec({"input": "0.0005", "output": "0"})
    assert price.cost_nano(Usage(tokens, 0)) == billed


def test_cached_tokens_are_clamped_to_prompt_tokens() -> None:
    price = PRICES.lookup("gpt-4o")
    assert price is not None
    # prompt_tokens includes cached_tokens, so more cached than prompt can only mean all of it was cached.
    assert price.cost_nano(Usage(100, 0, 500)) == 100 * 1250


def test_per_request_price() -> None:
    price = price_from_spec({"input": "0", "output": "0", "per_request": "0.01"})
    assert price.cost_nano(Usage()) == usd_to_nano("0.01") == 10_000_000
    both = price_from_spec({"input": "1", "output": "2", "per_request": "0.000000001"})
    assert both.cost_nano(Usage(1000, 1000)) == 1000 * 1000 + 1000 * 2000 + 1


def test_float_prices_from_yaml_stay_exact() -> None:
    price = price_from_spec({"input": 0.075, "output": 0.3, "cached_input": 0.01875})
    assert price.input == Decimal(75)
    assert price.output == Decimal(300)
    assert price.cached_input == Decimal("18.75")


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"cached_input": "1", "max_output_tokens": 10},
        {"input": "1", "output": "1", "colour": "red"},
        {"per_image": {"1024x1024": "-0.04"}},
        {"per_image": "0.04"},
        {"input": "-1", "output": "1"},
        {"input": "1", "output": "1", "per_request": "-0.01"},
        {"input": "abc", "output": "1"},
        {"input": "1", "output": "1", "max_output_tokens": 0},
        {"input": "1", "output": "1", "max_output_tokens": True},
        {"input": "1", "output": "1", "max_output_tokens": "100"},
        {"input": "1", "output": "1", "max_output_tokens": 1.5},
    ],
)
def test_bad_price_specs(spec: dict[str, object]) -> None:
    with pytest.raises(MoneyError):
        price_from_spec(spec)


def test_price_overrides_and_patterns() -> None:
    table = build_price_table(
        {
            "gpt-4o": {"input": "5", "output": "15"},
            "gpt-4*": {"input": "1", "output": "1"},
            "gpt-4-gizmo-*": {"input": "2", "output": "2"},
            "my-model": {"input": "0.5", "output": "0.5", "max_output_tokens": 100},
        }
    )
    gpt4o = table.lookup("gpt-4o")
    assert gpt4o is not None and gpt4o.cost_nano(Usage(MILLION, MILLION)) == usd_to_nano("20")
    assert gpt4o.cached_input == gpt4o.input  # an override without cached_input bills cached as input
    gizmo = table.lookup("gpt-4-gizmo-abc")
    assert gizmo is not None and gizmo.cost_nano(Usage(MILLION, 0)) == usd_to_nano("2")
    other = table.lookup("gpt-4-something")
    assert other is not None and other.cost_nano(Usage(MILLION, 0)) == usd_to_nano("1")
    # An exact built-in name beats a pattern that also matches it.
    gpt4 = table.lookup("gpt-4")
    assert gpt4 is not None and gpt4.cost_nano(Usage(MILLION, 0)) == usd_to_nano("30")
    # Untouched built-ins keep their list price.
    mini = table.lookup("gpt-4o-mini")
    assert mini is not None and mini.cost_nano(Usage(MILLION, 0)) == usd_to_nano("0.15")
    mine = table.lookup("my-model")
    assert mine is not None and mine.max_output_tokens == 100
    assert table.lookup("claude-unknown") is None


@pytest.mark.parametrize("order", [("short", "long"), ("long", "short")])
def test_longest_pattern_wins_whatever_the_order(order: tuple[str, str]) -> None:
    specs = {"short": ("gpt-4*", "1"), "long": ("gpt-4-gizmo-*", "2")}
    prices = {specs[k][0]: price_from_spec({"input": specs[k][1], "output": "0"}) for k in order}
    table = PriceTable(prices)
    gizmo = table.lookup("gpt-4-gizmo-x")
    assert gizmo is not None and gizmo.input == Decimal(2000)
    plain = table.lookup("gpt-4-turbo-x")
    assert plain is not None and plain.input == Decimal(1000)
    assert table.lookup("gpt-3") is None


def test_single_char_and_class_patterns() -> None:
    table = build_price_table(
        {"llama-3-?b": {"input": "1", "output": "1"}, "mistral-[sm]*": {"input": "2", "output": "2"}}
    )
    assert table.lookup("llama-3-8b") == table.lookup("llama-3-7b") != table.lookup("mistral-small")
    assert table.lookup("llama-3-70b") is None
    assert table.lookup("mistral-small") is not None
    assert table.lookup("mistral-large") is None


def test_default_price_and_unknown_model() -> None:
    without = build_price_table()
    assert without.lookup("totally-unknown-model") is None
    with_default = build_price_table(default={"input": "1", "output": "3"})
    price = with_default.lookup("totally-unknown-model")
    assert price is not None and price.cost_nano(Usage(MILLION, MILLION)) == usd_to_nano("4")
    assert with_default.lookup("gpt-4o") is not price
    explicit = with_default.lookup("gpt-4o")
    assert explicit is not None and explicit.cost_nano(Usage(MILLION, 0)) == usd_to_nano("2.5")


def test_bad_override_names_the_model() -> None:
    with pytest.raises(MoneyError, match="my-model"):
        build_price_table({"my-model": {"input": "1", "colour": "red"}})


def test_openai_models_are_priced() -> None:
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4", "gpt-3.5-turbo", "o1-mini"} <= set(OPENAI_MODELS)
    assert not any(m.startswith(("claude", "gemini")) for m in OPENAI_MODELS)
    assert all(PRICES.lookup(m) is not None for m in OPENAI_MODELS)


def test_usage_total_tokens() -> None:
    assert Usage(10, 5, 3).total_tokens == 15


# --------------------------------------------------------------------------------------------------- quota


GPT_4O = PRICES.lookup("gpt-4o")
assert GPT_4O is not None
# gpt-4o: 2500 nano per input token, 10000 nano per output token, 16384 max output tokens.
IN_4O, OUT_4O, MAX_4O = 2500, 10_000, 16_384


@pytest.mark.parametrize("available", [None, 0, 1, 10**15])
@pytest.mark.parametrize(("prompt", "max_tokens", "n"), [(1000, 100, 1), (0, 1, 1), (1000, 100, 3), (5, 7, 2)])
def test_explicit_max_tokens_reserves_exactly_that(available: int | None, prompt: int, max_tokens: int, n: int) -> None:
    reserve, cap = plan_reservation(GPT_4O, prompt, max_tokens, n, available)
    assert reserve == prompt * IN_4O + max_tokens * n * OUT_4O
    assert cap is None  # the client's own max_tokens is never rewritten


def test_without_max_tokens_reserves_the_model_maximum() -> None:
    reserve, cap = plan_reservation(GPT_4O, 1000, None, 1, None)
    assert reserve == 1000 * IN_4O + MAX_4O * OUT_4O
    assert cap is None
    reserve2, cap2 = plan_reservation(GPT_4O, 1000, None, 2, None)
    assert reserve2 == 1000 * IN_4O + 2 * MAX_4O * OUT_4O
    assert cap2 is None
    # A key that can afford the full reply is not capped.
    exact_fit = 1000 * IN_4O + MAX_4O * OUT_4O
    assert plan_reservation(GPT_4O, 1000, None, 1, exact_fit) == (exact_fit, None)


def test_small_balance_gets_the_largest_affordable_cap() -> None:
    prompt = 1000
    available = prompt * IN_4O + 123 * OUT_4O + OUT_4O // 2  # 123.5 output tokens' worth
    reserve, cap = plan_reservation(GPT_4O, prompt, None, 1, available)
    assert cap == 123
    assert reserve == prompt * IN_4O + 123 * OUT_4O
    assert reserve <= available


FRACTIONAL = price_from_spec(
    {"input": "0.0375", "output": "0.1234567", "per_request": "0.000000333", "max_output_tokens": 5000}
)


@pytest.mark.parametrize(("price", "model_max"), [(GPT_4O, MAX_4O), (FRACTIONAL, 5000)])
@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("prompt", [0, 1, 777])
def test_cap_is_maximal_and_affordable_across_balances(price: Price, model_max: int, n: int, prompt: int) -> None:
    full = price.cost_nano(Usage(prompt, model_max * n))
    prompt_only = price.cost_exact(Usage(prompt, 0))
    balances = sorted({int(prompt_only) + d for d in (0, 1, 2, 17, 1000, 123_457)} | {full - 1, full // 2})
    ledger = QuotaLedger()
    for available in balances:
        if available >= full or available < 0:
            continue
        reserve, cap = plan_reservation(price, prompt, None, n, available)
        key = key_state(available)
        if cap is None:
            # Not even one token per choice is affordable: the reservation must be refused.
            assert price.cost_exact(Usage(prompt, n)) > available
            assert not asyncio.run(ledger.reserve(key, reserve))
            continue
        assert 1 <= cap < model_max
        assert reserve == price.cost_nano(Usage(prompt, cap * n))
        assert reserve <= available
        assert price.cost_exact(Usage(prompt, (cap + 1) * n)) > available
        assert asyncio.run(ledger.reserve(key, reserve))


def test_zero_balance_is_refused() -> None:
    ledger = QuotaLedger()
    key = key_state(5 * NANO, used_nano=5 * NANO)
    assert ledger.available_nano(key) == 0
    reserve, cap = plan_reservation(GPT_4O, 10, None, 1, ledger.available_nano(key))
    assert cap is None
    assert reserve > 0
    assert asyncio.run(ledger.reserve(key, reserve)) is False
    assert key.reserved_nano == 0


def test_balance_covering_only_the_prompt_is_refused() -> None:
    prompt = 1000
    available = prompt * IN_4O + OUT_4O - 1  # one nano short of a single output token
    reserve, cap = plan_reservation(GPT_4O, prompt, None, 1, available)
    assert cap is None
    assert reserve > available
    assert asyncio.run(QuotaLedger().reserve(key_state(available), reserve)) is False


def test_choices_multiply_the_capped_output() -> None:
    prompt = 10
    available = prompt * IN_4O + 3 * 40 * OUT_4O + 5  # 40 tokens for each of 3 choices
    reserve, cap = plan_reservation(GPT_4O, prompt, None, 3, available)
    assert cap == 40
    assert reserve == prompt * IN_4O + 120 * OUT_4O


def test_unlimited_key_is_never_capped() -> None:
    key = key_state(None)
    ledger = QuotaLedger()
    assert ledger.available_nano(key) is None
    reserve, cap = plan_reservation(GPT_4O, 100, None, 1, None)
    assert cap is None
    assert asyncio.run(ledger.reserve(key, reserve))
    assert asyncio.run(ledger.reserve(key, 10**18))


def test_free_model_with_zero_balance_is_allowed() -> None:
    free = price_from_spec({"input": "0", "output": "0"})
    reserve, cap = plan_reservation(free, 1000, None, 1, 0)
    assert (reserve, cap) == (0, None)
    assert asyncio.run(QuotaLedger().reserve(key_state(0), reserve))


# --------------------------------------------------------------------------------------------------- ledger


@pytest.mark.parametrize(("quota", "amount"), [(1000, 30), (1000, 1000), (999, 1000), (10**9, 7), (0, 1)])
def test_concurrent_reservations_never_exceed_quota(quota: int, amount: int) -> None:
    ledger = QuotaLedger()
    key = key_state(quota)

    async def one() -> bool:
        await asyncio.sleep(0)
        ok = await ledger.reserve(key, amount)
        assert key.reserved_nano + key.used_nano <= quota
        await asyncio.sleep(0)
        return ok

    async def main() -> list[bool]:
        return await asyncio.gather(*(one() for _ in range(50)))

    results = asyncio.run(main())
    expected = min(50, quota // amount)
    assert sum(results) == expected
    assert key.reserved_nano == expected * amount
    assert key.reserved_nano <= quota
    assert ledger.available_nano(key) == quota - expected * amount


def test_reserve_then_settle_concurrently_charges_exact_costs() -> None:
    ledger = QuotaLedger()
    quota = 10_000
    key = key_state(quota, used_nano=1000)

    async def request(i: int) -> int:
        reserve = 500
        if not await ledger.reserve(key, reserve):
            return 0
        await asyncio.sleep(0)
        assert key.used_nano + key.reserved_nano <= quota
        cost = i % 7 * 50  # what the upstream actually used: at most the reservation, sometimes 0
        await ledger.settle(key, reserve, cost)
        return cost

    async def main() -> list[int]:
        return await asyncio.gather(*(request(i) for i in range(50)))

    charged = asyncio.run(main())
    assert key.reserved_nano == 0
    assert key.used_nano == 1000 + sum(charged)
    assert key.used_nano <= quota
    # 18 reservations of 500 fit into the 9000 left; the rest were refused while they were held.
    assert key.request_count == 18


def test_settle_moves_reserved_to_used_exactly() -> None:
    ledger = QuotaLedger()
    key = key_state(NANO, used_nano=100)

    async def flow() -> None:
        assert await ledger.reserve(key, 700)
        assert await ledger.reserve(key, 300)
        assert key.reserved_nano == 1000
        await ledger.settle(key, 700, 123)
        assert (key.reserved_nano, key.used_nano, key.request_count) == (300, 223, 1)
        await ledger.settle(key, 300, 0)  # a failed request refunds its reservation
        assert (key.reserved_nano, key.used_nano, key.request_count) == (0, 223, 2)

    asyncio.run(flow())
    assert ledger.available_nano(key) == NANO - 223
    assert key.balance_nano == NANO - 223


# --------------------------------------------------------------------------------------------------- tokens

O200K = bpe_openai.get_encoding("o200k_base")
CL100K = bpe_openai.get_encoding("cl100k_base")
SAMPLE = "Привет, как дела? 你好世界 The quick brown fox — jumps over 13 lazy dogs. ¿Qué tal? こんにちは"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K),
        ("gpt-4o-mini", O200K),
        ("gpt-4o-2024-08-06", O200K),
        ("o1-mini", O200K),
        ("o3-mini", O200K),
        ("gpt-4.1", O200K),
        ("gpt-4", CL100K),
        ("gpt-4-turbo", CL100K),
        ("gpt-3.5-turbo", CL100K),
        ("claude-3-5-sonnet-latest", CL100K),
        ("llama-3-8b", CL100K),
    ],
)
def test_count_text_uses_the_models_encoding(model: str, encoding: bpe_openai.Encoding) -> None:
    assert count_text(SAMPLE, model) == len(encoding.encode(SAMPLE))
    assert encoding_name_for(model) == ("o200k_base" if encoding is O200K else "cl100k_base")


def test_the_two_encodings_really_differ_on_the_sample() -> None:
    # Otherwise the test above could not tell the encodings apart.
    assert len(O200K.encode(SAMPLE)) != len(CL100K.encode(SAMPLE))
    assert count_text(SAMPLE, "gpt-4o") != count_text(SAMPLE, "gpt-4")


def test_count_text_empty() -> None:
    assert count_text("", "gpt-4o") == 0


def cookbook_count(messages: list[dict[str, str]], encoding: bpe_openai.Encoding) -> int:
    """OpenAI's published framing: 3 tokens per message, 1 more per name, 3 to prime the reply."""
    total = 3
    for message in messages:
        total += 3
        for field, value in message.items():
            total += len(encoding.encode(value))
            if field == "name":
                total += 1
    return total


CONVERSATIONS = [
    [{"role": "user", "content": "Hello"}],
    [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is 2+2?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "name": "alice", "content": "Summarise the plot of Hamlet."},
        {"role": "assistant", "content": "A prince avenges his father."},
        {"role": "user", "content": "Thanks!"},
    ],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize(("model", "encoding"), [("gpt-4o", O200K), ("gpt-4", CL100K)])
def test_count_chat_prompt_frames_messages_like_openai(
    messages: list[dict[str, str]], model: str, encoding: bpe_openai.Encoding
) -> None:
    estimate = count_chat_prompt(messages, model)
    exact = cookbook_count(messages, encoding)
    pieces = sum(len(m) for m in messages)  # role, content (and name) of each message
    # Never under OpenAI's count (it sizes reservations); at most one separator token per piece over.
    assert exact <= estimate <= exact + pieces - 1


def test_each_message_adds_three_framing_tokens() -> None:
    empty = [{"role": "user", "content": ""}]
    assert count_chat_prompt([], "gpt-4o") == 3
    one = count_chat_prompt(empty, "gpt-4o")
    assert one >= 3 + 3 + len(O200K.encode("user"))
    # A name adds its tokens plus one.
    named = count_chat_prompt([{"role": "user", "content": "", "name": "bob"}], "gpt-4o")
    assert named >= one + 1 + len(O200K.encode("bob"))
    # Non-dict messages are ignored rather than crashing.
    assert count_chat_prompt(["junk", None, *empty], "gpt-4o") == one


def test_image_parts_add_the_high_detail_estimate() -> None:
    text_only = [{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"}]}]
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}}
    with_one = [{"role": "user", "content": [*text_only[0]["content"], image]}]
    with_two = [{"role": "user", "content": [*text_only[0]["content"], image, image]}]
    # 2048x768 at high detail: 85 base tokens + 170 per 512px tile, 8 tiles (4 x 2 after scaling).
    per_image = 85 + 170 * 8
    base = count_chat_prompt(text_only, "gpt-4o")
    assert count_chat_prompt(with_one, "gpt-4o") - base == per_image
    assert count_chat_prompt(with_two, "gpt-4o") - base == 2 * per_image
    # The image URL itself is not counted as text.
    assert base == count_chat_prompt([{"role": "user", "content": "What is in this picture?"}], "gpt-4o")


def test_tools_and_tool_calls_add_tokens() -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                    "required": ["location"],
                },
            },
        }
    ]
    without = count_chat_prompt(messages, "gpt-4o")
    with_tools = count_chat_prompt(messages, "gpt-4o", tools)
    tool_text_tokens = len(O200K.encode(orjson.dumps(tools).decode()))
    assert with_tools - without >= tool_text_tokens
    assert with_tools - without <= tool_text_tokens + 1
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc123",
                "type": "function",
                "function": {"name": "get_current_weather", "arguments": '{"location": "Paris, France"}'},
            }
        ],
    }
    base = count_chat_prompt([*messages, {"role": "assistant", "content": None}], "gpt-4o")
    assert count_chat_prompt([*messages, call], "gpt-4o") - base >= len(O200K.encode('{"location": "Paris, France"}'))


def test_count_completion_counts_joined_fragments() -> None:
    fragments = ["Hel", "lo", ", wor", "ld!"]
    assert count_completion(fragments, "gpt-4o") == len(O200K.encode("Hello, world!"))
    assert count_completion([], "gpt-4o") == 0


# ------------------------------------------------------------------------------------- settlement bounds


@pytest.mark.parametrize(
    "spec",
    [
        {"input": "1", "cached_input": "2", "output": "1"},  # cache reads dearer than input (an operator's price)
        {"input": "1", "cache_write": "1.25", "cached_input": "0.1", "output": "5"},  # Claude: writes dearer
        {"input": "0", "cached_input": "0.5", "output": "0"},
    ],
)
def test_the_reservation_covers_a_prompt_billed_at_its_dearest_rate(spec: dict[str, str]) -> None:
    price = price_from_spec(spec)
    reserve, _ = plan_reservation(price, 1000, 10, 1, None)
    for usage in (Usage(1000, 10), Usage(1000, 10, cached_tokens=1000), Usage(1000, 10, cache_write_tokens=1000)):
        assert price.cost_nano(usage) <= reserve


def test_settlement_charges_at_most_the_reservation_and_returns_the_overrun() -> None:
    ledger = QuotaLedger()
    key = key_state(20_000)

    async def flow() -> None:
        assert await ledger.reserve(key, 11_850)
        settlement = await ledger.settle(key, 11_850, 361_350)  # the upstream reported 30x the reservation
        assert (settlement.charged_nano, settlement.overrun_nano) == (11_850, 349_500)
        assert (key.used_nano, key.reserved_nano) == (11_850, 0)
        assert key.balance_nano == 20_000 - 11_850 >= 0
        assert await ledger.reserve(key, 8_150)
        within = await ledger.settle(key, 8_150, 8_000)
        assert (within.charged_nano, within.overrun_nano) == (8_000, 0)
        failed = await ledger.settle(key, 0, 0)
        assert (failed.charged_nano, failed.overrun_nano) == (0, 0)

    asyncio.run(flow())
    with pytest.raises(ValueError):
        asyncio.run(ledger.settle(key, 10, -1))
    with pytest.raises(ValueError):
        asyncio.run(ledger.reserve(key, -1))
