"""Operator actions shared by the CLI and the admin API: reading their inputs and shaping their output.

Both front ends accept the same words (a key by name or id, "$5" as "5", dates as 2026-12-31 or "30d")
and show the same fields, because both call these functions.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from llmrelay.config import ChannelConfig
from llmrelay.formats.checks import int_value
from llmrelay.metering.money import MoneyError, nano_to_usd, usd_to_nano
from llmrelay.relay.health import HealthView
from llmrelay.store import keys as key_store
from llmrelay.store.cache import KeyState
from llmrelay.store.keys import (
    EARLIEST_TIME,
    LATEST_TIME,
    MAX_LIMIT,
    KeyOperationError,
    KeyRecord,
    check_name,
)
from llmrelay.store.usage import SUMMED_FIELDS, UsageRecord, UsageSummaryRow, summarize

log = logging.getLogger("llmrelay.operations")

# Digits are ASCII and bounded: str.isdigit() also accepts "²", which int() refuses, and int() refuses more
# than 4300 digits. Up to 18 are read, so that a number out of range is reported as such.
_RELATIVE = re.compile(r"^([0-9]{1,18})([dhms])$")
_SECONDS = re.compile(r"^[0-9]{1,18}$")
MAX_DAYS = 36_500  # a usage period of at most 100 years


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_when(text: object, *, now: float | None = None, param: str | None = None) -> int | None:
    """A point in time as Unix seconds: `2026-12-31`, an ISO timestamp, `30d`/`12h`/`90m`/`45s` from now,
    a Unix timestamp, or empty/`never` for none. Times outside 1900 to 9999 (which no date can show) are
    refused; `param` names the field in the error."""
    where = f"{param}: " if param else ""
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        return _bounded(text, text, where, param)
    if not isinstance(text, str):
        raise KeyOperationError(
            f"{where}cannot read {_short(text)} as a time: use 2026-12-31, 2026-12-31T18:00:00Z, 30d, 12h or never",
            param,
        )
    value = text.strip().lower()
    if value in ("", "never", "none"):
        return None
    now = time.time() if now is None else now
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return _bounded(int(now + amount * {"d": 86400, "h": 3600, "m": 60, "s": 1}[unit]), text, where, param)
    if _SECONDS.match(value):
        return _bounded(int(value), text, where, param)
    try:
        parsed = datetime.fromisoformat(text.strip()) if len(value) <= 64 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise KeyOperationError(
            f"{where}cannot read {_short(text)} as a time: use 2026-12-31, 2026-12-31T18:00:00Z, 30d, 12h or never",
            param,
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        seconds = int(parsed.timestamp())
    except (OverflowError, ValueError, OSError):  # a date at the very edge of datetime's range, with its zone
        seconds = LATEST_TIME
    return _bounded(seconds, text, where, param)


def _bounded(seconds: int, text: object, where: str, param: str | None) -> int:
    if not EARLIEST_TIME <= seconds < LATEST_TIME:
        raise KeyOperationError(f"{where}{_short(text)} is out of range: a time must fall between 1900 and 9999", param)
    return seconds


def parse_models(value: object) -> list[str] | None:
    """A model allow-list from `gpt-4o,gpt-4o-mini` or a JSON list; empty means every model."""
    if value is None:
        return None
    if not isinstance(value, str | list) or not all(isinstance(item, str) for item in value):
        raise KeyOperationError("models must be a list of model names or glob patterns", "models")
    items = value.split(",") if isinstance(value, str) else value
    models = [item.strip() for item in items if item.strip()]
    return models or None


def parse_usd(value: object, what: str, allow_negative: bool = False, *, param: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise KeyOperationError(f"{what} must be an amount in USD, such as 5 or 12.50", param)
    try:
        nano = usd_to_nano(str(value).strip().lstrip("$"))
    except MoneyError:
        raise KeyOperationError(f"{what} must be an amount in USD, such as 5 or 12.50", param) from None
    if nano < 0 and not allow_negative:
        raise KeyOperationError(f"{what} cannot be negative", param)
    return nano


def parse_limit(value: object, param: str) -> int | None:
    """A rate limit as JSON sends it: a whole number from 1 to MAX_LIMIT (10.0 counts, as JSON Schema counts
    it), or null for no limit. The CLI reads its own text (0 or `none` for no limit) into these."""
    if value is None:
        return None
    number = int_value(value)
    if number is None or not 1 <= number <= MAX_LIMIT:
        raise KeyOperationError(f"{param} must be a whole number from 1 to {MAX_LIMIT:,}, or null for no limit", param)
    return number


def parse_days(value: object) -> int | None:
    """A count of days for a usage period (query text, or an int from the CLI): 1 to MAX_DAYS."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = int(value) if re.fullmatch(r"[0-9]{1,9}", value.strip()) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DAYS:
        raise KeyOperationError(f"days must be a whole number from 1 to {MAX_DAYS}", "days")
    return value


def create_key(
    engine: Engine,
    name: object,
    quota_usd: object | None,
    unlimited: object = False,
    expires: object = None,
    models: object = None,
    *,
    rpm: object = None,
    tpm: object = None,
    max_parallel: object = None,
) -> tuple[KeyRecord, str]:
    """Every field is read and checked before the key is written (the store checks them again)."""
    name = check_name(name)
    if not isinstance(unlimited, bool):
        raise KeyOperationError("unlimited must be true or false", "unlimited")
    if unlimited and quota_usd is not None:
        raise KeyOperationError("give a quota or unlimited, not both", "quota_usd")
    if not unlimited and quota_usd is None:
        raise KeyOperationError("give the key a quota in USD (e.g. 5), or make it unlimited", "quota_usd")
    quota_nano = None if unlimited else parse_usd(quota_usd, "quota", param="quota_usd")
    expires_at = parse_when(expires, param="expires_at")
    if expires_at is not None and expires_at <= time.time():
        raise KeyOperationError("the expiry is in the past", "expires_at")
    return key_store.create_key(
        engine,
        name,
        quota_nano,
        expires_at,
        parse_models(models),
        rpm=parse_limit(rpm, "rpm"),
        tpm=parse_limit(tpm, "tpm"),
        max_parallel=parse_limit(max_parallel, "max_parallel"),
    )


def _iso(ts: int | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts is not None else None


def _shown_time(ts: int | None, field: str, unrenderable: list[str]) -> str | int | None:
    """A stored time as ISO text; one no date can show (a row written before times were bounded, or edited
    by hand) is shown as the stored number and listed in `unrenderable`, so the rest of the view stands."""
    try:
        return _iso(ts)
    except (OverflowError, ValueError, OSError, TypeError):
        unrenderable.append(field)
        return ts if isinstance(ts, int) else None


def key_view(record: KeyRecord, live: KeyState | None = None) -> dict[str, Any]:
    """A key as the operator sees it; `live` (this node's cache) has spend not yet written to the DB.

    It never fails on what a row holds: a field that cannot be shown is shown as stored, named in
    `unrenderable`, and logged with the row's id."""
    used = live.used_nano if live is not None else record.used_nano
    requests = live.request_count if live is not None else record.request_count
    quota = record.quota_nano
    unrenderable = list(record.unreadable)
    view = {
        "id": record.id,
        "name": record.name,
        "key_prefix": record.key_prefix,
        "status": record.status,
        "unlimited": quota is None,
        "quota_usd": nano_to_usd(quota) if quota is not None else None,
        "used_usd": nano_to_usd(used),
        "balance_usd": nano_to_usd(quota - used) if quota is not None else None,
        "request_count": requests,
        "allowed_models": list(record.allowed_models) if record.allowed_models else None,
        "rpm": record.rpm,
        "tpm": record.tpm,
        "max_parallel": record.max_parallel,
        "expires_at": _shown_time(record.expires_at, "expires_at", unrenderable),
        "created_at": _shown_time(record.created_at, "created_at", unrenderable),
        "last_used_at": _shown_time(record.last_used_at, "last_used_at", unrenderable),
    }
    if unrenderable:
        view["unrenderable"] = unrenderable
        log.warning("key %s: stored %s cannot be shown as read", record.id, ", ".join(unrenderable))
    return view


@dataclass(frozen=True, slots=True)
class Period:
    since_ms: int
    until_ms: int


def parse_period(since: str | None, until: str | None, days: int | str | None = None) -> Period:
    """A half-open UTC period. Default: the current calendar month up to now."""
    now = time.time()
    days = parse_days(days)
    if days is not None:
        since_s = now - days * 86400
    elif since:
        since_s = parse_when(since, param="since") or 0
    else:
        today = datetime.now(UTC).date()
        since_s = datetime(today.year, today.month, 1, tzinfo=UTC).timestamp()
    until_s = parse_when(until, param="until") if until else now + 1
    if until_s is None or until_s <= since_s:
        raise KeyOperationError("the end of the period must be after its start")
    return Period(int(since_s * 1000), int(until_s * 1000))


def usage_report(
    engine: Engine,
    period: Period,
    key_id: int | None = None,
    pending: list[UsageRecord] | None = None,
) -> dict[str, Any]:
    """Per-key and per-model requests, tokens and cost in a period (plus not-yet-written records)."""
    merged = {(row.key_id, row.model): row for row in summarize(engine, period.since_ms, period.until_ms, key_id)}
    for record in pending or ():
        if not (period.since_ms <= record.created_ms < period.until_ms):
            continue
        if key_id is not None and record.key_id != key_id:
            continue
        row = merged.get((record.key_id, record.model))
        if row is None:
            name = next((r.key_name for r in merged.values() if r.key_id == record.key_id), str(record.key_id))
            row = merged[(record.key_id, record.model)] = UsageSummaryRow(
                record.key_id, name, record.model, 0, [0] * len(SUMMED_FIELDS)
            )
        row.add(record)
    items = [merged[slot] for slot in sorted(merged)]

    def totals(group: list[UsageSummaryRow]) -> dict[str, Any]:
        sums = {name: sum(r.sums[i] for r in group) for i, name in enumerate(SUMMED_FIELDS)}
        cost = sums.pop("cost_nano")
        return {"requests": sum(r.requests for r in group), **sums, "cost_usd": nano_to_usd(cost)}

    by_key: dict[int, list[UsageSummaryRow]] = {}
    by_model: dict[str, list[UsageSummaryRow]] = {}
    for item in items:
        by_key.setdefault(item.key_id, []).append(item)
        by_model.setdefault(item.model, []).append(item)
    return {
        "since": _iso(period.since_ms // 1000),
        "until": _iso(period.until_ms // 1000),
        "keys": [{"key_id": k, "name": g[0].key_name, **totals(g)} for k, g in by_key.items()],
        "models": [{"model": m, **totals(g)} for m, g in sorted(by_model.items())],
        "total": totals(items),
    }


def day_start(text: str, field: str) -> int:
    """Unix seconds of a YYYY-MM-DD date's UTC midnight (as OpenAI's billing endpoints take them)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise KeyOperationError(f"{field} must be a date as YYYY-MM-DD") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def cents(nano: int) -> Decimal:
    return Decimal(nano) / 10_000_000


class ChannelError(LookupError):
    """A channel operation that cannot be done (no such channel); the message says why."""


def known_channel(channels: Sequence[ChannelConfig], name: str) -> ChannelConfig:
    for channel in channels:
        if channel.name == name:
            return channel
    raise ChannelError(f"no channel named {name!r} (configured: {', '.join(c.name for c in channels) or 'none'})")


def channel_views(channels: Sequence[ChannelConfig], health: Mapping[str, HealthView]) -> list[dict[str, Any]]:
    """Each configured channel as operators see it: its routing settings and its health, from a gateway's
    memory or the database (a channel never seen yet is "ok")."""
    views = []
    for config in channels:
        view = health.get(config.name) or HealthView.unseen(config.name)
        views.append(
            {
                "name": config.name,
                "type": config.type,
                "base_url": config.base_url,
                "models": list(config.models),
                "priority": config.priority,
                "weight": config.weight,
                "max_parallel": config.max_parallel,
                **{field: getattr(view, field) for field in HealthView.__slots__ if field != "name"},
                "cooling_models": list(view.cooling_models),
            }
        )
    return views
