"""Exact money: every amount inside llmrelay is an integer count of nano-dollars (1e-9 USD).

Integers add and compare exactly and fit a BIGINT column (9.2e18 nano = $9.2 billion). Decimal is used
only at the edges, to read operator input ("5.25") and to print amounts for humans and JSON.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

NANO_PER_USD = 1_000_000_000
# Amounts are stored in signed 64-bit columns.
MAX_NANO = 2**63 - 1


class MoneyError(ValueError):
    """An amount that is not a finite, well-formed decimal number."""


def to_decimal(value: object) -> Decimal:
    """Read a price or amount from config/CLI/JSON input without ever going through binary floats."""
    if isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    if isinstance(value, float):
        value = repr(value)  # shortest round-trip text: 0.075 stays "0.075"
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return amount


def usd_to_nano(value: object) -> int:
    """Convert a USD amount to nano-dollars, rounding half up once, at the ninth decimal."""
    amount = to_decimal(value)
    try:
        with localcontext() as context:
            context.prec = len(amount.as_tuple().digits) + 12  # enough digits that scaling never rounds
            nano = int((amount * NANO_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except ArithmeticError as exc:  # exponents too large for any real amount
        raise MoneyError(f"amount out of range: {value!r}") from exc
    if abs(nano) > MAX_NANO:
        raise MoneyError(f"amount out of range: {value!r}")
    return nano


def nano_to_usd(nano: int) -> Decimal:
    """Nano-dollars as an exact Decimal USD amount (exact division keeps no needless trailing zeros)."""
    return Decimal(nano) / NANO_PER_USD


def format_usd(nano: int | None, places: int = 6) -> str:
    """Human text for an amount; None means unlimited."""
    if nano is None:
        return "unlimited"
    quantum = Decimal(1).scaleb(-places)
    # Fixed-point ("f"): str() of a small Decimal would switch to exponent notation ($1.00E-7).
    return f"${(Decimal(nano) / NANO_PER_USD).quantize(quantum, rounding=ROUND_HALF_UP):f}"
