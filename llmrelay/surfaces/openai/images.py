"""POST /v1/images/generations (JSON), /v1/images/edits and /v1/images/variations (multipart).

Billed per image, by model, size and quality, from the price table's `per_image` entries. Sizes, qualities
and counts the model does not offer are refused before anything is sent or reserved.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.metering.pricing import Price, Usage
from llmrelay.providers.base import Capability
from llmrelay.relay.errors import bad_request
from llmrelay.relay.jobs import Job
from llmrelay.relay.routing import Route
from llmrelay.surfaces.multipart import MultipartForm, parse_multipart
from llmrelay.surfaces.openai.fields import (
    json_object,
    one_of,
    optional_positive_int,
    required_str,
    whole_numbers_as_ints,
)
from llmrelay.surfaces.openai.jobs import JsonPassthroughJob, MultipartPassthroughJob

# What OpenAI's image models accept (other image models: whatever sizes their price lists).
MODEL_RULES: dict[str, dict[str, Any]] = {
    "dall-e-3": {
        "sizes": ("1024x1024", "1792x1024", "1024x1792"),
        "max_n": 1,
        "max_prompt": 4000,
        "qualities": ("standard", "hd"),
    },
    "dall-e-2": {
        "sizes": ("256x256", "512x512", "1024x1024"),
        "max_n": 10,
        "max_prompt": 1000,
        "qualities": ("standard",),
    },
}
RESPONSE_FORMATS = ("url", "b64_json")


class ImageBilling(Job):
    """Images are reserved at n times the variant's price and billed by the images actually returned."""

    capability = Capability.IMAGES
    n: int
    variant: str

    def bound(self, price: Price) -> Usage:
        if price.image_price(self.variant) is None:
            size = self.variant.split("/")[0]
            raise bad_request(f"Size {size} (quality {self.quality}) is not available for {self.model}.", "size")
        return Usage(images=self.n, image_variant=self.variant)

    async def meter(self, body: bytes, route: Route) -> tuple[Usage, str]:
        reply = orjson.loads(body)
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list):
            raise ValueError("no image list in the reply")
        return Usage(images=min(len(data), self.n), image_variant=self.variant), "upstream"

    def _read_options(self, fields: dict[str, Any], prompt_required: bool) -> None:
        rules = MODEL_RULES.get(self.model, {})
        if prompt_required:
            required_str(fields, "prompt", rules.get("max_prompt"))
        self.n = optional_positive_int(fields, "n", rules.get("max_n")) or 1
        size = fields.get("size")
        if size is None or size == "":
            size = "1024x1024"
        if not isinstance(size, str):
            raise bad_request(f"'size' must be a string such as 1024x1024, got {type(size).__name__}.", "size")
        if rules and size not in rules["sizes"]:
            raise bad_request(
                f"Invalid size {size!r} for {self.model}; supported sizes: {', '.join(rules['sizes'])}.", "size"
            )
        self.quality = one_of(fields, "quality", rules.get("qualities", ("standard", "hd")), "standard") or "standard"
        one_of(fields, "response_format", RESPONSE_FORMATS)
        if self.model == "dall-e-3":
            one_of(fields, "style", ("vivid", "natural"))
        self.variant = f"{size}/{self.quality}"  # priced as "1024x1024/hd", or by size alone for standard


class ImageGenerationJob(ImageBilling, JsonPassthroughJob):
    endpoint = "images.generations"
    path = "/images/generations"

    def __init__(self, raw: bytes, body: dict[str, Any]) -> None:
        model = body.get("model")
        if model is None:
            model = "dall-e-2"  # OpenAI's default
        if not isinstance(model, str) or not model:
            raise bad_request("'model' must be a model name.", "model")
        JsonPassthroughJob.__init__(self, raw, body, model)
        self._read_options(body, prompt_required=True)


class ImageUploadJob(ImageBilling, MultipartPassthroughJob):
    """Edits and variations: an uploaded PNG (and mask), dall-e-2 only at OpenAI."""

    def __init__(self, form: MultipartForm, endpoint: str) -> None:
        self.endpoint = f"images.{endpoint}"
        self.path = f"/images/{endpoint}"
        if endpoint == "variations":  # a capability of its own: not every image provider has it (Azure)
            self.capability = Capability.IMAGE_VARIATIONS
        MultipartPassthroughJob.__init__(self, form, form.field("model") or "dall-e-2")
        image = form.file("image")
        if image is None or not image.data:
            raise bad_request("'image' is required: upload a PNG file.", "image")
        fields: dict[str, Any] = {p.name: p.text for p in form.parts if p.filename is None}
        if isinstance(fields.get("n"), str) and fields["n"].strip().isdigit():  # form fields arrive as text
            fields["n"] = int(fields["n"])
        self._read_options(fields, prompt_required=endpoint == "edits")


def parse_generation(raw: bytes, content_type: str | None) -> ImageGenerationJob:
    body = json_object(raw)
    return ImageGenerationJob(whole_numbers_as_ints(raw, body, ("n",)), body)


def parse_edit(raw: bytes, content_type: str | None) -> ImageUploadJob:
    return ImageUploadJob(parse_multipart(raw, content_type), "edits")


def parse_variation(raw: bytes, content_type: str | None) -> ImageUploadJob:
    return ImageUploadJob(parse_multipart(raw, content_type), "variations")
