"""The in-process view of API keys that the hot path reads instead of the database.

Every key lives here as a mutable KeyState, found by the SHA-256 of its plaintext. The gateway loads all
keys at start and then applies only the keys whose revision changed (see store.keys.changed_keys), so a
key created, disabled, topped up or deleted anywhere is honoured within one poll interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from llmrelay.relay.limits import KeyLimits, key_limits
from llmrelay.relay.patterns import ModelPatterns
from llmrelay.store.keys import KeyRecord


class KeyState:
    """A key as the relay sees it: DB fields plus this node's not-yet-written spend and live reservations."""

    __slots__ = (
        "allowed",
        "allowed_names",
        "created_at",
        "expires_at",
        "id",
        "key_hash",
        "key_prefix",
        "limits",
        "name",
        "quota_nano",
        "request_count",
        "reserved_nano",
        "status",
        "used_nano",
    )

    def __init__(self, record: KeyRecord, unflushed_nano: int = 0, unflushed_requests: int = 0) -> None:
        self.reserved_nano = 0
        self.limits: KeyLimits | None = None
        self.update(record, unflushed_nano, unflushed_requests)

    def update(self, record: KeyRecord, unflushed_nano: int, unflushed_requests: int) -> None:
        self.id = record.id
        self.name = record.name
        self.key_hash = record.key_hash
        self.key_prefix = record.key_prefix
        self.status = record.status
        self.quota_nano = record.quota_nano
        self.used_nano = record.used_nano + unflushed_nano
        self.request_count = record.request_count + unflushed_requests
        self.expires_at = record.expires_at
        self.created_at = record.created_at
        self.allowed_names = record.allowed_models
        self.allowed = ModelPatterns(record.allowed_models) if record.allowed_models else None
        limits = key_limits(record.rpm, record.tpm, record.max_parallel)
        if limits != self.limits:  # unchanged limits stay the same object: the rate limiter keys on it
            self.limits = limits

    @property
    def balance_nano(self) -> int | None:
        """Quota left after spend (reservations not counted); None when unlimited."""
        return None if self.quota_nano is None else self.quota_nano - self.used_nano

    def may_use(self, model: str) -> bool:
        return self.allowed is None or self.allowed.matches(model)


class KeyCache:
    """Keys by hash (for authentication) and by id (for applying changes)."""

    def __init__(self) -> None:
        self.by_hash: dict[str, KeyState] = {}
        self.by_id: dict[int, KeyState] = {}
        self.revision = -1

    def apply(
        self,
        revision: int,
        records: Iterable[KeyRecord],
        unflushed: Callable[[int], tuple[int, int]],
    ) -> None:
        """Apply changed key rows; `unflushed(key_id)` gives spend this node has not written yet."""
        for record in records:
            state = self.by_id.get(record.id)
            if record.status == "deleted":
                if state is not None:
                    self.by_hash.pop(state.key_hash, None)
                    del self.by_id[record.id]
                continue
            if state is None:
                state = self.by_id[record.id] = KeyState(record, *unflushed(record.id))
            else:
                self.by_hash.pop(state.key_hash, None)
                state.update(record, *unflushed(record.id))
            self.by_hash[record.key_hash] = state
        self.revision = max(self.revision, revision)
