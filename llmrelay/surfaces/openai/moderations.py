"""POST /v1/moderations: relayed; free at OpenAI, so priced at zero, but still recorded."""

from __future__ import annotations

from typing import Any

from llmrelay.metering.pricing import Price, Usage
from llmrelay.providers.base import Capability
from llmrelay.relay.errors import bad_request
from llmrelay.relay.routing import Route
from llmrelay.surfaces.openai.fields import json_object
from llmrelay.surfaces.openai.jobs import JsonPassthroughJob

DEFAULT_MODEL = "omni-moderation-latest"  # what OpenAI uses when the request names none


class ModerationJob(JsonPassthroughJob):
    endpoint = "moderations"
    capability = Capability.MODERATION
    path = "/moderations"

    def __init__(self, raw: bytes, body: dict[str, Any]) -> None:
        model = body.get("model", DEFAULT_MODEL)
        if not isinstance(model, str) or not model:
            raise bad_request("'model' must be a model name.", "model")
        super().__init__(raw, body, model)
        value = body.get("input")
        if not value or not isinstance(value, str | list):
            raise bad_request("'input' is required: a string, an array of strings, or of content parts.", "input")

    def bound(self, price: Price) -> Usage:
        return Usage()

    async def meter(self, body: bytes, route: Route) -> tuple[Usage, str]:
        return Usage(), "request"


def parse_moderation(raw: bytes, content_type: str | None) -> ModerationJob:
    return ModerationJob(raw, json_object(raw))
