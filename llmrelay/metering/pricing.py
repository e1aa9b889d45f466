"""Price table: what one unit of each model costs, in exact nano-dollars.

Prices are written the way providers publish them (USD per 1M tokens, per image, per 1M characters of
speech, per minute of audio) and held as Decimal nano-dollars per unit, so $0.075/M tokens is exactly 75
nano per token; a request's cost is summed in Decimal and rounded once, half up, to whole nano-dollars.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from llmrelay.metering.money import NANO_PER_USD, MoneyError, to_decimal

_NANO_PER_UNIT_PER_USD_PER_MILLION = Decimal(1000)  # 1e9 nano/USD ÷ 1e6 units
_PRICE_FIELDS = frozenset(
    {
        "input",
        "output",
        "cached_input",
        "cache_write",
        "max_output_tokens",
        "per_request",
        "per_image",
        "per_million_characters",
        "per_minute",
    }
)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one request consumed. Tokens follow OpenAI's convention: prompt_tokens includes the prompt tokens
    read from a cache (cached_tokens) and those written to one (cache_write_tokens, Anthropic's prompt
    caching); images are counted per size/quality variant, speech by input characters, audio by whole
    seconds."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    images: int = 0
    image_variant: str = ""
    characters: int = 0
    audio_seconds: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Price:
    """Nano-dollars per unit; max_output_tokens bounds reservations of replies without max_tokens."""

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cached_input: Decimal = Decimal(0)
    cache_write: Decimal = Decimal(0)
    max_output_tokens: int = 4096
    per_request: Decimal = Decimal(0)
    per_image: Mapping[str, Decimal] = field(default_factory=dict)  # "1024x1024" or "1024x1024/hd"
    per_character: Decimal = Decimal(0)
    per_second: Decimal = Decimal(0)

    def image_price(self, variant: str) -> Decimal | None:
        """Price of one image of a size ("1024x1024") and quality ("/hd"); None when not priced."""
        price = self.per_image.get(variant)
        if price is None and "/" in variant:
            size, quality = variant.split("/", 1)
            price = self.per_image.get(size) if quality == "standard" else None
        return price

    def cost_exact(self, usage: Usage) -> Decimal:
        """Cost in nano-dollars before rounding; prompt tokens read from or written to a cache are billed at
        their own rates only."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        total = (usage.prompt_tokens - cached - written) * self.input + usage.completion_tokens * self.output
        # The rarer terms only when present: each Decimal product costs more than the test (a cost is computed
        # at reservation and at settlement of every request).
        if cached:
            total += cached * self.cached_input
        if written:
            total += written * self.cache_write
        if usage.characters:
            total += usage.characters * self.per_character
        if usage.audio_seconds:
            total += usage.audio_seconds * self.per_second
        if self.per_request:
            total += self.per_request
        if usage.images:
            image = self.image_price(usage.image_variant)
            if image is None:
                raise MoneyError(f"no price for images of {usage.image_variant}")
            total += usage.images * image
        return total

    def cost_nano(self, usage: Usage) -> int:
        """The billed cost: the exact cost rounded once, half up, to whole nano-dollars."""
        return int(self.cost_exact(usage).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _usd(spec: Mapping[str, object], key: str, scale: Decimal | int) -> Decimal:
    value = to_decimal(spec.get(key, 0)) * scale
    if value < 0:
        raise MoneyError("prices cannot be negative")
    return value


def price_from_spec(spec: Mapping[str, object]) -> Price:
    """Build a Price from operator-facing numbers (see README: prices)."""
    unknown = set(spec) - _PRICE_FIELDS
    if unknown:
        raise MoneyError(f"unknown price field(s): {', '.join(sorted(unknown))}")
    if not set(spec) - {"max_output_tokens", "cached_input", "cache_write"}:
        raise MoneyError(
            "a price needs at least one of input/output (USD per 1M tokens), per_image, per_million_characters, "
            "per_minute or per_request"
        )
    per_million = _NANO_PER_UNIT_PER_USD_PER_MILLION
    input_rate = _usd(spec, "input", per_million)
    images = spec.get("per_image") or {}
    if not isinstance(images, Mapping):
        raise MoneyError("per_image maps an image size (and /quality) to USD, e.g. {'1024x1024/hd': 0.08}")
    max_output = spec.get("max_output_tokens", 4096)
    if not isinstance(max_output, int) or isinstance(max_output, bool) or max_output <= 0:
        raise MoneyError("max_output_tokens must be a positive integer")
    return Price(
        input=input_rate,
        output=_usd(spec, "output", per_million),
        cached_input=_usd(spec, "cached_input", per_million) if "cached_input" in spec else input_rate,
        cache_write=_usd(spec, "cache_write", per_million) if "cache_write" in spec else input_rate,
        max_output_tokens=max_output,
        per_request=_usd(spec, "per_request", NANO_PER_USD),
        per_image={str(variant): _usd(images, variant, NANO_PER_USD) for variant in images},
        per_character=_usd(spec, "per_million_characters", per_million),
        per_second=_usd(spec, "per_minute", NANO_PER_USD) / 60,
    )


# Public list prices as the providers publish them (standard tier, short context); see price_from_spec.
BUILTIN_PRICES: dict[str, dict[str, object]] = {
    "gpt-3.5-turbo": {"input": "0.50", "output": "1.50", "max_output_tokens": 4096},
    "gpt-3.5-turbo-0125": {"input": "0.50", "output": "1.50", "max_output_tokens": 4096},
    "gpt-4": {"input": "30", "output": "60", "max_output_tokens": 8192},
    "gpt-4-0613": {"input": "30", "output": "60", "max_output_tokens": 8192},
    "gpt-4-turbo": {"input": "10", "output": "30", "max_output_tokens": 4096},
    "gpt-4-turbo-2024-04-09": {"input": "10", "output": "30", "max_output_tokens": 4096},
    "gpt-4o": {"input": "2.50", "cached_input": "1.25", "output": "10", "max_output_tokens": 16384},
    "gpt-4o-2024-08-06": {"input": "2.50", "cached_input": "1.25", "output": "10", "max_output_tokens": 16384},
    "gpt-4o-2024-11-20": {"input": "2.50", "cached_input": "1.25", "output": "10", "max_output_tokens": 16384},
    "gpt-4o-mini": {"input": "0.15", "cached_input": "0.075", "output": "0.60", "max_output_tokens": 16384},
    "gpt-4o-mini-2024-07-18": {
        "input": "0.15",
        "cached_input": "0.075",
        "output": "0.60",
        "max_output_tokens": 16384,
    },
    "o1-preview": {"input": "15", "cached_input": "7.50", "output": "60", "max_output_tokens": 32768},
    "o1-mini": {"input": "1.10", "cached_input": "0.55", "output": "4.40", "max_output_tokens": 65536},
    "gpt-3.5-turbo-instruct": {"input": "1.50", "output": "2", "max_output_tokens": 4096},
    "text-embedding-ada-002": {"input": "0.10"},
    "text-embedding-3-small": {"input": "0.02"},
    "text-embedding-3-large": {"input": "0.13"},
    "dall-e-3": {
        "per_image": {
            "1024x1024": "0.040",
            "1024x1792": "0.080",
            "1792x1024": "0.080",
            "1024x1024/hd": "0.080",
            "1024x1792/hd": "0.120",
            "1792x1024/hd": "0.120",
        }
    },
    "dall-e-2": {"per_image": {"256x256": "0.016", "512x512": "0.018", "1024x1024": "0.020"}},
    "tts-1": {"per_million_characters": "15"},
    "tts-1-hd": {"per_million_characters": "30"},
    "whisper-1": {"per_minute": "0.006"},
    # Moderation is free at OpenAI: priced explicitly at zero (unpriced models are refused, never free).
    "omni-moderation-latest": {"input": "0"},
    "text-moderation-latest": {"input": "0"},
    "text-moderation-stable": {"input": "0"},
}

# Claude list prices (USD per 1M tokens): input, 5-minute cache write, cache read, output; and the model's
# longest reply, which is also what a Claude request without max_tokens is sent (Anthropic requires one).
_CLAUDE: dict[tuple[str, ...], tuple[str, str, str, str, int]] = {
    ("claude-3-haiku-20240307",): ("0.25", "0.30", "0.03", "1.25", 4096),
    ("claude-3-opus-20240229", "claude-3-opus-latest"): ("15", "18.75", "1.50", "75", 4096),
    ("claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"): ("0.80", "1", "0.08", "4", 8192),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-latest"): ("3", "3.75", "0.30", "15", 8192),
    ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest"): ("3", "3.75", "0.30", "15", 64000),
    ("claude-sonnet-4-20250514", "claude-sonnet-4-0"): ("3", "3.75", "0.30", "15", 64000),
    ("claude-opus-4-20250514", "claude-opus-4-0"): ("15", "18.75", "1.50", "75", 32000),
    ("claude-opus-4-1-20250805", "claude-opus-4-1"): ("15", "18.75", "1.50", "75", 32000),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"): ("3", "3.75", "0.30", "15", 64000),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5"): ("1", "1.25", "0.10", "5", 64000),
    ("claude-opus-4-5-20251101", "claude-opus-4-5"): ("5", "6.25", "0.50", "25", 64000),
    ("claude-sonnet-4-6",): ("3", "3.75", "0.30", "15", 128000),
    ("claude-opus-4-6",): ("5", "6.25", "0.50", "25", 128000),
}
BUILTIN_PRICES.update(
    {
        name: {"input": i, "cache_write": w, "cached_input": r, "output": o, "max_output_tokens": m}
        for names, (i, w, r, o, m) in _CLAUDE.items()
        for name in names
    }
)

# Gemini list prices (USD per 1M tokens, prompts up to 200k tokens): input, cached input, output; longest reply.
_GEMINI: dict[tuple[str, ...], tuple[str, str, str, int]] = {
    ("gemini-1.5-flash", "gemini-1.5-flash-latest", "gemini-1.5-flash-002"): ("0.075", "0.01875", "0.30", 8192),
    ("gemini-1.5-pro", "gemini-1.5-pro-latest", "gemini-1.5-pro-002"): ("1.25", "0.3125", "5", 8192),
    ("gemini-2.0-flash", "gemini-2.0-flash-001"): ("0.10", "0.025", "0.40", 8192),
    ("gemini-2.0-flash-lite", "gemini-2.0-flash-lite-001"): ("0.075", "0.075", "0.30", 8192),
    ("gemini-2.5-flash-lite",): ("0.10", "0.01", "0.40", 65536),
    ("gemini-2.5-flash",): ("0.30", "0.03", "2.50", 65536),
    ("gemini-2.5-pro",): ("1.25", "0.125", "10", 65536),
}
BUILTIN_PRICES.update(
    {
        name: {"input": i, "cached_input": c, "output": o, "max_output_tokens": m}
        for names, (i, c, o, m) in _GEMINI.items()
        for name in names
    }
)

# The models an automatic channel (a provider key in the environment, no config file) serves.
CLAUDE_MODELS: tuple[str, ...] = tuple(name for names in _CLAUDE for name in names)
GEMINI_MODELS: tuple[str, ...] = tuple(name for names in _GEMINI for name in names)
OPENAI_MODELS: tuple[str, ...] = tuple(name for name in BUILTIN_PRICES if not name.startswith(("claude-", "gemini-")))


class PriceTable:
    """Looks a model's price up: exact name, then the most specific glob pattern, then the default."""

    def __init__(self, prices: Mapping[str, Price], default: Price | None = None) -> None:
        self._exact = {name: p for name, p in prices.items() if not _is_pattern(name)}
        # Longest pattern first: "gpt-4-gizmo-*" wins over "gpt-4*".
        self._patterns = sorted(
            ((name, p) for name, p in prices.items() if _is_pattern(name)), key=lambda item: -len(item[0])
        )
        self.default = default

    def __len__(self) -> int:
        """How many names and patterns have a price."""
        return len(self._exact) + len(self._patterns)

    def lookup(self, model: str) -> Price | None:
        price = self._exact.get(model)
        if price is not None:
            return price
        for pattern, pattern_price in self._patterns:
            if fnmatch.fnmatchcase(model, pattern):
                return pattern_price
        return self.default


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def build_price_table(
    overrides: Mapping[str, Mapping[str, object]] | None = None,
    default: Mapping[str, object] | None = None,
) -> PriceTable:
    """Built-in list prices with the operator's overrides on top."""
    specs = dict(BUILTIN_PRICES)
    specs.update(overrides or {})
    prices = {}
    for name, spec in specs.items():
        try:
            prices[name] = price_from_spec(spec)
        except MoneyError as exc:
            raise MoneyError(f"price for {name!r}: {exc}") from exc
    return PriceTable(prices, price_from_spec(default) if default else None)
