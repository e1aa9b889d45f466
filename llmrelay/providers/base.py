"""What every provider adaptor offers, and the channel that binds an adaptor to one upstream."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import aiohttp

from llmrelay.config import ChannelConfig
from llmrelay.metering.pricing import Usage
from llmrelay.relay.request import ChatRequest
from llmrelay.surfaces.multipart import MultipartForm


class Capability(StrEnum):
    """What a provider can serve; a job routed to a provider without its capability gets a clear error."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    IMAGES = "images"
    SPEECH = "speech"
    TRANSCRIPTION = "transcription"
    MODERATION = "moderation"


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


class StreamTap(Protocol):
    """Reads an upstream SSE stream event by event: what to pass on to the client, and the usage seen."""

    usage: Usage | None
    done: bool  # the upstream ended the stream properly ([DONE] or its format's equivalent)

    def feed(self, event: bytes) -> bytes | None: ...

    def finish(self, usage: Usage) -> bytes: ...

    def completion_texts(self) -> list[str]: ...


class Provider(Protocol):
    """An outbound adaptor: pure translation functions, no I/O (the relay does the calling)."""

    wire_format: str
    capabilities: frozenset[Capability]

    def chat_request(
        self, channel: ChannelConfig, request: ChatRequest, upstream_model: str, max_output_cap: int | None
    ) -> UpstreamRequest: ...

    def parse_chat_response(self, body: bytes) -> tuple[Usage | None, list[str]]: ...

    def stream_tap(self, client_wants_usage: bool, chunk_object: str) -> StreamTap: ...

    def error_message(self, body: bytes) -> str: ...

    # Passthrough for OpenAI-format endpoints (only on providers whose wire format is OpenAI's).
    def json_request(
        self,
        channel: ChannelConfig,
        path: str,
        raw: bytes,
        body: dict[str, Any],
        new_model: str | None,
        changes: dict[str, Any] | None = None,
    ) -> UpstreamRequest: ...

    def multipart_request(
        self, channel: ChannelConfig, path: str, form: MultipartForm, changes: dict[str, str]
    ) -> UpstreamRequest: ...


@dataclass(frozen=True, slots=True)
class Channel:
    """A configured upstream: its settings, its adaptor and its pooled HTTP session."""

    config: ChannelConfig
    provider: Provider
    session: aiohttp.ClientSession
    timeout: aiohttp.ClientTimeout
