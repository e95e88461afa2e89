"""Exchange rates for invoicing a customer in its own currency.

Credits, balances, usage amounts and the ledger stay in the plan's currency. Only an invoice is
converted, line by line: each line's exact plan-currency amount × the rate, then rounded on its
own to the *invoice* currency's minor unit, half-even (money.round_minor: JPY 0 digits, KWD 3,
most 2); the summary lines are sums of the lines shown, so amount due is always their sum.

Which rate: the one in force at the invoice's issue time (a period invoice is issued at its
period's end, an advance invoice when it is billed): the rate of that currency pair with the
latest ``effective_from`` at or before it. The invoice records it (``FxQuote``: plan currency,
invoice currency, rate, the rate's effective time), so a rate published later never changes an
invoice already issued. No rate in force: the invoice is issued in the plan's currency, as if
the customer had none of its own (README "Billing").

Payments of such an invoice are in its currency and kept in it (amount paid, refunds, disputes).
Where one turns into credits (an overpayment) or takes credits back (a refund or a lost dispute
of that overpayment), the amount is converted back at the invoice's own rate: amount ÷ rate,
to 12 decimals (Decimal(38, 12), the ledger's scale), half-even. A partial reversal converts the
cumulative figure and takes the difference, so reversals add up to exactly the credits granted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from meterline.billing.money import EXACT, ROUNDING, minor_units, to_decimal

_CREDIT_QUANTUM = Decimal("1e-12")


@dataclass(frozen=True, slots=True)
class FxRate:
    """1 ``base`` = ``rate`` ``quote`` from ``effective_from`` (ms) on; a catalog entry."""

    base: str
    quote: str
    rate: Decimal
    effective_from: int

    def __post_init__(self) -> None:
        minor_units(self.base)  # unknown currencies fail at the catalog, not at period close
        minor_units(self.quote)
        if self.rate <= 0:
            raise ValueError("an exchange rate must be positive")

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "quote": self.quote,
            "rate": str(self.rate),
            "effective_from": self.effective_from,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FxRate:
        return cls(
            str(data["base"]).upper(),
            str(data["quote"]).upper(),
            to_decimal(data["rate"], "exchange rate"),
            int(data["effective_from"]),
        )


@dataclass(frozen=True, slots=True)
class FxQuote:
    """The rate an invoice was converted with, recorded on it."""

    base: str  # the plan's currency: what credits and the exact amounts are in
    quote: str  # the invoice's currency
    rate: Decimal
    effective_from: int

    def convert(self, amount: Decimal) -> Decimal:
        return EXACT.multiply(amount, self.rate)


def to_base(amount: Decimal, rate: Decimal) -> Decimal:
    """An amount of the invoice currency in the plan's currency, at ``rate`` (see module doc)."""
    return ROUNDING.divide(amount, rate).quantize(_CREDIT_QUANTUM, context=ROUNDING)


class FxRates:
    """Effective-dated rates per currency pair (the catalog's ``fx_rate`` entries)."""

    __slots__ = ("_pairs",)

    def __init__(self, rates: Iterable[FxRate] = ()) -> None:
        self._pairs: dict[tuple[str, str], list[FxRate]] = {}
        for r in rates:
            self.add(r)

    def add(self, rate: FxRate) -> None:
        """Adds or replaces (same pair and effective_from) one rate."""
        pair = self._pairs.setdefault((rate.base, rate.quote), [])
        keys = [r.effective_from for r in pair]
        i = bisect.bisect_left(keys, rate.effective_from)
        if i < len(pair) and pair[i].effective_from == rate.effective_from:
            pair[i] = rate
        else:
            pair.insert(i, rate)

    def quote(self, base: str, quote: str, at: int) -> FxQuote | None:
        """The rate in force at ``at``; None when there is none (or no conversion is needed)."""
        if base == quote:
            return None
        pair = self._pairs.get((base, quote), [])
        i = bisect.bisect_right([r.effective_from for r in pair], at)
        if i == 0:
            return None
        r = pair[i - 1]
        return FxQuote(base, quote, r.rate, r.effective_from)
