"""POST /v1/embeddings: forwarded untouched (`dimensions`, `encoding_format` included), billed on input."""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.metering.pricing import Price, Usage
from llmrelay.metering.tokens import count_text, ensure_tokenizers
from llmrelay.metering.usage_check import usable_usage
from llmrelay.providers.base import Capability
from llmrelay.providers.openai import usage_from_openai
from llmrelay.relay.errors import bad_request
from llmrelay.relay.routing import Route
from llmrelay.surfaces.openai.completions import prompt_pieces
from llmrelay.surfaces.openai.fields import (
    json_object,
    one_of,
    optional_positive_int,
    required_str,
    whole_numbers_as_ints,
)
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
        reported = (
            usage_from_openai(usage) if isinstance(usage, dict) and usage.get("prompt_tokens") is not None else None
        )
        # The input is never empty (checked above): a reported 0 is a server that does not count (counted here).
        if reported is not None and usable_usage(reported, bool(self.token_ids or any(self.texts)), False):
            return reported, "upstream"
        await ensure_tokenizers()
        counted = sum(count_text(text, route.upstream_model) for text in self.texts) + self.token_ids
        return Usage(prompt_tokens=counted), "tokenizer"


def parse_embeddings(raw: bytes, content_type: str | None) -> EmbeddingsJob:
    body = json_object(raw)
    return EmbeddingsJob(whole_numbers_as_ints(raw, body, ("dimensions",)), body)
