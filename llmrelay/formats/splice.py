"""Changing a few top-level keys of a JSON body without decoding and re-encoding the rest of it.

Same-format relaying forwards the client's bytes; only a mapped model name, an output cap or a stream
option may need to change, and re-encoding megabytes of messages for that would cost more than the relay.
"""

from __future__ import annotations

import re
from typing import Any

import orjson


def splice_json_body(raw: bytes, body: dict[str, Any], new_model: str | None, changes: dict[str, Any]) -> bytes:
    """The client's bytes with the model replaced and top-level keys set, re-encoding only as a fallback.

    New keys are inserted after the opening brace. The body is re-encoded instead when that would not be
    exact: a key in `changes` already exists (even as null), or the model's encoded text is ambiguous (it
    appears twice, or the top-level key was written with escapes and only a nested one matches).
    """
    if any(key in body for key in changes):
        return orjson.dumps({**body, "model": new_model or body["model"], **changes})
    out = raw
    if new_model is not None:
        pattern = re.compile(rb'"model"\s*:\s*' + re.escape(orjson.dumps(body["model"])))
        if len(pattern.findall(out)) != 1:
            return orjson.dumps({**body, "model": new_model, **changes})
        out = pattern.sub(lambda _m: b'"model":' + orjson.dumps(new_model), out, count=1)
        # Escaped key text can hide the top-level key from the pattern; check, on the rare bodies that have it.
        if b"\\u" in raw and orjson.loads(out).get("model") != new_model:
            return orjson.dumps({**body, "model": new_model, **changes})
    if changes:
        brace = out.index(b"{")
        inserted = b"".join(orjson.dumps({k: v})[1:-1] + b"," for k, v in changes.items())
        out = out[: brace + 1] + inserted + out[brace + 1 :]
    return out
