"""Usage records in the database: batched writes from the gateway and the reports read from them."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter

from sqlalchemy import Engine, func, select, update

from llmrelay.store.keys import next_revision
from llmrelay.store.schema import api_keys, usage_records


@dataclass(slots=True)
class UsageRecord:
    """One relayed request, as written to `usage_records`."""

    request_id: str
    created_ms: int
    key_id: int
    endpoint: str
    model: str
    upstream_model: str
    channel: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_nano: int
    status: str
    http_status: int
    latency_ms: int
    stream: bool
    usage_source: str
    images: int = 0
    characters: int = 0
    audio_seconds: int = 0
    cache_write_tokens: int = 0
    # The upstream's reported cost beyond the reservation, which is not charged (cost_nano is at most what
    # the request reserved); 0 when the reservation covered the request.
    overrun_nano: int = 0


USAGE_FIELDS = tuple(f.name for f in fields(UsageRecord))
_row = attrgetter(*USAGE_FIELDS)


@functools.cache
def _insert_sql(engine: Engine) -> str:
    placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {usage_records.name} ({', '.join(USAGE_FIELDS)}) "
        f"VALUES ({', '.join([placeholder] * len(USAGE_FIELDS))})"
    )


def write_batch(engine: Engine, records: Sequence[UsageRecord]) -> None:
    """Insert the records and charge each key's used amount and request count, in one transaction.

    The key's counters move in the same transaction as its records, so the sum of a key's records always
    equals its `used_nano` in the database. The keys also get a new revision, so that every other gateway
    process (another worker or node) picks up their spend at its next poll.
    """
    if not records:
        return
    spend: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for record in records:
        totals = spend[record.key_id]
        totals[0] += record.cost_nano
        totals[1] += 1
        totals[2] = max(totals[2], record.created_ms // 1000)
    with engine.begin() as conn:
        # Straight to the driver's executemany with tuples: building a dict per row through SQLAlchemy's
        # compiler costs the gateway's event loop GIL time at thousands of records per second.
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(_insert_sql(engine), [_row(record) for record in records])
        finally:
            cursor.close()
        revision = next_revision(conn)
        for key_id, (cost, count, last_used) in spend.items():
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(
                    used_nano=api_keys.c.used_nano + cost,
                    request_count=api_keys.c.request_count + count,
                    last_used_at=last_used,  # batches are written in time order
                    revision=revision,
                )
            )


SUMMED_FIELDS = (
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "images",
    "characters",
    "audio_seconds",
    "cost_nano",
    "overrun_nano",
)


@dataclass(slots=True)
class UsageSummaryRow:
    """Totals of one key and model; `sums` follows SUMMED_FIELDS."""

    key_id: int
    key_name: str
    model: str
    requests: int
    sums: list[int]

    def add(self, record: UsageRecord) -> None:
        self.requests += 1
        for index, name in enumerate(SUMMED_FIELDS):
            self.sums[index] += getattr(record, name)


def summarize(engine: Engine, since_ms: int, until_ms: int, key_id: int | None = None) -> list[UsageSummaryRow]:
    """Per key and model totals for records with since_ms <= created_ms < until_ms."""
    r = usage_records
    query = (
        select(
            r.c.key_id,
            func.coalesce(api_keys.c.name, "?"),
            r.c.model,
            func.count(),
            *(func.sum(r.c[name]) for name in SUMMED_FIELDS),
        )
        .select_from(r.outerjoin(api_keys, api_keys.c.id == r.c.key_id))
        .where(r.c.created_ms >= since_ms, r.c.created_ms < until_ms)
        .group_by(r.c.key_id, api_keys.c.name, r.c.model)
        .order_by(r.c.key_id, r.c.model)
    )
    if key_id is not None:
        query = query.where(r.c.key_id == key_id)
    with engine.connect() as conn:
        return [
            UsageSummaryRow(key_id, name, model, int(requests), [int(v or 0) for v in sums])
            for key_id, name, model, requests, *sums in conn.execute(query)
        ]


def daily_costs(engine: Engine, key_id: int, since_ms: int, until_ms: int) -> list[tuple[int, str, int]]:
    """(UTC day start in Unix seconds, model, cost in nano) for one key, ordered by day and model."""
    r = usage_records
    day = r.c.created_ms // 86_400_000
    query = (
        select(day, r.c.model, func.sum(r.c.cost_nano))
        .where(r.c.key_id == key_id, r.c.created_ms >= since_ms, r.c.created_ms < until_ms)
        .group_by(day, r.c.model)
        .order_by(day, r.c.model)
    )
    with engine.connect() as conn:
        return [(int(d) * 86_400, model, int(cost)) for d, model, cost in conn.execute(query)]
