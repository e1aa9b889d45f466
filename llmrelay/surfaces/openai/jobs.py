"""Jobs for OpenAI-format endpoints whose body is forwarded as the client sent it."""

from __future__ import annotations

from typing import Any

from llmrelay.metering.pricing import Price, Usage
from llmrelay.providers.base import UpstreamRequest, openai_passthrough
from llmrelay.relay.jobs import Job
from llmrelay.relay.routing import Route
from llmrelay.surfaces.multipart import MultipartForm


class JsonPassthroughJob(Job):
    """A JSON endpoint: the body goes upstream unchanged but for a mapped model name."""

    path: str  # upstream path after the channel's base URL, e.g. "/embeddings"

    def __init__(self, raw: bytes, body: dict[str, Any], model: str) -> None:
        self.raw = raw
        self.body = body
        self.model = model

    def upstream_request(self, route: Route, cap: int | None) -> UpstreamRequest:
        new_model = route.upstream_model if route.upstream_model != self.model else None
        return openai_passthrough(route.channel).json_request(
            route.channel.config, self.path, route.upstream_model, self.raw, self.body, new_model
        )


class MultipartPassthroughJob(Job):
    """A form upload: forwarded as sent, re-encoded only to set a mapped model name."""

    path: str

    def __init__(self, form: MultipartForm, model: str) -> None:
        self.form = form
        self.model = model

    def form_changes(self, route: Route) -> dict[str, str]:
        return {"model": route.upstream_model} if route.upstream_model != self.model else {}

    def upstream_request(self, route: Route, cap: int | None) -> UpstreamRequest:
        changes = self.form_changes(route)
        return openai_passthrough(route.channel).multipart_request(
            route.channel.config, self.path, route.upstream_model, self.form, changes
        )


class FixedUsageJob(Job):
    """A job whose usage is known before the call (images asked for, characters spoken, seconds of audio):
    it reserves exactly that and is billed exactly that when the upstream succeeds."""

    usage: Usage

    def bound(self, price: Price) -> Usage:
        return self.usage

    async def meter(self, body: bytes, route: Route) -> tuple[Usage, str]:
        return self.usage, "request"
