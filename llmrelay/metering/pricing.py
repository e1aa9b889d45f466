"""Price table: what one unit of each model costs, in exact nano-dollars.

Prices are written the way providers publish them (USD per 1M tokens) and held as Decimal nano-dollars per
token, so $0.075/M is exactly 75 nano per token; a request's cost is summed in Decimal and rounded once,
half up, to whole nano-dollars.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from llmrelay.metering.money import MoneyError, to_decimal

_NANO_PER_TOKEN_PER_USD_PER_MILLION = Decimal(1000)  # 1e9 nano/USD ÷ 1e6 tokens


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request, in OpenAI's convention: prompt_tokens includes cached_tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Price:
    """Nano-dollars per token for input, cached input and output; max_output_tokens bounds reservations."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    max_output_tokens: int = 4096
    per_request: Decimal = Decimal(0)

    def cost_exact(self, usage: Usage) -> Decimal:
        """Cost in nano-dollars before rounding; cached prompt tokens are billed at the cached rate only."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        return (
            (usage.prompt_tokens - cached) * self.input
            + cached * self.cached_input
            + usage.completion_tokens * self.output
            + self.per_request
        )

    def cost_nano(self, usage: Usage) -> int:
        """The billed cost: the exact cost rounded once, half up, to whole nano-dollars."""
        return int(self.cost_exact(usage).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def price_from_usd_per_million(spec: Mapping[str, object]) -> Price:
    """Build a Price from operator-facing numbers: USD per 1M tokens (and USD per request)."""
    unknown = set(spec) - {"input", "output", "cached_input", "max_output_tokens", "per_request"}
    if unknown:
        raise MoneyError(f"unknown price field(s): {', '.join(sorted(unknown))}")
    if "input" not in spec or "output" not in spec:
        raise MoneyError("a price needs at least 'input' and 'output' (USD per 1M tokens)")
    rate = _NANO_PER_TOKEN_PER_USD_PER_MILLION
    input_rate = to_decimal(spec["input"]) * rate
    values = {
        "input": input_rate,
        "output": to_decimal(spec["output"]) * rate,
        "cached_input": to_decimal(spec["cached_input"]) * rate if "cached_input" in spec else input_rate,
        "per_request": to_decimal(spec.get("per_request", 0)) * 1_000_000_000,
    }
    if any(v < 0 for v in values.values()):
        raise MoneyError("prices cannot be negative")
    max_output = spec.get("max_output_tokens", 4096)
    if not isinstance(max_output, int) or isinstance(max_output, bool) or max_output <= 0:
        raise MoneyError("max_output_tokens must be a positive integer")
    return Price(max_output_tokens=max_output, **values)


# Public list prices, USD per 1M tokens, as the providers publish them (standard tier, short context).
BUILTIN_PRICES_USD_PER_MILLION: dict[str, dict[str, object]] = {
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
    "claude-3-opus-latest": {"input": "15", "cached_input": "1.50", "output": "75", "max_output_tokens": 4096},
    "claude-3-5-sonnet-latest": {
        "input": "3",
        "cached_input": "0.30",
        "output": "15",
        "max_output_tokens": 8192,
    },
    "claude-3-5-haiku-latest": {
        "input": "0.80",
        "cached_input": "0.08",
        "output": "4",
        "max_output_tokens": 8192,
    },
    "gemini-1.5-flash-latest": {
        "input": "0.075",
        "cached_input": "0.01875",
        "output": "0.30",
        "max_output_tokens": 8192,
    },
    "gemini-1.5-pro-latest": {
        "input": "1.25",
        "cached_input": "0.3125",
        "output": "5",
        "max_output_tokens": 8192,
    },
}

# The OpenAI chat models an automatic `openai` channel (OPENAI_API_KEY only) serves.
OPENAI_CHAT_MODELS: tuple[str, ...] = tuple(
    name for name in BUILTIN_PRICES_USD_PER_MILLION if name.startswith(("gpt-", "o1-"))
)


class PriceTable:
    """Looks a model's price up: exact name, then the most specific glob pattern, then the default."""

    def __init__(self, prices: Mapping[str, Price], default: Price | None = None) -> None:
        self._exact = {name: p for name, p in prices.items() if not _is_pattern(name)}
        # Longest pattern first: "gpt-4-gizmo-*" wins over "gpt-4*".
        self._patterns = sorted(
            ((name, p) for name, p in prices.items() if _is_pattern(name)), key=lambda item: -len(item[0])
        )
        self.default = default

    def lookup(self, model: str) -> Price | None:
        price = self._exact.get(model)
        if price is not None:
            return price
        for pattern, pattern_price in self._patterns:
            if fnmatch.fnmatchcase(model, pattern):
                return pattern_price
        return self.default

    def has_explicit(self, model: str) -> bool:
        """True when the model is priced by name or pattern (not just by the operator's default)."""
        return model in self._exact or any(fnmatch.fnmatchcase(model, p) for p, _ in self._patterns)


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def build_price_table(
    overrides: Mapping[str, Mapping[str, object]] | None = None,
    default: Mapping[str, object] | None = None,
) -> PriceTable:
    """Built-in list prices with the operator's overrides on top."""
    specs = dict(BUILTIN_PRICES_USD_PER_MILLION)
    specs.update(overrides or {})
    prices = {}
    for name, spec in specs.items():
        try:
            prices[name] = price_from_usd_per_million(spec)
        except MoneyError as exc:
            raise MoneyError(f"price for {name!r}: {exc}") from exc
    return PriceTable(prices, price_from_usd_per_million(default) if default else None)
