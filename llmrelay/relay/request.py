"""The canonical chat request: parsed once at the surface, then read by every later stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmrelay.relay.errors import RelayError


@dataclass(slots=True)
class ChatRequest:
    """A chat request in the internal (OpenAI chat completions) shape, remembering where it came from.

    `raw` is the body exactly as the client sent it and `native` its parsed form (the same object as `body`
    for OpenAI clients), so a channel of the client's own format can forward it untouched; `body` is its
    translation to the internal shape, which every other channel encodes from. `upstream_headers` are the
    client's headers a same-format upstream should see (e.g. `anthropic-beta`).
    """

    source_format: str
    raw: bytes
    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool
    max_output_tokens: int | None
    choices: int
    native: dict[str, Any] = field(default_factory=dict)
    upstream_headers: dict[str, str] = field(default_factory=dict)
    sse: bool = True  # a stream goes to the client as server-sent events (Gemini's clients may ask for a JSON array)
    # http(s) image URL -> (mime type, base64 data), fetched for an upstream that takes images only inline
    inline_images: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The error of a request that only an upstream of the client's own format can serve (a built-in tool of
    # the Responses API, say): it is forwarded as sent, and refused with this error where it must be translated
    untranslatable: RelayError | None = None
