"""Operator actions shared by the CLI and the admin API: reading their inputs and shaping their output.

Both front ends accept the same words (a key by name or id, "$5" as "5", dates as 2026-12-31 or "30d")
and show the same fields, because both call these functions.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from llmrelay.metering.money import MoneyError, nano_to_usd, usd_to_nano
from llmrelay.store import keys as key_store
from llmrelay.store.cache import KeyState
from llmrelay.store.keys import KeyOperationError, KeyRecord
from llmrelay.store.usage import SUMMED_FIELDS, UsageRecord, UsageSummaryRow, summarize

_RELATIVE = re.compile(r"^(\d+)([dhms])$")


def parse_when(text: str | int | None, *, now: float | None = None) -> int | None:
    """A point in time as Unix seconds: `2026-12-31`, an ISO timestamp, `30d`/`12h`/`90m`/`45s` from now,
    a Unix timestamp, or empty/`never` for none."""
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("", "never", "none"):
        return None
    now = time.time() if now is None else now
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return int(now + amount * {"d": 86400, "h": 3600, "m": 60, "s": 1}[unit])
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise KeyOperationError(
            f"cannot read {text!r} as a time: use 2026-12-31, 2026-12-31T18:00:00Z, 30d, 12h or never"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def parse_models(value: str | list[str] | None) -> list[str] | None:
    """A model allow-list from `gpt-4o,gpt-4o-mini` or a JSON list; empty means every model."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not all(isinstance(item, str) for item in items):
        raise KeyOperationError("models must be a list of model names or glob patterns")
    models = [item.strip() for item in items if item.strip()]
    return models or None


def parse_usd(value: object, what: str, allow_negative: bool = False) -> int:
    try:
        nano = usd_to_nano(str(value).strip().lstrip("$"))
    except MoneyError:
        raise KeyOperationError(f"{what} must be an amount in USD, such as 5 or 12.50") from None
    if nano < 0 and not allow_negative:
        raise KeyOperationError(f"{what} cannot be negative")
    return nano


def create_key(
    engine: Engine,
    name: str,
    quota_usd: object | None,
    unlimited: bool = False,
    expires: str | int | None = None,
    models: str | list[str] | None = None,
) -> tuple[KeyRecord, str]:
    if unlimited and quota_usd is not None:
        raise KeyOperationError("give a quota or unlimited, not both")
    if not unlimited and quota_usd is None:
        raise KeyOperationError("give the key a quota in USD (e.g. 5), or make it unlimited")
    quota_nano = None if unlimited else parse_usd(quota_usd, "quota")
    expires_at = parse_when(expires)
    if expires_at is not None and expires_at <= time.time():
        raise KeyOperationError("the expiry is in the past")
    return key_store.create_key(engine, name, quota_nano, expires_at, parse_models(models))


def _iso(ts: int | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts is not None else None


def key_view(record: KeyRecord, live: KeyState | None = None) -> dict[str, Any]:
    """A key as the operator sees it; `live` (this node's cache) has spend not yet written to the DB."""
    used = live.used_nano if live is not None else record.used_nano
    requests = live.request_count if live is not None else record.request_count
    quota = record.quota_nano
    return {
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
        "expires_at": _iso(record.expires_at),
        "created_at": _iso(record.created_at),
        "last_used_at": _iso(record.last_used_at),
    }


@dataclass(frozen=True, slots=True)
class Period:
    since_ms: int
    until_ms: int


def parse_period(since: str | None, until: str | None, days: int | None = None) -> Period:
    """A half-open UTC period. Default: the current calendar month up to now."""
    now = time.time()
    if days is not None:
        if days <= 0:
            raise KeyOperationError("days must be positive")
        since_s = now - days * 86400
    elif since:
        since_s = parse_when(since) or 0
    else:
        today = datetime.now(UTC).date()
        since_s = datetime(today.year, today.month, 1, tzinfo=UTC).timestamp()
    until_s = parse_when(until) if until else now + 1
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
