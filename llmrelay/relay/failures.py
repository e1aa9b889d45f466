"""Upstream failures: which ones another channel may retry, and the error a client gets when none is left.

A failed attempt is retried on another channel only while nothing has reached the client. Retried: 429,
408, 5xx, timeouts, lost connections, replies the gateway cannot read, and the upstream refusing the
gateway's own credentials (401, 403, 402, out of credit; the channel is disabled too). Not retried: every
other 4xx, which is about the client's request and would fail anywhere.

What reaches the client keeps what clients act on: the upstream's error type and code, and on a 429 its
Retry-After, retry-after-ms and x-ratelimit-* headers (the openai SDK times its retries by them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from llmrelay.formats.base import upstream_error
from llmrelay.providers.base import Channel
from llmrelay.relay.errors import RelayError, scrub_secrets
from llmrelay.relay.health import Failure


class UpstreamRefusal(RelayError):
    """An upstream's error about the request itself (a 4xx that is not retried): relayed to the client as
    it is, and logged for the operator (a wrong base_url shows up as one)."""


class UpstreamFailure(Exception):
    """A failed attempt another channel may retry: how it failed, the client's error if no channel is left,
    how long the upstream asked us to wait (seconds), and what the operator's log should say."""

    def __init__(self, kind: Failure, error: RelayError, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.error = error
        self.detail = detail
        self.retry_after = retry_after


# Signs in an error body that the gateway's upstream account, not the request, is at fault.
_ACCOUNT_FAILURES = (
    b"insufficient_quota",  # OpenAI: 429 with this code when the account is out of credit
    b"API_KEY_INVALID",  # Gemini: 400 INVALID_ARGUMENT for a bad key
    b"credit balance is too low",  # Anthropic: 400 when the account is out of credit
)
_KEPT_HEADERS = (b"retry-after", b"retry-after-ms")
_RETRY_DELAY = re.compile(rb'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"')  # Gemini's RetryInfo in the error body


def failure_kind(status: int, body: bytes) -> Failure | None:
    """How an upstream error status counts for routing; None: the client's own error, not retried."""
    if status in (401, 402, 403) or (status in (400, 429) and any(sign in body for sign in _ACCOUNT_FAILURES)):
        return Failure.CREDENTIALS
    if status == 429:
        return Failure.RATE_LIMITED
    if status == 408 or status >= 500:
        return Failure.FAILED
    return None


def retry_after_seconds(headers: Mapping[str, str], body: bytes = b"") -> float | None:
    """How long an upstream asked to be left alone: retry-after-ms, Retry-After (seconds or an HTTP date),
    or Gemini's retryDelay; None when it did not say."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    found = _RETRY_DELAY.search(body) if body else None
    return float(found.group(1)) if found else None


def relayed_error(status: int, body: bytes, headers: Mapping[str, str], channel: Channel) -> RelayError:
    """The client's error for an upstream error reply, secrets removed.

    401/403 from the upstream mean the gateway's own upstream credentials failed, not the client's key, so
    the client gets 502 rather than an error its SDK would report as "your API key is wrong"."""
    said = upstream_error(body)
    message = scrub_secrets(said.message, channel.secrets)
    if status in (401, 403):
        return RelayError(
            502,
            f"The upstream rejected the gateway's credentials ({status}): {message}",
            "upstream_error",
            "upstream_auth_failed",
        )
    kind, code = said.type, said.code
    default_kind = (
        "rate_limit_error" if status == 429 else "invalid_request_error" if status < 500 else "upstream_error"
    )
    default_code = "rate_limit_exceeded" if status == 429 else f"upstream_{status}"
    kept = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in headers.items()
        if name.lower().encode("latin-1") in _KEPT_HEADERS or name.lower().startswith("x-ratelimit-")
    ]
    return RelayError(
        status,
        message,
        scrub_secrets(kind, channel.secrets) if kind else default_kind,
        scrub_secrets(code, channel.secrets) if code else default_code,
        headers=kept or None,
    )


def hint(channel: Channel, detail: str) -> str:
    """What an operator may want to check after a failed attempt, where the failure suggests it."""
    config = channel.config
    if detail.startswith("HTTP 404") and config.type == "openai" and not config.base_url.endswith("/v1"):
        return " (is base_url missing /v1?)"
    if detail.startswith(("HTTP 401", "HTTP 403")):
        return " (check the channel's api_key)"
    if detail.startswith("unreachable"):
        return f" (is the upstream up at {config.base_url}?)"
    if detail.startswith("timed out"):
        return " (the channel's timeout.first_byte and timeout.idle set how long it may take)"
    return ""


def status_failure(status: int, body: bytes, headers: Mapping[str, str], channel: Channel) -> Exception:
    """What an upstream error reply raises: an UpstreamFailure when another channel may retry, else the
    client's error itself."""
    error = relayed_error(status, body, headers, channel)
    kind = failure_kind(status, body)
    if kind is None:
        return UpstreamRefusal(error.status, error.message, error.type, error.code, error.param, error.headers)
    detail = f"HTTP {status}: {error.message}"
    return UpstreamFailure(kind, error, detail, retry_after_seconds(headers, body) if status == 429 else None)
