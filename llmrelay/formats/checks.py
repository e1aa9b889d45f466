"""Reading hostile JSON: the checks and small helpers every codec uses.

A codec reads whatever a client sent: a body that parsed as JSON but may hold any type anywhere, values
megabytes long, nesting deeper than an encoder accepts. Every field it reads must therefore be checked
before it is used, and anything malformed must become a 400 that names the field (`bad_request(message,
param)`, with `param` a dotted path such as `messages.2.content.0.text`), never a KeyError or TypeError
surfacing as a 500. The `as_*` functions return the value when it has the expected type and raise that 400
otherwise, so reading a field and checking it is one expression.

What an upstream sends back is read leniently instead (`token_count`, `sse_json`): a malformed reply is
the upstream's fault, not the client's, and is read as far as it makes sense.
"""

from __future__ import annotations

from typing import Any, NoReturn

import orjson

from llmrelay.relay.errors import bad_request


def fail(message: str, param: str | None) -> NoReturn:
    """Raise the 400 for a malformed field: `param: message` (the message alone for the whole body)."""
    raise bad_request(f"{param}: {message}" if param else message, param)


def short(value: Any) -> str:
    """A client value for an error message, cut short (a hostile value may be megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Whole-number floats up to here are exact: a larger "integer" written with a decimal point is not.
MAX_EXACT_INT = 2**53


def is_int(value: Any) -> bool:
    """A Python int, and not a boolean (which Python counts as one). A type test, for a caller that keeps
    the value it tested: reading an integer *field* goes through `as_int` / `int_value`, which also accept a
    whole-number float (10.0) and convert it."""
    return isinstance(value, int) and not isinstance(value, bool)


def int_value(value: Any) -> int | None:
    """An integer as JSON Schema counts one, as an int: an int (not a boolean), or a whole-number float such
    as 10.0 (JSON has one number type; under JSON Schema 2020-12, the dialect of OpenAI's OpenAPI document,
    10.0 is an integer). None for anything else, including whole floats too large to be exact."""
    if isinstance(value, int):
        return None if isinstance(value, bool) else value
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_INT:
        return int(value)
    return None


def is_number(value: Any) -> bool:
    """An integer or a float, and not a boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def kind_of(value: Any) -> str:
    """A `type`/`role` field as a string ("" when it is anything else), safe to look up in a dict."""
    return value if isinstance(value, str) else ""


def as_dict(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail("must be an object", param)
    return value


def as_list(value: Any, param: str, *, non_empty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        fail("must be an array", param)
    if non_empty and not value:
        fail("must not be empty", param)
    return value


def as_str(value: Any, param: str, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        fail("must be a string", param)
    if non_empty and not value:
        fail("must not be empty", param)
    return value


def as_number(value: Any, param: str) -> int | float:
    if not is_number(value):
        fail("must be a number", param)
    return value


def as_int(value: Any, param: str, *, positive: bool = False) -> int:
    """An integer field as an int (10.0 is read as 10, so it is encoded onward as 10)."""
    number = int_value(value)
    if number is None:
        fail("must be an integer", param)
    if positive and number < 1:
        fail("must be a positive integer", param)
    return number


def as_flag(value: Any, param: str) -> bool:
    """An optional boolean field: absent (null) is False."""
    if value is not None and not isinstance(value, bool):
        fail("must be a boolean", param)
    return bool(value)


def dumps_checked(value: Any, param: str) -> str:
    """A client value encoded as JSON text, or a 400 when it cannot be: orjson refuses integers beyond 64
    bits and nesting beyond its limit, which JSON a client sent may have."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        fail("cannot be encoded as JSON", param)


def token_count(value: Any) -> int:
    """A token count an upstream reported: a positive number as an int, anything else 0."""
    return int(value) if is_number(value) and value > 0 else 0


def sse_json(event: bytes) -> Any:
    """The parsed JSON of one SSE event's data, its `data:` lines joined (None when it has none or it is
    not JSON). Streams are decoded here event by event, so the usual event, with one data line, is parsed
    without splitting it into lines (JSON allows the whitespace around the payload)."""
    start = event.find(b"data:")
    if (start == 0 or (start > 0 and event[start - 1] == 10)) and event.find(b"\ndata:", start) < 0:
        payload = event[start + 5 :]
    else:
        lines = [line[5:] for line in event.split(b"\n") if line.startswith(b"data:")]
        if not lines:
            return None
        payload = b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines)
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
