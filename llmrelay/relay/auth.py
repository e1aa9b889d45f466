"""Who is calling: the API key from the request, checked against the in-memory key cache."""

from __future__ import annotations

import hashlib
import time

from llmrelay.relay.errors import RelayError
from llmrelay.store.cache import KeyCache, KeyState
from llmrelay.surfaces.http import HttpRequest


def presented_key(http: HttpRequest, key_header: bytes | None = None, key_query: str | None = None) -> str | None:
    """The key from `key_header` (Anthropic's `x-api-key`, Google's `x-goog-api-key`) or the `key_query`
    parameter (Google's `?key=`) when the surface names them and they are sent, else `Authorization: Bearer
    sk-...` or a bare `Authorization: sk-...` (older clients send that)."""
    if key_header is not None:
        value = http.header(key_header)
        if value and value.strip():
            return value.strip()
    if key_query is not None:
        value = http.query().get(key_query)
        if value and value.strip():
            return value.strip()
    value = http.header(b"authorization")
    if not value:
        return None
    value = value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


def check_key(cache: KeyCache, plaintext: str | None) -> KeyState:
    if not plaintext:
        raise RelayError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer sk-...'.",
            "invalid_request_error",
            "missing_api_key",
        )
    key = cache.by_hash.get(hashlib.sha256(plaintext.encode()).hexdigest())
    if key is None:
        shown = f"{plaintext[:6]}...{plaintext[-4:]}" if len(plaintext) > 12 else "***"
        raise RelayError(401, f"Incorrect API key provided: {shown}.", "invalid_request_error", "invalid_api_key")
    if key.status != "active":
        raise RelayError(401, "This API key has been disabled.", "invalid_request_error", "api_key_disabled")
    if key.expires_at is not None and time.time() >= key.expires_at:
        raise RelayError(401, "This API key has expired.", "invalid_request_error", "api_key_expired")
    return key


def authenticate(
    cache: KeyCache, http: HttpRequest, key_header: bytes | None = None, key_query: str | None = None
) -> KeyState:
    return check_key(cache, presented_key(http, key_header, key_query))
