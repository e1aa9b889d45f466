"""In-memory key records for unit tests (the key cache and the ledger read them as the database gives them)."""

from __future__ import annotations

from typing import Any

from llmrelay.store.cache import KeyState
from llmrelay.store.keys import KeyRecord


def key_record(**fields: Any) -> KeyRecord:
    """An active key with no quota, spend, limits or expiry; `fields` override any of them."""
    defaults: dict[str, Any] = {
        "id": 1,
        "name": "k",
        "key_hash": "0" * 64,
        "key_prefix": "sk-x...abcd",
        "status": "active",
        "quota_nano": None,
        "used_nano": 0,
        "request_count": 0,
        "allowed_models": None,
        "expires_at": None,
        "created_at": 0,
        "updated_at": 0,
        "last_used_at": None,
        "revision": 1,
    }
    return KeyRecord(**{**defaults, **fields})


def key_state(quota_nano: int | None, used_nano: int = 0) -> KeyState:
    """The cached state of a key with this quota and spend."""
    return KeyState(key_record(quota_nano=quota_nano, used_nano=used_nano))
