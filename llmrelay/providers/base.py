"""What every provider adaptor offers, and the channel that binds an adaptor to one upstream."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, cast

from llmrelay.config import ChannelConfig, RoutingConfig
from llmrelay.formats.base import Completion, StreamDecoder
from llmrelay.metering.pricing import Usage
from llmrelay.providers.connections import ConnectionPool
from llmrelay.relay.errors import RelayError
from llmrelay.relay.health import ChannelHealth
from llmrelay.relay.request import ChatRequest
from llmrelay.surfaces.multipart import MultipartForm


class Capability(StrEnum):
    """What a provider can serve; a job routed to a provider without its capability gets a clear error."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    IMAGES = "images"  # generations and edits
    IMAGE_VARIATIONS = "image variations"  # apart from IMAGES: Azure OpenAI has edits but no variations
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
    error_message: str | None  # an error the upstream reported mid-stream that the client has not seen yet

    def feed(self, event: bytes) -> bytes | None: ...

    def finish(self, usage: Usage) -> bytes: ...

    def completion_texts(self) -> list[str]: ...


class Provider(Protocol):
    """An outbound adaptor: where to call and which codec to use, no I/O (the relay does the calling).

    A chat request from a client of the provider's own wire format is forwarded as sent (`chat_request`
    splices it), its reply relayed as it came with usage read on the side (`parse_chat_response`,
    `chat_stream_tap`); from any other client it is encoded from the internal shape and its reply decoded to
    the internal shape (`decode_chat_reply`, `stream_decoder`) for the client's format to encode.
    """

    wire_format: str
    capabilities: frozenset[Capability]
    inlines_images: bool  # http(s) image URLs must be fetched and sent inline (the request's inline_images)

    def chat_request(
        self,
        channel: ChannelConfig,
        request: ChatRequest,
        upstream_model: str,
        max_output_cap: int | None,
        default_max_output: int,
    ) -> UpstreamRequest:
        """`max_output_cap` is what the key can afford (None: no cap); `default_max_output` is the output
        limit to send when neither the client nor the cap set one and the upstream requires one."""
        ...

    def parse_chat_response(self, body: bytes) -> tuple[Usage | None, list[str]]: ...

    def chat_stream_tap(self, request: ChatRequest) -> StreamTap: ...

    def decode_chat_reply(self, body: bytes, request: ChatRequest) -> tuple[Completion, Usage | None]: ...

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder: ...


class OpenAICompatible(Provider, Protocol):
    """Passthrough of OpenAI's other endpoints, on providers whose wire format is OpenAI's."""

    def stream_tap(self, client_wants_usage: bool, chunk_object: str) -> StreamTap: ...

    def reports_stream_usage(self, channel: ChannelConfig) -> bool:
        """Whether the upstream takes `stream_options.include_usage` (older Azure API versions refuse it)."""
        ...

    def json_request(
        self,
        channel: ChannelConfig,
        path: str,
        upstream_model: str,
        raw: bytes,
        body: dict[str, Any],
        new_model: str | None,
        changes: dict[str, Any] | None = None,
    ) -> UpstreamRequest:
        """`upstream_model` is the model called, whether or not the body names it (Azure's URL does);
        `new_model` is the name to write into the body, None to leave the client's as sent."""
        ...

    def multipart_request(
        self, channel: ChannelConfig, path: str, upstream_model: str, form: MultipartForm, changes: dict[str, str]
    ) -> UpstreamRequest: ...


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity: a request's tried channels are a list
class Channel:
    """A configured upstream: its settings, its adaptor, its origin's pooled connections, the secrets (its key
    and header values) that must never reach a client or a log, as text and as bytes for scrubbing streams, and
    its health as the router sees it."""

    config: ChannelConfig
    provider: Provider
    connections: ConnectionPool = None  # type: ignore[assignment]  # a pool of its own when not given
    secret_bytes: tuple[bytes, ...] = ()
    health: ChannelHealth = None  # type: ignore[assignment]  # made from the config when not given

    def __post_init__(self) -> None:
        if self.connections is None:
            object.__setattr__(self, "connections", ConnectionPool(self.config.base_url))
        if self.health is None:
            object.__setattr__(
                self, "health", ChannelHealth(self.config.name, RoutingConfig(), self.config.max_parallel)
            )

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(secret.decode() for secret in self.secret_bytes)


def openai_passthrough(channel: Channel) -> OpenAICompatible:
    """The channel's provider, for forwarding an OpenAI endpoint other than chat. The capability gate sends
    such jobs only to providers that have it; this check keeps a misdeclared provider from a traceback."""
    provider = channel.provider
    # The wire format, not isinstance() on the protocol: a runtime protocol check costs ~14 µs a request.
    if provider.wire_format != "openai":
        raise RelayError(400, f"Channel {channel.config.name!r} cannot serve this endpoint.", code="unsupported_model")
    return cast(OpenAICompatible, provider)
