"""API keys in the database: the one place that creates, changes and reads them.

The CLI and the admin API both call these functions. Every change bumps the `keys` revision in the same
transaction, which is how running gateway nodes notice it within their poll interval.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import string
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmrelay.metering.money import MAX_NANO, nano_to_usd
from llmrelay.store.schema import api_keys, revisions

log = logging.getLogger("llmrelay.keys")

KEY_ALPHABET = string.ascii_letters + string.digits
KEY_BODY_LENGTH = 48
STATUSES = ("active", "disabled", "deleted")
LIMITS = ("rpm", "tpm", "max_parallel")  # a key's rate limits, as columns, fields and admin API params
MAX_LIMIT = 10**9  # the largest limit a key can hold; it fits the columns (INTEGER) with room to spare
MAX_NAME_LENGTH = 200  # the size of the name column (schema.py), which PostgreSQL enforces
# The times a key may hold (Unix seconds): every one of them can be shown as a date (Python's datetime ends
# with the year 9999), so nothing stored can break a listing.
EARLIEST_TIME = -2_208_988_800  # 1900-01-01T00:00:00Z
LATEST_TIME = 253_370_764_800  # 9999-01-01T00:00:00Z, excluded


class KeyOperationError(LookupError):
    """A key operation that cannot be done (unknown key, duplicate name, unusable value, ...); the message
    says why, and `param` names the field at fault, when one is (as the admin API calls it)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


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
    rpm: int | None = None  # rate limits; None: no limit
    tpm: int | None = None
    max_parallel: int | None = None
    unreadable: tuple[str, ...] = ()  # stored fields that could not be read (see `_listed_record`)

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


_COLUMNS = tuple(name for name in KeyRecord.__slots__ if name not in ("allowed_models", "unreadable"))


def _allowed_models(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    models = orjson.loads(text)
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ValueError("not a list of model names")
    return tuple(models)


def _record(row: object) -> KeyRecord:
    mapping = row._mapping  # type: ignore[attr-defined]
    return KeyRecord(
        **{name: mapping[name] for name in _COLUMNS}, allowed_models=_allowed_models(mapping["allowed_models"])
    )


def _listed_record(row: object) -> KeyRecord:
    """A row for a listing, which one bad row must not break: an allow-list that cannot be read is shown as
    unreadable (None here) and logged with the row's id. The key cache keeps reading rows strictly."""
    try:
        return _record(row)
    except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        mapping = row._mapping  # type: ignore[attr-defined]
        log.warning("key %s: its stored allow-list cannot be read (%s)", mapping["id"], exc)
        return KeyRecord(
            **{name: mapping[name] for name in _COLUMNS}, allowed_models=None, unreadable=("allowed_models",)
        )


def check_time(value: object, param: str) -> int | None:
    """A time a key may hold: None, or whole Unix seconds from 1900 up to (not including) the year 9999."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeyOperationError(f"{param} must be a time in Unix seconds", param)
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise KeyOperationError(f"{param} must fall between the years 1900 and 9999; got {value}", param)
    return value


def check_models(models: object) -> list[str] | None:
    if models is None:
        return None
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise KeyOperationError("models must be a list of model names or glob patterns", "models")
    return models or None


def check_quota(quota_nano: object, param: str = "quota_usd") -> int | None:
    if quota_nano is None:
        return None
    if not isinstance(quota_nano, int) or isinstance(quota_nano, bool) or abs(quota_nano) > MAX_NANO:
        raise KeyOperationError(f"{param} must be an amount up to $9,223,372,036", param)
    return quota_nano


def check_limit(value: object, param: str) -> int | None:
    """A rate limit a key may hold: None (no limit) or a whole number from 1 to MAX_LIMIT."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LIMIT:
        raise KeyOperationError(f"{param} must be a whole number from 1 to {MAX_LIMIT:,} (none: no limit)", param)
    return value


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
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    max_parallel: int | None = None,
) -> tuple[KeyRecord, str]:
    """Create a key; returns its record and the plaintext, which is shown once and never stored. Its rate
    limits (requests and tokens per minute, requests in flight) are None for none.

    Every field is checked before anything is written: a key is created whole and usable, or not at all."""
    name = check_name(name)
    check_quota(quota_nano)
    if quota_nano is not None and quota_nano < 0:
        raise KeyOperationError("quota cannot be negative", "quota_usd")
    check_time(expires_at, "expires_at")
    allowed_models = check_models(allowed_models)
    limits = {name: check_limit(value, name) for name, value in zip(LIMITS, (rpm, tpm, max_parallel), strict=True)}
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
                    **limits,
                )
                .returning(api_keys.c.id)
            ).scalar_one()
        except IntegrityError as exc:
            raise KeyOperationError(f"a key named {name!r} already exists", "name") from exc
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()
    return _record(row), plaintext


def check_name(name: object) -> str:
    if not isinstance(name, str):
        raise KeyOperationError("a key's name must be a string", "name")
    name = name.strip()
    if not name:
        raise KeyOperationError("a key needs a non-empty name", "name")
    if len(name) > MAX_NAME_LENGTH:
        raise KeyOperationError(f"a key's name can be at most {MAX_NAME_LENGTH} characters", "name")
    if name.isdigit():
        raise KeyOperationError("a key name cannot be all digits (digits address keys by id)", "name")
    return name


def _find(conn: Connection, ref: str | int, *, lenient: bool = False) -> KeyRecord:
    live = api_keys.c.status != "deleted"
    ref_text = str(ref).strip()
    row = None
    if ref_text.isascii() and ref_text.isdigit() and len(ref_text) <= 18:  # an id (a BIGINT); "²" is a name
        row = conn.execute(select(api_keys).where(api_keys.c.id == int(ref_text), live)).first()
    if row is None:
        row = conn.execute(select(api_keys).where(api_keys.c.name == ref_text, live)).first()
    if row is None:
        raise KeyOperationError(f"no key named or numbered {ref_text[:100]!r}")
    return _listed_record(row) if lenient else _record(row)


def get_key(engine: Engine, ref: str | int) -> KeyRecord:
    """One key, to show or to address (a row whose allow-list cannot be read is still found: see
    `_listed_record`)."""
    with engine.connect() as conn:
        return _find(conn, ref, lenient=True)


def list_keys(engine: Engine, include_deleted: bool = False) -> list[KeyRecord]:
    query = select(api_keys).order_by(api_keys.c.id)
    if not include_deleted:
        query = query.where(api_keys.c.status != "deleted")
    with engine.connect() as conn:
        return [_listed_record(row) for row in conn.execute(query)]


def _change(engine: Engine, ref: str | int, **values: object) -> KeyRecord:
    with engine.begin() as conn:
        record = _find(conn, ref, lenient=True)
        revision = next_revision(conn)
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == record.id)
            .values(updated_at=int(time.time()), revision=revision, **values)
        )
        return _listed_record(conn.execute(select(api_keys).where(api_keys.c.id == record.id)).one())


def set_status(engine: Engine, ref: str | int, status: str) -> KeyRecord:
    if status not in STATUSES:
        raise KeyOperationError(f"unknown status {status!r}")
    return _change(engine, ref, status=status)


def top_up(engine: Engine, ref: str | int, amount_nano: int, spent_nano: int = 0) -> KeyRecord:
    """Add to a key's quota (a negative amount takes quota back, never below what the key has spent: its
    recorded use, or `spent_nano` when the caller knows of more, such as a gateway's unflushed spend)."""
    record = get_key(engine, ref)
    if record.quota_nano is None:
        raise KeyOperationError(f"key {record.name!r} has unlimited quota; nothing to top up")
    check_quota(amount_nano, "usd")
    if abs(record.quota_nano + amount_nano) > MAX_NANO:
        raise KeyOperationError(
            f"key {record.name!r}: the new quota would be beyond the largest amount a key can hold ($9,223,372,036)",
            "usd",
        )
    refuse_below_used(record, record.quota_nano + amount_nano, "usd", spent_nano)
    return _change(engine, record.id, quota_nano=api_keys.c.quota_nano + amount_nano)


def refuse_below_used(record: KeyRecord, quota_nano: int, param: str, spent_nano: int = 0) -> None:
    """A key's balance is never negative: its quota cannot be set below what it has already spent."""
    spent = max(record.used_nano, spent_nano)
    if quota_nano < spent:
        raise KeyOperationError(
            f"key {record.name!r} has used ${nano_to_usd(spent)}; its quota cannot be set below that", param
        )


def update_key(
    engine: Engine,
    ref: str | int,
    *,
    expires_at: int | type[...] | None = ...,
    allowed_models: list[str] | type[...] | None = ...,
    quota_nano: int | type[...] | None = ...,
    spent_nano: int = 0,
    rpm: int | type[...] | None = ...,
    tpm: int | type[...] | None = ...,
    max_parallel: int | type[...] | None = ...,
) -> KeyRecord:
    """Change expiry, model allow-list, total quota or rate limits; `...` leaves a field as it is, None
    clears it. Every value is checked before anything is written; a quota is never set below what the key
    has spent."""
    values: dict[str, object] = {
        name: check_limit(value, name)
        for name, value in zip(LIMITS, (rpm, tpm, max_parallel), strict=True)
        if value is not ...
    }
    if expires_at is not ...:
        values["expires_at"] = check_time(expires_at, "expires_at")
    if allowed_models is not ...:
        models = check_models(allowed_models)
        values["allowed_models"] = orjson.dumps(models).decode() if models else None
    if quota_nano is not ...:
        values["quota_nano"] = check_quota(quota_nano)
        if quota_nano is not None:
            refuse_below_used(get_key(engine, ref), quota_nano, "quota_usd", spent_nano)
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
