"""API keys in the database: the one place that creates, changes and reads them.

The CLI and the admin API both call these functions. Every change bumps the `keys` revision in the same
transaction, which is how running gateway nodes notice it within their poll interval.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmrelay.store.schema import api_keys, revisions

KEY_ALPHABET = string.ascii_letters + string.digits
KEY_BODY_LENGTH = 48
STATUSES = ("active", "disabled", "deleted")


class KeyOperationError(LookupError):
    """A key operation that cannot be done (unknown key, duplicate name, ...); the message says why."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: int
    name: str
    key_hash: str
    key_prefix: str
    status: str
    quota_nano: int | None
    used_nano: int
    request_count: int
    allowed_models: tuple[str, ...] | None
    expires_at: int | None
    created_at: int
    updated_at: int
    last_used_at: int | None
    revision: int

    @property
    def balance_nano(self) -> int | None:
        return None if self.quota_nano is None else self.quota_nano - self.used_nano


def hash_key(plaintext: str) -> str:
    """SHA-256 of the key: keys are 285 random bits, so a fast hash cannot be brute-forced."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_key() -> str:
    return "sk-" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_BODY_LENGTH))


def display_prefix(plaintext: str) -> str:
    return f"{plaintext[:7]}...{plaintext[-4:]}"


def _record(row: object) -> KeyRecord:
    mapping = row._mapping  # type: ignore[attr-defined]
    allowed = mapping["allowed_models"]
    return KeyRecord(
        **{name: mapping[name] for name in KeyRecord.__slots__ if name != "allowed_models"},
        allowed_models=tuple(orjson.loads(allowed)) if allowed is not None else None,
    )


def next_revision(conn: Connection) -> int:
    # The UPDATE takes a row lock held to commit, so revisions are handed out in commit order.
    conn.execute(update(revisions).where(revisions.c.name == "keys").values(value=revisions.c.value + 1))
    return conn.execute(select(revisions.c.value).where(revisions.c.name == "keys")).scalar_one()


def create_key(
    engine: Engine,
    name: str,
    quota_nano: int | None,
    expires_at: int | None = None,
    allowed_models: list[str] | None = None,
) -> tuple[KeyRecord, str]:
    """Create a key; returns its record and the plaintext, which is shown once and never stored."""
    name = name.strip()
    if not name:
        raise KeyOperationError("a key needs a non-empty name")
    if name.isdigit():
        raise KeyOperationError("a key name cannot be all digits (digits address keys by id)")
    if quota_nano is not None and quota_nano < 0:
        raise KeyOperationError("quota cannot be negative")
    plaintext = generate_key()
    now = int(time.time())
    with engine.begin() as conn:
        revision = next_revision(conn)
        try:
            key_id = conn.execute(
                insert(api_keys)
                .values(
                    name=name,
                    key_hash=hash_key(plaintext),
                    key_prefix=display_prefix(plaintext),
                    status="active",
                    quota_nano=quota_nano,
                    used_nano=0,
                    request_count=0,
                    allowed_models=orjson.dumps(allowed_models).decode() if allowed_models else None,
                    expires_at=expires_at,
                    created_at=now,
                    updated_at=now,
                    revision=revision,
                )
                .returning(api_keys.c.id)
            ).scalar_one()
        except IntegrityError as exc:
            raise KeyOperationError(f"a key named {name!r} already exists") from exc
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()
    return _record(row), plaintext


def _find(conn: Connection, ref: str | int) -> KeyRecord:
    live = api_keys.c.status != "deleted"
    ref_text = str(ref).strip()
    row = None
    if ref_text.isdigit():
        row = conn.execute(select(api_keys).where(api_keys.c.id == int(ref_text), live)).first()
    if row is None:
        row = conn.execute(select(api_keys).where(api_keys.c.name == ref_text, live)).first()
    if row is None:
        raise KeyOperationError(f"no key named or numbered {ref_text!r}")
    return _record(row)


def get_key(engine: Engine, ref: str | int) -> KeyRecord:
    with engine.connect() as conn:
        return _find(conn, ref)


def list_keys(engine: Engine, include_deleted: bool = False) -> list[KeyRecord]:
    query = select(api_keys).order_by(api_keys.c.id)
    if not include_deleted:
        query = query.where(api_keys.c.status != "deleted")
    with engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def _change(engine: Engine, ref: str | int, **values: object) -> KeyRecord:
    with engine.begin() as conn:
        record = _find(conn, ref)
        revision = next_revision(conn)
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == record.id)
            .values(updated_at=int(time.time()), revision=revision, **values)
        )
        return _record(conn.execute(select(api_keys).where(api_keys.c.id == record.id)).one())


def set_status(engine: Engine, ref: str | int, status: str) -> KeyRecord:
    if status not in STATUSES:
        raise KeyOperationError(f"unknown status {status!r}")
    return _change(engine, ref, status=status)


def top_up(engine: Engine, ref: str | int, amount_nano: int) -> KeyRecord:
    """Add to a key's quota (a negative amount takes quota back)."""
    record = get_key(engine, ref)
    if record.quota_nano is None:
        raise KeyOperationError(f"key {record.name!r} has unlimited quota; nothing to top up")
    return _change(engine, record.id, quota_nano=api_keys.c.quota_nano + amount_nano)


def update_key(
    engine: Engine,
    ref: str | int,
    *,
    expires_at: int | type[...] | None = ...,
    allowed_models: list[str] | type[...] | None = ...,
    quota_nano: int | type[...] | None = ...,
) -> KeyRecord:
    """Change expiry, model allow-list or total quota; `...` leaves a field as it is, None clears it."""
    values: dict[str, object] = {}
    if expires_at is not ...:
        values["expires_at"] = expires_at
    if allowed_models is not ...:
        values["allowed_models"] = orjson.dumps(allowed_models).decode() if allowed_models else None
    if quota_nano is not ...:
        values["quota_nano"] = quota_nano
    return _change(engine, ref, **values)


def current_revision(conn: Connection) -> int:
    return conn.execute(select(revisions.c.value).where(revisions.c.name == "keys")).scalar_one()


def changed_keys(engine: Engine, after_revision: int) -> tuple[int, list[KeyRecord]]:
    """Keys changed after a revision, and the revision they bring the reader up to."""
    with engine.connect() as conn:
        revision = current_revision(conn)
        if revision <= after_revision:
            return revision, []
        rows = conn.execute(select(api_keys).where(api_keys.c.revision > after_revision))
        return revision, [_record(row) for row in rows]
