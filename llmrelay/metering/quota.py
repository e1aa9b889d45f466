"""Quota reservations: reserve an upper bound before the upstream call, settle the exact cost after.

While a request is in flight its bound is held in `reserved_nano`, so concurrent requests on one key can
never together spend more than the key has. Settlement charges the cost the upstream reported, but never
more than the reservation: what an upstream reports beyond it (a reply longer than max_tokens, a bound that
fell short) is returned as overrun, recorded and counted, and not charged. So no key goes below zero
whatever an upstream reports. This ledger keeps the reservations in process, which is exact for one
gateway process; a shared (Redis) ledger with the same methods serves several nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from llmrelay.metering.pricing import Price, Usage
from llmrelay.store.cache import KeyState


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one request settled: what the key was charged, and the reported cost beyond the reservation."""

    charged_nano: int
    overrun_nano: int


class QuotaLedger:
    async def reserve(self, key: KeyState, amount_nano: int) -> bool:
        """Hold `amount_nano` of the key's quota; False when what is left cannot cover it."""
        if amount_nano < 0:
            raise ValueError("a reservation cannot be negative")
        if key.quota_nano is not None and key.quota_nano - key.used_nano - key.reserved_nano < amount_nano:
            return False
        key.reserved_nano += amount_nano
        return True

    async def settle(self, key: KeyState, reserved_nano: int, cost_nano: int) -> Settlement:
        """Release the reservation and charge the reported cost, at most the reservation (0 refunds it all);
        counts one request. The part of the cost beyond the reservation is returned as overrun."""
        if cost_nano < 0:
            raise ValueError("a cost cannot be negative")
        charged = min(cost_nano, reserved_nano)
        key.reserved_nano -= reserved_nano
        key.used_nano += charged
        key.request_count += 1
        return Settlement(charged, cost_nano - charged)

    def available_nano(self, key: KeyState) -> int | None:
        """What a new reservation may take now; None when the key is unlimited."""
        if key.quota_nano is None:
            return None
        return key.quota_nano - key.used_nano - key.reserved_nano


def plan_reservation(
    price: Price, prompt_tokens: int, requested_output: int | None, choices: int, available_nano: int | None
) -> tuple[int, int | None]:
    """How much to reserve, and an output cap to impose (or None).

    With an explicit max_tokens the reservation covers exactly that. Without one it covers the model's
    longest reply; if the key cannot afford that but can afford some reply, the reply is capped at what it
    can afford (the cap is sent upstream), so a small balance is neither refused nor overspent.
    """
    output = requested_output if requested_output is not None else price.max_output_tokens
    reserve = price.cost_nano(bound_usage(price, prompt_tokens, output * choices))
    if available_nano is None or reserve <= available_nano or requested_output is not None:
        return reserve, None
    per_token = price.output * choices
    if per_token <= 0:
        return reserve, None
    spare = Decimal(available_nano) - price.cost_exact(bound_usage(price, prompt_tokens, 0))
    affordable = int(spare // per_token) if spare > 0 else 0
    if affordable < 1:
        return reserve, None  # cannot afford even one token: the reservation fails with a clear error
    cap = min(affordable, output)
    return price.cost_nano(bound_usage(price, prompt_tokens, cap * choices)), cap


def bound_usage(price: Price, prompt_tokens: int, output_tokens: int) -> Usage:
    """The costliest usage of this size: every prompt token is assumed billed at the dearest prompt rate the
    price has (a cache write costs more than plain input at Claude; an operator may price cache reads above
    input), so the bound holds whatever the upstream reads from or writes to a cache."""
    dearest = max(price.input, price.cached_input, price.cache_write)
    if dearest == price.input:
        return Usage(prompt_tokens, output_tokens)
    if dearest == price.cache_write:
        return Usage(prompt_tokens, output_tokens, cache_write_tokens=prompt_tokens)
    return Usage(prompt_tokens, output_tokens, cached_tokens=prompt_tokens)
