"""Decimal helpers and the rounding rule.

Rounding rule (the one place money is rounded):

* Usage amounts, credit grants, debits and balances are kept exact, never rounded: a credit
  balance of 0.0000035 is real and is burned exactly.
* Only invoice lines are rounded, to the currency's minor unit, ROUND_HALF_EVEN (banker's
  rounding, so a long run of half-cent lines does not drift upwards), each line on its own.
* An invoice's amount due is the sum of its rounded lines, so the lines always add up to the
  total a customer is asked to pay; the exact total may differ from it by up to half a minor unit
  per line, and that difference is not carried into the next period.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    getcontext,
    localcontext,
)
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from meterline.metering.decimals import EXACT, ZERO

# One exact context for metering and billing: 76 digits hold a product of two Decimal(38, 12)
# values, and trapping Inexact turns any silent rounding into an error instead of a lost cent.
# For the few deliberate roundings (invoice lines, displayed unit prices).
ROUNDING = Context(prec=76, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero])

# ISO 4217 minor units of the currencies we bill in; an unknown code is an error, because guessing
# two decimals for a zero-decimal currency would bill a JPY customer 100× too much.
# fmt: off
MINOR_UNITS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2, "SEK": 2, "NOK": 2,
    "DKK": 2, "PLN": 2, "CZK": 2, "INR": 2, "BRL": 2, "MXN": 2, "SGD": 2, "HKD": 2, "CNY": 2,
    "ZAR": 2, "ILS": 2, "TRY": 2,
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3,
}
# fmt: on

UNIT_PRICE_PLACES = 12  # ClickHouse Decimal(38, 12): displayed unit prices keep sub-cent detail

P = ParamSpec("P")
R = TypeVar("R")


class UnknownCurrency(ValueError):
    pass


_current_exact: ContextVar[Context | None] = ContextVar("meterline_exact", default=None)


def exact(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` under the exact context (see ``EXACT``)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        # Already inside an exact call (an account method calling the wallet calling pricing,
        # several times per event): entering the context again would only cost a copy.
        if getcontext() is _current_exact.get():
            return fn(*args, **kwargs)
        with localcontext(EXACT) as ctx:
            token = _current_exact.set(ctx)
            try:
                return fn(*args, **kwargs)
            finally:
                _current_exact.reset(token)

    return wrapper


def minor_units(currency: str) -> int:
    try:
        return MINOR_UNITS[currency.upper()]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {currency!r}") from None


def round_minor(amount: Decimal, currency: str) -> Decimal:
    """Round one invoice line to the currency's minor unit, ROUND_HALF_EVEN (see module doc)."""
    quantum = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(quantum, context=ROUNDING)


def unit_price(amount: Decimal, quantity: Decimal) -> Decimal:
    """amount / quantity for display, to 12 places; 0 for no quantity."""
    if quantity == 0:
        return ZERO
    quantum = Decimal(1).scaleb(-UNIT_PRICE_PLACES)
    return ROUNDING.divide(amount, quantity).quantize(quantum, context=ROUNDING)


def to_decimal(raw: Any, what: str = "value") -> Decimal:
    """Exact decimal from Decimal, int or str; a float is refused, it is already inexact."""
    if isinstance(raw, bool | float):
        raise ValueError(f"{what} {raw!r} must be an exact decimal (string or int), not float")
    if isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, int | str):
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"{what} {raw!r} is not a decimal number") from None
    else:
        raise ValueError(f"{what} {raw!r} is not a decimal number")
    if not value.is_finite():
        raise ValueError(f"{what} {raw!r} is not finite")
    return value


def opt_decimal(raw: Any, what: str = "value") -> Decimal | None:
    return None if raw is None else to_decimal(raw, what)


def opt_str(value: Decimal | None) -> str | None:
    """The exact string a Decimal prints as (its scale kept): for the state, where a value
    must decode to exactly what was encoded. Outputs use ``plain`` and ``money_text``."""
    return None if value is None else str(value)


# -- decimals as outputs show them -------------------------------------------------------------
# What leaves billing (the meterline.invoices records, the API, ClickHouse's text views) shows a
# value, not how it was computed: Decimal's own str() keeps its scale and switches to exponent
# notation (a 12-place zero prints "0E-12", a sum of Decimal(38, 12) quantities
# "120.000000000000"). These print the same value in plain notation; they drop only zeros, so
# parsing the text back gives an equal Decimal.


def plain(value: Decimal) -> str:
    """No exponent, no trailing fractional zeros, no negative zero: 0E-12 -> "0",
    120.000000000000 -> "120", 1.2E+2 -> "120", 0.000000000001 -> "0.000000000001"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def opt_plain(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


def money_text(value: Decimal, currency: str) -> str:
    """An amount of ``currency`` with its minor unit's digits (6 -> "6.00" in USD, "6" in JPY,
    "6.000" in KWD), and more only when the value has them: it is never rounded here."""
    text = plain(value)
    digits = minor_units(currency)
    whole, _, fraction = text.partition(".")
    if len(fraction) >= digits:
        return text
    return f"{whole}.{fraction.ljust(digits, '0')}"
