"""Pure tests for operator input parsing (times, models, USD, periods), key views and exact JSON output."""

from __future__ import annotations

import calendar
import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from llmrelay.operations import (
    cents,
    create_key,
    day_start,
    key_view,
    parse_models,
    parse_period,
    parse_usd,
    parse_when,
)
from llmrelay.store.cache import KeyState
from llmrelay.store.keys import KeyOperationError, KeyRecord
from llmrelay.surfaces.http import dumps

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def utc(*fields: int) -> int:
    return calendar.timegm((*fields, *(0,) * (6 - len(fields))))


# ------------------------------------------------------------------------------------------------ parse_when


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("never", None),
        ("Never", None),
        ("none", None),
        ("30d", int(NOW) + 30 * 86400),
        ("30D", int(NOW) + 30 * 86400),
        ("12h", int(NOW) + 12 * 3600),
        ("90m", int(NOW) + 90 * 60),
        ("0d", int(NOW)),
        (" 1d ", int(NOW) + 86400),
        ("2026-12-31", utc(2026, 12, 31)),
        ("2026-12-31T18:00:00Z", utc(2026, 12, 31, 18)),
        ("2026-12-31T18:00:00", utc(2026, 12, 31, 18)),  # no zone means UTC
        ("2026-12-31T18:00:00+02:00", utc(2026, 12, 31, 16)),
        ("2026-12-31 18:30", utc(2026, 12, 31, 18, 30)),
        ("2024-02-29", utc(2024, 2, 29)),
        (1_900_000_000, 1_900_000_000),
        ("1900000000", 1_900_000_000),
    ],
)
def test_parse_when(text: str | int | None, expected: int | None) -> None:
    assert parse_when(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["tomorrow", "30x", "-5d", "1.5d", "31/12/2026", "2026-13-01", "2025-02-29", "d30"])
def test_parse_when_rejects_junk(text: str) -> None:
    with pytest.raises(KeyOperationError, match="2026-12-31"):
        parse_when(text, now=NOW)


def test_parse_when_relative_uses_the_current_time_by_default() -> None:
    before = time.time()
    value = parse_when("1h")
    after = time.time()
    assert value is not None
    assert int(before) + 3600 <= value <= int(after) + 3600


def test_past_dates_parse_but_a_key_cannot_expire_in_the_past() -> None:
    past = parse_when("2000-01-01", now=NOW)
    assert past == utc(2000, 1, 1)
    # create_key validates before it touches the database, so no engine is needed to see the refusal.
    for expires in ("2000-01-01", "2000-01-01T00:00:00Z", "0d", str(int(time.time()) - 10)):
        with pytest.raises(KeyOperationError, match="past"):
            create_key(None, "k", "5", expires=expires)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("quota", "unlimited", "fragment"),
    [(None, False, "quota"), ("5", True, "not both"), ("five", False, "quota"), ("", False, "quota")],
)
def test_create_key_input_errors(quota: str | None, unlimited: bool, fragment: str) -> None:
    with pytest.raises(KeyOperationError, match=fragment):
        create_key(None, "k", quota, unlimited=unlimited)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ parse_models


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (" , ,", None),
        ([], None),
        ("gpt-4o", ["gpt-4o"]),
        ("gpt-4o, gpt-4o-mini ,,claude-*", ["gpt-4o", "gpt-4o-mini", "claude-*"]),
        (["gpt-4o", " o1-* ", ""], ["gpt-4o", "o1-*"]),
    ],
)
def test_parse_models(value: str | list[str] | None, expected: list[str] | None) -> None:
    assert parse_models(value) == expected


@pytest.mark.parametrize("value", [[1], ["gpt-4o", None], [["nested"]]])
def test_parse_models_rejects_non_strings(value: list[object]) -> None:
    with pytest.raises(KeyOperationError):
        parse_models(value)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ parse_usd


@pytest.mark.parametrize(
    ("value", "nano"),
    [
        ("5", 5_000_000_000),
        ("$5", 5_000_000_000),
        (" $12.50 ", 12_500_000_000),
        ("$ 3", 3_000_000_000),
        ("0.000000001", 1),
        ("0.0000000005", 1),
        (0.1, 100_000_000),
        (7, 7_000_000_000),
        (Decimal("0.3"), 300_000_000),
        ("1e2", 100_000_000_000),
    ],
)
def test_parse_usd(value: object, nano: int) -> None:
    assert parse_usd(value, "quota") == nano


@pytest.mark.parametrize(
    "value", ["abc", "", "$", "5 USD", "1,000", "NaN", "inf", "-Infinity", "$$", "0x10", None, True, "5$"]
)
def test_parse_usd_rejects_junk(value: object) -> None:
    with pytest.raises(KeyOperationError, match="quota must be an amount in USD"):
        parse_usd(value, "quota")


@pytest.mark.parametrize("value", ["1e30", "100000000000000000000", "9" * 40, "10000000000", "9223372036.854775808"])
def test_parse_usd_rejects_absurd_amounts_cleanly(value: str) -> None:
    # Far beyond what a BIGINT of nano-dollars can hold ($9.2 billion): the operator must get the same clean
    # KeyOperationError as for any other unusable amount, not an internal arithmetic exception.
    with pytest.raises(KeyOperationError):
        parse_usd(value, "quota")


# ------------------------------------------------------------------------------------------------ parse_period


def month_start_ms() -> int:
    today = datetime.now(UTC).date()
    return utc(today.year, today.month, 1) * 1000


def test_parse_period_defaults_to_the_current_month() -> None:
    before = time.time()
    period = parse_period(None, None)
    after = time.time()
    assert period.since_ms == month_start_ms()
    assert int(before * 1000) <= period.until_ms <= int((after + 1) * 1000)
    assert period.until_ms >= int(before * 1000)  # the period includes now


def test_parse_period_days() -> None:
    before = time.time()
    period = parse_period(None, None, days=7)
    after = time.time()
    assert int((before - 7 * 86400) * 1000) - 1 <= period.since_ms <= int((after - 7 * 86400) * 1000)
    assert period.until_ms - period.since_ms >= 7 * 86400 * 1000


def test_parse_period_explicit_bounds() -> None:
    period = parse_period("2026-01-01", "2026-02-01")
    assert period.since_ms == utc(2026, 1, 1) * 1000
    assert period.until_ms == utc(2026, 2, 1) * 1000


@pytest.mark.parametrize(
    ("since", "until", "days"),
    [("2026-02-01", "2026-01-01", None), ("2026-01-01", "2026-01-01", None), (None, None, 0), (None, None, -3)],
)
def test_parse_period_rejects_empty_or_backwards_periods(
    since: str | None, until: str | None, days: int | None
) -> None:
    with pytest.raises(KeyOperationError):
        parse_period(since, until, days)


def test_day_start_and_cents() -> None:
    assert day_start("2026-03-04", "start_date") == utc(2026, 3, 4)
    with pytest.raises(KeyOperationError, match="start_date"):
        day_start("03/04/2026", "start_date")
    assert cents(1) == Decimal("0.0000001")
    assert cents(12_345_678_901) == Decimal("1234.5678901")


# ------------------------------------------------------------------------------------------------ key_view


def record(quota_nano: int | None, used_nano: int, **overrides: object) -> KeyRecord:
    fields: dict[str, object] = {
        "id": 42,
        "name": "team-a",
        "key_hash": "0" * 64,
        "key_prefix": "sk-AbCd...wxyz",
        "status": "active",
        "quota_nano": quota_nano,
        "used_nano": used_nano,
        "request_count": 3,
        "allowed_models": ("gpt-4o", "gpt-4o-mini"),
        "expires_at": utc(2026, 12, 31, 18),
        "created_at": utc(2026, 1, 2, 3, 4, 5),
        "updated_at": utc(2026, 1, 2, 3, 4, 5),
        "last_used_at": None,
        "revision": 9,
    }
    fields.update(overrides)
    return KeyRecord(**fields)  # type: ignore[arg-type]


def test_key_view_amounts_are_exact() -> None:
    view = key_view(record(5_000_000_000, 1_234_567_891))
    assert view["quota_usd"] == Decimal("5")
    assert view["used_usd"] == Decimal("1.234567891")
    assert view["balance_usd"] == Decimal("3.765432109")
    assert view["unlimited"] is False
    assert view["allowed_models"] == ["gpt-4o", "gpt-4o-mini"]
    assert view["expires_at"] == "2026-12-31T18:00:00Z"
    assert view["created_at"] == "2026-01-02T03:04:05Z"
    assert view["last_used_at"] is None
    assert view["request_count"] == 3
    assert "key_hash" not in view
    text = dumps(view)
    assert b'"balance_usd":3.765432109' in text
    assert b'"used_usd":1.234567891' in text
    parsed = json.loads(text, parse_float=Decimal)
    assert parsed["balance_usd"] == Decimal("3.765432109")


def test_key_view_uses_live_spend() -> None:
    stored = record(5_000_000_000, 1_000_000_000)
    live = KeyState(stored, unflushed_nano=250_000_001, unflushed_requests=2)
    view = key_view(stored, live)
    assert view["used_usd"] == Decimal("1.250000001")
    assert view["balance_usd"] == Decimal("3.749999999")
    assert view["request_count"] == 5


def test_key_view_unlimited() -> None:
    view = key_view(record(None, 77, allowed_models=None, expires_at=None))
    assert view["unlimited"] is True
    assert view["quota_usd"] is None
    assert view["balance_usd"] is None
    assert view["used_usd"] == Decimal("0.000000077")
    assert view["allowed_models"] is None
    assert view["expires_at"] is None


# ------------------------------------------------------------------------------------------------ dumps


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.000012345"), b"0.000012345"),
        (Decimal("0.000000001"), b"0.000000001"),
        (Decimal("1E-9"), b"0.000000001"),
        (Decimal("1E+3"), b"1000"),
        (Decimal("12.50"), b"12.50"),
        (Decimal("-3.765432109"), b"-3.765432109"),
        (Decimal("123456789012.123456789"), b"123456789012.123456789"),
        (Decimal(0), b"0"),
    ],
)
def test_dumps_writes_decimals_as_exact_json_numbers(value: Decimal, text: bytes) -> None:
    assert dumps(value) == text
    assert dumps({"a": [value]}) == b'{"a":[' + text + b"]}"
    assert json.loads(dumps(value), parse_float=Decimal) == value


def test_dumps_does_not_go_through_floats() -> None:
    amount = Decimal("0.1") + Decimal("0.2")
    assert dumps({"usd": amount}) == b'{"usd":0.3}'
    assert dumps({"usd": 0.1 + 0.2}) != b'{"usd":0.3}'  # what a float would have produced


def test_dumps_rejects_unknown_types() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})
