"""Channel states in the database: the gateway's snapshots of channel health, and the operator's commands.

A gateway writes a channel's row whenever what an operator would see of it changes (in the background,
never on a request's path). `llmrelay channels enable|disable` and the admin API write the operator's
command with a new `channels` revision; every gateway applies commands newer than the last it saw within
its poll interval. A command also sets the row's status at once, so a listing shows it before any gateway
has run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from llmrelay.relay.health import HealthView
from llmrelay.store.schema import channel_states, revisions

_SNAPSHOT_COLUMNS = (
    "status",
    "disabled_reason",
    "disabled_by",
    "cooling_until",
    "cooling_models",
    "in_flight",
    "last_error",
    "last_error_at",
    "latency_ms",
    "successes",
    "failures",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class Command:
    """An operator's enable or disable of a channel."""

    name: str
    status: str  # "enabled" or "disabled"
    reason: str | None
    revision: int


def _upsert(engine: Engine, table: object) -> object:
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def save_snapshots(engine: Engine, views: Iterable[HealthView]) -> None:
    """Write each channel's current health (insert or update), leaving the operator's command alone."""
    now = int(time.time())
    rows = [
        {
            "name": view.name,
            "status": "disabled" if view.state == "disabled" else "ok",
            "disabled_reason": view.disabled_reason,
            "disabled_by": view.disabled_by,
            "cooling_until": view.cooling_until,
            "cooling_models": ",".join(view.cooling_models) or None,
            "in_flight": view.in_flight,
            "last_error": view.last_error,
            "last_error_at": view.last_error_at,
            "latency_ms": view.latency_ms,
            "successes": view.successes,
            "failures": view.failures,
            "updated_at": now,
        }
        for view in views
    ]
    if not rows:
        return
    statement = _upsert(engine, channel_states)
    statement = statement.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=["name"], set_={column: getattr(statement.excluded, column) for column in _SNAPSHOT_COLUMNS}
    )
    with engine.begin() as conn:
        conn.execute(statement, rows)


def stored_states(engine: Engine) -> dict[str, HealthView]:
    """Each channel's row as operators see it: the last snapshot a gateway wrote, or the last command (a rest
    that has ended shows as "ok")."""
    columns = [channel_states.c.name, *(channel_states.c[column] for column in _SNAPSHOT_COLUMNS)]
    with engine.connect() as conn:
        rows = conn.execute(select(*columns)).all()
    now = int(time.time())
    views = {}
    for row in rows:
        cooling = row.cooling_until is not None and row.cooling_until > now
        views[row.name] = HealthView(
            name=row.name,
            state="disabled" if row.status == "disabled" else "cooling_down" if cooling else "ok",
            disabled_reason=row.disabled_reason,
            disabled_by=row.disabled_by,
            cooling_until=row.cooling_until if cooling else None,
            cooling_models=tuple(row.cooling_models.split(",")) if cooling and row.cooling_models else (),
            in_flight=row.in_flight,
            last_error=row.last_error,
            last_error_at=row.last_error_at,
            latency_ms=row.latency_ms,
            successes=row.successes,
            failures=row.failures,
        )
    return views


def command_revision(engine: Engine) -> int:
    """The revision of the newest operator command (a gateway starts applying commands after it)."""
    with engine.connect() as conn:
        return conn.execute(select(revisions.c.value).where(revisions.c.name == "channels")).scalar_one()


def commands_since(engine: Engine, revision: int) -> list[Command]:
    """Operator commands newer than `revision`, oldest first."""
    table = channel_states
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.name, table.c.operator_status, table.c.operator_reason, table.c.operator_revision)
            .where(table.c.operator_revision > revision)
            .order_by(table.c.operator_revision)
        ).all()
    return [Command(row[0], row[1], row[2], row[3]) for row in rows]


def record_command(engine: Engine, name: str, enabled: bool, reason: str | None = None) -> Command:
    """Store an operator's enable/disable of channel `name` under a new revision; the row's status follows
    at once (a gateway that applies the command writes its own snapshot after)."""
    status = "enabled" if enabled else "disabled"
    reason = None if enabled else (reason or "disabled by an operator")
    with engine.begin() as conn:
        conn.execute(update(revisions).where(revisions.c.name == "channels").values(value=revisions.c.value + 1))
        revision = conn.execute(select(revisions.c.value).where(revisions.c.name == "channels")).scalar_one()
        values = {
            "status": "ok" if enabled else "disabled",
            "disabled_reason": reason,
            "disabled_by": None if enabled else "operator",
            "cooling_until": None,
            "cooling_models": None,
            "updated_at": int(time.time()),
            "operator_status": status,
            "operator_reason": reason,
            "operator_revision": revision,
        }
        statement = _upsert(engine, channel_states).values(name=name, **values)
        conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_=values))  # type: ignore[attr-defined]
    return Command(name, status, reason, revision)
