"""POST /v1/embeddings: forwarded untouched (`dimensions`, `encoding_format` included), billed on input."""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.metering.pricing import Price, Usage
from llmrelay.metering.tokens import count_text, ensure_tokenizers
from llmrelay.providers.base import Capability
from llmrelay.providers.openai import usage_from_openai
from llmrelay.relay.errors import bad_request
from llmrelay.relay.routing import Route
from llmrelay.surfaces.openai.completions import prompt_pieces
from llmrelay.surfaces.openai.fields import json_object, one_of, optional_positive_int, required_str
from llmrelay.surfaces.openai.jobs import JsonPassthroughJob


class EmbeddingsJob(JsonPassthroughJob):
    endpoint = "embeddings"
    capability = Capability.EMBEDDINGS
    path = "/embeddings"

    def __init__(self, raw: bytes, body: dict[str, Any]) -> None:
        super().__init__(raw, body, required_str(body, "model"))
        if "input" not in body:
            raise bad_request("'input' is required.", "input")
        self.texts, self.token_ids = prompt_pieces(body["input"], "input")
        if any(not text for text in self.texts):
            raise bad_request("'input' cannot contain an empty string.", "input")
        one_of(body, "encoding_format", ("float", "base64"))
        optional_positive_int(body, "dimensions")

    def bound(self, price: Price) -> Usage:
        return Usage(prompt_tokens=sum(len(text.encode()) for text in self.texts) + self.token_ids)

    async def meter(self, body: bytes, route: Route) -> tuple[Usage, str]:
        reply = orjson.loads(body)  # ValueError when unreadable -> 502
        usage = reply.get("usage") if isinstance(reply, dict) else None
        if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
            return usage_from_openai(usage), "upstream"
        await ensure_tokenizers()
        counted = sum(count_text(text, route.upstream_model) for text in self.texts) + self.token_ids
        return Usage(prompt_tokens=counted), "tokenizer"


def parse_embeddings(raw: bytes, content_type: str | None) -> EmbeddingsJob:
    return EmbeddingsJob(raw, json_object(raw))
