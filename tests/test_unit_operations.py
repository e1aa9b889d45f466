"""Pure tests for operator input parsing (times, models, USD, periods), key views and exact JSON output."""

from __future__ import annotations

import calendar
import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from llmrelay.operations import (
    MAX_DAYS,
    cents,
    create_key,
    day_start,
    key_view,
    parse_days,
    parse_limit,
    parse_models,
    parse_period,
    parse_usd,
    parse_when,
)
from llmrelay.store import keys as key_store
from llmrelay.store.cache import KeyState
from llmrelay.store.keys import LATEST_TIME, KeyOperationError, KeyRecord
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
    assert (view["rpm"], view["tpm"], view["max_parallel"]) == (None, None, None)
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


# ------------------------------------------------------------------------------- issue 9: values that gave 500


@pytest.mark.parametrize(
    "text", ["9999999999999999d", 999_999_999_999, "9999999999999", "99999999999999999", -(10**15), "9999-06-01"]
)
def test_parse_when_refuses_times_no_date_can_show(text: object) -> None:
    with pytest.raises(KeyOperationError, match="1900 and 9999") as raised:
        parse_when(text, now=NOW, param="expires_at")
    assert raised.value.param == "expires_at"


@pytest.mark.parametrize("text", ["9" * 5000, "9" * 5000 + "d", "²", "1²d", "x" * 10_000, [1], {"a": 1}, 1.5, True])
def test_parse_when_refuses_unreadable_values_cleanly(text: object) -> None:
    with pytest.raises(KeyOperationError, match="cannot read") as raised:
        parse_when(text, now=NOW, param="since")
    assert raised.value.param == "since" and len(str(raised.value)) < 300


def test_parse_when_range_edges() -> None:
    assert parse_when("9998-12-31T23:59:59Z") == LATEST_TIME - 1
    assert parse_when("1900-01-01") == utc(1900, 1, 1)
    with pytest.raises(KeyOperationError):
        parse_when("1899-12-31")


@pytest.mark.parametrize("value", [5, 1.5, True, {"gpt-4o": True}, [5]])
def test_parse_models_refuses_what_is_not_a_list_of_names(value: object) -> None:
    with pytest.raises(KeyOperationError, match="models") as raised:
        parse_models(value)
    assert raised.value.param == "models"


@pytest.mark.parametrize(
    ("value", "days"), [(None, None), ("", None), ("7", 7), (" 7 ", 7), (7, 7), (MAX_DAYS, MAX_DAYS)]
)
def test_parse_days(value: object, days: int | None) -> None:
    assert parse_days(value) == days


@pytest.mark.parametrize("value", ["0", "-3", "abc", "²", "7.5", "9" * 5000, 0, MAX_DAYS + 1, 999_999_999, True])
def test_parse_days_refuses(value: object) -> None:
    with pytest.raises(KeyOperationError, match="days") as raised:
        parse_days(value)
    assert raised.value.param == "days"


@pytest.mark.parametrize(
    ("since", "until", "param"), [(None, "9999999999999", "until"), ("9999999999999", None, "since")]
)
def test_parse_period_refuses_times_out_of_range(since: str | None, until: str | None, param: str) -> None:
    with pytest.raises(KeyOperationError) as raised:
        parse_period(since, until)
    assert raised.value.param == param


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"name": 5}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "  "}, "name"),
        ({"unlimited": "false", "quota_usd": None}, "unlimited"),
        ({"expires": 999_999_999_999}, "expires_at"),
        ({"models": 5}, "models"),
        ({"quota_usd": [5]}, "quota_usd"),
        ({"rpm": 0}, "rpm"),
        ({"tpm": "100"}, "tpm"),
        ({"max_parallel": 10**9 + 1}, "max_parallel"),
    ],
)
def test_create_key_checks_every_field_before_writing(kwargs: dict, param: str) -> None:
    arguments: dict = {"name": "k", "quota_usd": "5", **kwargs}
    with pytest.raises(KeyOperationError) as raised:
        create_key(None, **arguments)  # type: ignore[arg-type]  # no engine: nothing may be written
    assert raised.value.param == param


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"expires_at": 999_999_999_999}, "expires_at"),
        ({"expires_at": "2027-01-01"}, "expires_at"),
        ({"allowed_models": "gpt-4o"}, "models"),
        ({"allowed_models": [""]}, "models"),
        ({"quota_nano": 2**63}, "quota_usd"),
        ({"quota_nano": -1}, "quota_usd"),
        ({"name": "x" * 201}, "name"),
        ({"rpm": 0}, "rpm"),
        ({"tpm": 2.0}, "tpm"),
        ({"max_parallel": -1}, "max_parallel"),
    ],
)
def test_the_store_checks_fields_again(kwargs: dict, param: str) -> None:
    arguments: dict = {"name": "k", "quota_nano": 10**9, **kwargs}
    with pytest.raises(KeyOperationError) as raised:
        key_store.create_key(None, **arguments)  # type: ignore[arg-type]
    assert raised.value.param == param


def test_key_view_shows_what_it_can_of_an_unrenderable_row() -> None:
    view = key_view(record(5_000_000_000, 0, expires_at=999_999_999_999, last_used_at=-(10**15)))
    assert view["expires_at"] == 999_999_999_999 and view["last_used_at"] == -(10**15)
    assert view["unrenderable"] == ["expires_at", "last_used_at"]
    assert view["created_at"] == "2026-01-02T03:04:05Z" and view["quota_usd"] == Decimal("5")
    assert b'"expires_at":999999999999' in dumps(view)
    assert "unrenderable" not in key_view(record(5_000_000_000, 0))


def test_key_view_marks_an_unreadable_allow_list() -> None:
    view = key_view(record(None, 0, allowed_models=None, unreadable=("allowed_models",)))
    assert view["allowed_models"] is None and view["unrenderable"] == ["allowed_models"]


# ------------------------------------------------------------------------------------------------ rate limits


@pytest.mark.parametrize(("value", "limit"), [(None, None), (1, 1), (60, 60), (60.0, 60), (10**9, 10**9)])
def test_parse_limit(value: object, limit: int | None) -> None:
    parsed = parse_limit(value, "rpm")
    assert parsed == limit and (parsed is None or type(parsed) is int)


@pytest.mark.parametrize("value", [0, -5, 10**9 + 1, 1.5, True, False, "60", [60], {"rpm": 60}, float("nan"), 2**63])
def test_parse_limit_refuses_what_is_not_a_limit(value: object) -> None:
    with pytest.raises(KeyOperationError) as raised:
        parse_limit(value, "tpm")
    assert raised.value.param == "tpm" and "null for no limit" in str(raised.value)


def test_key_view_shows_the_limits() -> None:
    view = key_view(record(None, 0, rpm=60, tpm=100_000, max_parallel=None))
    assert (view["rpm"], view["tpm"], view["max_parallel"]) == (60, 100_000, None)
    assert b'"rpm":60,"tpm":100000,"max_parallel":null' in dumps(view)
