"""Validation of OpenAI request fields: each failure is a 400 whose `param` names the field."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson

from llmrelay.formats.checks import int_value
from llmrelay.relay.errors import bad_request
from llmrelay.surfaces.http import parse_json_body


def json_object(raw: bytes) -> dict[str, Any]:
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def required_str(body: dict[str, Any], field: str, max_length: int | None = None) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise bad_request(f"'{field}' is required and must be a non-empty string.", field)
    if max_length is not None and len(value) > max_length:
        raise bad_request(f"'{field}' is longer than the maximum of {max_length} characters.", field)
    return value


def whole_numbers_as_ints(raw: bytes, body: dict[str, Any], fields: Collection[str]) -> bytes:
    """The body to forward once its integer `fields` are read: the client's bytes as sent, unless one of them
    holds a whole-number float (`"max_tokens": 10.0`, an integer under JSON Schema), which is set in `body`
    as the int it is and the body encoded afresh (rare), so the upstream gets an integer where it expects
    one. A few dict lookups on the usual body."""
    changed = False
    for field in fields:
        value = body.get(field)
        if type(value) is float and (number := int_value(value)) is not None:
            body[field] = number
            changed = True
    return orjson.dumps(body) if changed else raw


def optional_positive_int(body: dict[str, Any], field: str, maximum: int | None = None) -> int | None:
    """A positive integer field; a whole-number float (2.0) counts, and is set in `body` as the int."""
    value = body.get(field)
    if value is None:
        return None
    number = int_value(value)
    if number is None or number < 1:
        raise bad_request(f"'{field}' must be a positive integer, got {value!r}.", field)
    if maximum is not None and number > maximum:
        raise bad_request(f"'{field}' must be at most {maximum}, got {value}.", field)
    if number is not value:
        body[field] = number
    return number


def optional_bool(body: dict[str, Any], field: str) -> bool:
    value = body.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"'{field}' must be a boolean.", field)
    return value


def stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    """(stream, the client asked for the usage chunk) from `stream` and `stream_options`."""
    stream = optional_bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object.", "stream_options")
    return stream, bool(stream and options and options.get("include_usage") is True)


def one_of(body: dict[str, Any], field: str, allowed: Collection[str], default: str | None = None) -> str | None:
    value = body.get(field, default)
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:  # the type first: `{} in a_set` raises TypeError
        choices = ", ".join(sorted(allowed))
        raise bad_request(f"Invalid value for '{field}': {value!r}. Supported values are: {choices}.", field)
    return value


def optional_number(body: dict[str, Any], field: str, low: float, high: float) -> None:
    value = body.get(field)
    if value is None:
        return
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise bad_request(f"'{field}' must be a number from {low} to {high}, got {value!r}.", field)
