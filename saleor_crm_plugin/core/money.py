"""Money as ``Decimal``, never float.

Subscription payloads carry amounts as JSON floats (``45.97``), legacy ones as strings
(``"45.97"``), plugin hooks as ``Decimal``. Converting floats through ``str`` keeps the decimal
the shopper saw; Saleor stores amounts with three decimal places, so that is our precision too.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

AMOUNT_PLACES = Decimal("0.001")
ZERO = Decimal("0.000")


def to_decimal(value: object, default: Decimal | None = None) -> Decimal | None:
    if value is None or value == "":
        return default
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"Not an amount: {value!r}")
    elif isinstance(value, int | float):
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"Not an amount: {value!r}") from exc
    else:
        raise ValueError(f"Not an amount: {value!r}")
    if not result.is_finite():
        raise ValueError(f"Not an amount: {value!r}")
    return result.quantize(AMOUNT_PLACES, rounding=ROUND_HALF_UP)


def amount(value: object) -> Decimal:
    """Like ``to_decimal`` but a missing amount is zero."""
    result = to_decimal(value, ZERO)
    assert result is not None
    return result
