"""The canonical chat request: parsed once at the surface, then read by every later stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class ChatRequest:
    """A chat request in the internal (OpenAI chat completions) shape, remembering where it came from.

    `raw` is the body exactly as the client sent it, so a same-format channel can forward it untouched.
    """

    source_format: str
    raw: bytes
    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool
    max_output_tokens: int | None
    choices: int
