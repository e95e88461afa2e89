"""Exact decimal arithmetic shared by the metering modules.

The default decimal context keeps 28 significant digits and rounds silently, so a long sum or a
price × token product could lose a cent without anyone noticing. Every billing-relevant operation
goes through ``EXACT`` instead: wide enough for any Decimal(38, 12) arithmetic we do, and it
raises ``decimal.Inexact`` rather than rounding.
"""

from __future__ import annotations

from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import Any

# 76 digits holds the product of two Decimal(38, 12) values without rounding.
EXACT = Context(prec=76, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])

ZERO = Decimal(0)
ONE = Decimal(1)

# ClickHouse stores quantities as Decimal(38, 12): a value that does not fit would fail the sink
# insert and stall the pipeline, so it is rejected at the edge instead (and goes to the DLQ).
STORAGE_SCALE = 12
STORAGE_INT_DIGITS = 38 - STORAGE_SCALE
_QUANTUM = Decimal(1).scaleb(-STORAGE_SCALE)


class DecimalValueError(ValueError):
    """A value that is not an exact, finite decimal (or does not fit storage)."""


def to_decimal(raw: Any, what: str = "value") -> Decimal:
    """Parse an exact decimal from Decimal, int or str; floats are refused, not converted.

    A float here means a JSON decoder ran without ``parse_float=Decimal``; converting it would
    bill its binary approximation, so the event is rejected with a reason instead.
    """
    kind = type(raw)
    if kind is Decimal:
        value = raw
    elif kind is int:
        value = Decimal(raw)
    elif kind is str:
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise DecimalValueError(f"{what} {raw!r} is not a decimal number") from None
    elif kind is float:
        raise DecimalValueError(
            f"{what} {raw!r} is a binary float; send an exact decimal (string or JSON number "
            "decoded as Decimal)"
        )
    else:
        raise DecimalValueError(f"{what} {raw!r} ({kind.__name__}) is not a decimal number")
    if not value.is_finite():
        raise DecimalValueError(f"{what} {raw!r} is not a finite number")
    return value


def to_storable_decimal(raw: Any, what: str = "value") -> Decimal:
    """``to_decimal`` plus the Decimal(38, 12) storage bounds."""
    value = to_decimal(raw, what)
    if value.adjusted() >= STORAGE_INT_DIGITS:
        raise DecimalValueError(
            f"{what} {raw!r} is too large (more than {STORAGE_INT_DIGITS} integer digits)"
        )
    if value.as_tuple().exponent < -STORAGE_SCALE:  # type: ignore[operator]
        try:
            # Trailing zeros beyond the scale are harmless; real digits there are not.
            value = value.quantize(_QUANTUM, context=EXACT)
        except Inexact:
            raise DecimalValueError(
                f"{what} {raw!r} has more than {STORAGE_SCALE} decimal places"
            ) from None
    return value
