"""Invoices for a billing period.

Lines, in this order:

* ``fee`` — the plan's subscription fee (left out when the period was billed in advance);
* ``usage`` — one per meter used: quantity, unit price, amount (what the usage cost, before
  credits). The unit price is the model's own price for per-unit pricing, otherwise
  amount / quantity to 12 places (display only: the amount is not quantity × unit price);
* ``credits_applied`` — one per meter that credits paid for, negative;
* ``refund_adjustment`` — money owed for credits spent from refunded top-ups (see credits.py);
* ``dispute_fee`` — fees of disputes lost since the last period invoice (disputes.py);
* ``overage`` and ``amount_due`` — summary lines: overage is the usage lines plus the credit
  lines, amount due is the sum of all non-summary lines.

Every non-summary line is rounded on its own (money.round_minor) and the summary lines are sums
of rounded lines, so the lines always add up to the amount due. Ids are deterministic:
``inv:{customer}:{period_start}`` for a period's invoice, with ``:advance`` for one billed ahead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from meterline.billing.fx import FxQuote
from meterline.billing.money import (
    EXACT,
    ZERO,
    exact,
    money_text,
    opt_decimal,
    opt_plain,
    plain,
    round_minor,
    to_decimal,
)
from meterline.billing.money import unit_price as divide_unit_price
from meterline.billing.periods import Period

# commitment: a committed quantity of a meter billed in advance (advance.py).
LineKind = Literal[
    "fee",
    "usage",
    "commitment",
    "credits_applied",
    "refund_adjustment",
    "dispute_fee",
    "overage",
    "amount_due",
]
SUMMARY_KINDS: frozenset[str] = frozenset({"overage", "amount_due"})
InvoiceKind = Literal["period", "advance"]


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    invoice_id: str
    customer_id: str
    period_start: int
    period_end: int
    line_no: int
    kind: LineKind
    meter: str
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal

    def to_dict(self, currency: str | None = None) -> dict[str, Any]:
        """Decimals in plain notation (money.plain); with ``currency``, the amount keeps its
        minor unit's digits (money.money_text). The values are exact either way."""
        amount = plain(self.amount) if currency is None else money_text(self.amount, currency)
        return {
            "invoice_id": self.invoice_id,
            "customer_id": self.customer_id,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "line_no": self.line_no,
            "kind": self.kind,
            "meter": self.meter,
            "quantity": opt_plain(self.quantity),
            "unit_price": opt_plain(self.unit_price),
            "amount": amount,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InvoiceLine:
        return cls(
            data["invoice_id"],
            data["customer_id"],
            int(data["period_start"]),
            int(data["period_end"]),
            int(data["line_no"]),
            data["kind"],
            data["meter"],
            opt_decimal(data["quantity"]),
            opt_decimal(data["unit_price"]),
            to_decimal(data["amount"]),
        )


@dataclass(frozen=True, slots=True)
class MeterCharge:
    """One meter's period totals, exact."""

    meter: str
    quantity: Decimal
    amount: Decimal
    credits: Decimal
    unit_price: Decimal | None = None  # the model's own unit price, when it has one


@dataclass(frozen=True, slots=True)
class Invoice:
    """Immutable: a payment replaces the account's invoice with an updated copy, so an invoice
    already handed out in ``Effects`` never changes under its publisher."""

    invoice_id: str
    customer_id: str
    currency: str
    kind: InvoiceKind
    period_start: int
    period_end: int
    issued_at: int
    lines: tuple[InvoiceLine, ...]
    amount_due: Decimal
    amount_paid: Decimal = ZERO
    # A payment of it failed while it was unpaid (invoice_payments.py); shown while unpaid.
    past_due: bool = False
    # The method of the last successful payment that named one (a customer portal shows it).
    payment_method_id: str | None = None
    payment_method_name: str | None = None
    # Invoiced in the customer's own currency (fx.py): the rate used; None: the plan's currency.
    fx: FxQuote | None = None

    @property
    def remaining(self) -> Decimal:
        """Still to pay (negative only in a state written before overpayments became credit)."""
        return EXACT.subtract(self.amount_due, self.amount_paid)

    @property
    def status(self) -> str:
        if self.remaining <= 0:
            return "paid"
        if self.past_due:
            return "past_due"
        return "partially_paid" if self.amount_paid > 0 else "open"

    def line(self, kind: LineKind, meter: str = "") -> InvoiceLine:
        return next(x for x in self.lines if x.kind == kind and x.meter == meter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "invoice_id": self.invoice_id,
            "customer_id": self.customer_id,
            "currency": self.currency,
            "kind": self.kind,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "issued_at": self.issued_at,
            "lines": [x.to_dict(self.currency) for x in self.lines],
            "amount_due": money_text(self.amount_due, self.currency),
            "amount_paid": money_text(self.amount_paid, self.currency),
            "remaining": money_text(self.remaining, self.currency),
            "status": self.status,
            **self._method(),
            **self._fx(),
        }

    def _fx(self) -> dict[str, Any]:
        """The rate it was converted with, left out for an invoice in the plan's currency."""
        if self.fx is None:
            return {}
        return {
            "plan_currency": self.fx.base,
            "fx_rate": plain(self.fx.rate),
            "fx_rate_effective_from": self.fx.effective_from,
        }

    def _method(self) -> dict[str, str]:
        """The payment method, left out while unknown (the dict keeps its older shape)."""
        out = {}
        if self.payment_method_id is not None:
            out["payment_method_id"] = self.payment_method_id
        if self.payment_method_name is not None:
            out["payment_method_name"] = self.payment_method_name
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Invoice:
        return cls(
            data["invoice_id"],
            data["customer_id"],
            data["currency"],
            data["kind"],
            int(data["period_start"]),
            int(data["period_end"]),
            int(data["issued_at"]),
            tuple(InvoiceLine.from_dict(x) for x in data["lines"]),
            to_decimal(data["amount_due"]),
            to_decimal(data.get("amount_paid", "0")),
            data.get("status") == "past_due" or bool(data.get("past_due")),
            data.get("payment_method_id"),
            data.get("payment_method_name"),
            None
            if data.get("fx_rate") is None
            else FxQuote(
                data["plan_currency"],
                data["currency"],
                to_decimal(data["fx_rate"]),
                int(data["fx_rate_effective_from"]),
            ),
        )


def invoice_id(customer_id: str, period: Period, kind: InvoiceKind = "period") -> str:
    base = f"inv:{customer_id}:{period.start}"
    return base if kind == "period" else f"{base}:advance"


@dataclass(slots=True)
class _Lines:
    invoice_id: str
    customer_id: str
    period: Period
    rows: list[InvoiceLine] = field(default_factory=list)

    def add(
        self,
        kind: LineKind,
        amount: Decimal,
        meter: str = "",
        quantity: Decimal | None = None,
        price: Decimal | None = None,
    ) -> Decimal:
        self.rows.append(
            InvoiceLine(
                self.invoice_id,
                self.customer_id,
                self.period.start,
                self.period.end,
                len(self.rows) + 1,
                kind,
                meter,
                quantity,
                price,
                amount,
            )
        )
        return amount


@exact
def build_invoice(
    customer_id: str,
    currency: str,
    period: Period,
    issued_at: int,
    *,
    fee: Decimal | None,
    charges: Iterable[MeterCharge] = (),
    adjustment: Decimal = ZERO,
    dispute_fees: Decimal = ZERO,
    kind: InvoiceKind = "period",
    fx: FxQuote | None = None,
) -> Invoice:
    """Amounts are in the plan's ``currency``; with ``fx`` each line is converted exactly and
    then rounded in the invoice currency (fx.py), so amount due is still the sum of the lines."""
    inv_id = invoice_id(customer_id, period, kind)
    out = _Lines(inv_id, customer_id, period)
    shown = currency if fx is None else fx.quote

    def conv(amount: Decimal) -> Decimal:
        return amount if fx is None else fx.convert(amount)

    def money(amount: Decimal) -> Decimal:
        return round_minor(conv(amount), shown)

    by_meter = sorted(charges, key=lambda c: c.meter)
    charged = ZERO
    if fee is not None and fee > 0:
        charged += out.add("fee", money(fee), quantity=Decimal(1), price=conv(fee))
    overage = ZERO
    for c in by_meter:
        if c.quantity == 0 and c.amount == 0:
            continue
        price = (
            c.unit_price if c.unit_price is not None else divide_unit_price(c.amount, c.quantity)
        )
        overage += out.add("usage", money(c.amount), c.meter, c.quantity, conv(price))
    for c in by_meter:
        if c.credits != 0:
            overage += out.add("credits_applied", money(-c.credits), c.meter)
    charged += overage
    if adjustment != 0:
        charged += out.add("refund_adjustment", money(adjustment))
    if dispute_fees != 0:
        charged += out.add("dispute_fee", money(dispute_fees))
    out.add("overage", overage)
    out.add("amount_due", charged)
    return Invoice(
        inv_id,
        customer_id,
        shown,
        kind,
        period.start,
        period.end,
        issued_at,
        tuple(out.rows),
        charged,
        fx=fx,
    )
