"""Stored responses in the database: written in the background, read only for `previous_response_id`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select

from llmrelay.store.schema import stored_responses


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    key_id: int
    model: str
    created_at: int
    expires_at: int
    conversation: list[dict[str, Any]]  # Responses input items: every turn so far, this response's output last


def save_responses(engine: Engine, responses: Sequence[StoredResponse]) -> None:
    if not responses:
        return
    rows = [
        {
            "id": r.id,
            "key_id": r.key_id,
            "model": r.model,
            "created_at": r.created_at,
            "expires_at": r.expires_at,
            "conversation": orjson.dumps(r.conversation).decode(),
        }
        for r in responses
    ]
    with engine.begin() as conn:
        conn.execute(insert(stored_responses), rows)


def load_response(engine: Engine, response_id: str, key_id: int, now: int) -> StoredResponse | None:
    """The response `response_id` if this key made it and it has not expired; None otherwise (a key cannot
    tell another key's response from one that does not exist)."""
    table = stored_responses
    with engine.connect() as conn:
        row = conn.execute(
            select(table).where(table.c.id == response_id, table.c.key_id == key_id, table.c.expires_at > now)
        ).first()
    if row is None:
        return None
    return StoredResponse(row.id, row.key_id, row.model, row.created_at, row.expires_at, orjson.loads(row.conversation))


def delete_expired(engine: Engine, now: int) -> int:
    with engine.begin() as conn:
        return conn.execute(delete(stored_responses).where(stored_responses.c.expires_at <= now)).rowcount
