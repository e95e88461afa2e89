"""Billing in advance: rate-card items of future periods invoiced now, and what that leaves for
those periods' own invoices.

A request names a *span* of future periods: the one starting at ``period_start`` (default the
next), then ``periods`` of them, or every period starting before ``until`` (a date; the last
period is then partial when ``until`` falls inside it). And its *items*: the plan's fee, and
committed quantities of meters at their rate-card price (``MeterItem``: e.g. 1000 api_calls a
period, prepaid).

Rules (README "Billing"; meterline/billing/README.md):

* Fee of a whole period: the plan's fee, rounded as every line is. That period's invoice then
  has no fee line.
* Fee of a partial period (covering [start, until)): fee × covered / period length, in
  milliseconds of the period (a DST month has its true length), rounded half-even to the minor
  unit. That period's invoice bills the rest: its own fee rounded, less what was billed ahead,
  never below zero; so the two lines add up to the fee.
* A committed quantity Q of a meter is billed at price(Q) for each period of the span, whole or
  partial (a quantity allowance, not a time one, so it is not prorated). In that period usage
  of the meter costs price(q) - price(min(q, Q)): nothing up to Q, then what the units beyond
  Q add. Over the period the customer pays max(price(Q), price(q)) for monotone price models,
  and each unit once.
* A (period, item) is billed ahead at most once: a request naming one already billed ahead is
  rejected. The invoice id is deterministic per span (``advance_invoice_id``), so the same
  request again is a duplicate.
* At most ``MAX_ADVANCE_PERIODS`` periods per span, so the state stays bounded.

The state keeps, per future (and the open) period, the fee amount billed ahead for a partial
period and the committed quantities (``Prebilled``); periods already closed are dropped.
Whole-period fees stay in ``AccountData.advance_billed`` as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

from meterline.billing.catalog import Plan
from meterline.billing.fx import FxQuote
from meterline.billing.invoice import Invoice, InvoiceLine, invoice_id
from meterline.billing.money import ROUNDING, ZERO, exact, round_minor, to_decimal
from meterline.billing.money import unit_price as divide_unit_price
from meterline.billing.periods import BillingAnchor, Period, next_period
from meterline.billing.pricing import PriceModel, display_unit_price, price

MAX_ADVANCE_PERIODS = 36
FRACTION_PLACES = 6  # the covered share shown as a partial fee line's quantity (display only)


class ItemKind(Enum):
    FEE = "fee"
    METER = "meter"


@dataclass(frozen=True, slots=True)
class AdvanceItem:
    """What to bill ahead: the fee, or ``quantity`` of ``meter`` at its rate-card price."""

    kind: ItemKind
    meter: str = ""
    quantity: Decimal = ZERO

    @classmethod
    def fee(cls) -> AdvanceItem:
        return cls(ItemKind.FEE)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdvanceItem:
        kind = ItemKind(data.get("kind", "fee"))
        if kind is ItemKind.FEE:
            return cls.fee()
        quantity = to_decimal(data["quantity"], "committed quantity")
        if quantity <= 0:
            raise ValueError("a committed quantity must be positive")
        return cls(kind, str(data["meter"]), quantity)


DEFAULT_ITEMS: tuple[AdvanceItem, ...] = (AdvanceItem.fee(),)


@dataclass(frozen=True, slots=True)
class Covered:
    """One period of a span and the part of it the span covers: [period.start, end)."""

    period: Period
    end: int

    @property
    def whole(self) -> bool:
        return self.end == self.period.end

    def share(self, amount: Decimal) -> Decimal:
        """``amount`` × covered / length, exact where it can be, else to 76 digits."""
        if self.whole:
            return amount
        covered, length = self.end - self.period.start, self.period.end - self.period.start
        return ROUNDING.divide(amount * covered, length)


@dataclass(slots=True)
class Prebilled:
    """What advance invoices billed for periods not yet closed (see the module doc)."""

    partial_fee: dict[int, Decimal] = field(default_factory=dict)  # period start -> billed
    commitments: dict[int, dict[str, Decimal]] = field(default_factory=dict)

    def committed(self, period_start: int, meter: str) -> Decimal:
        return self.commitments.get(period_start, {}).get(meter, ZERO)

    def record(
        self, periods: Sequence[Covered], items: Sequence[AdvanceItem], inv: Invoice
    ) -> list[int]:
        """Remember what ``inv`` billed ahead; returns the starts of the periods whose whole
        fee it billed (``AccountData.advance_billed``, where they always were)."""
        whole: list[int] = []
        for c in periods:
            start = c.period.start
            for item in items:
                if item.kind is ItemKind.METER:
                    self.commitments.setdefault(start, {})[item.meter] = item.quantity
                elif c.whole:
                    whole.append(start)
                else:
                    fee = [x for x in inv.lines if x.kind == "fee" and x.period_start == start]
                    if fee:  # none for a plan without a fee
                        self.partial_fee[start] = fee[0].amount
        return whole

    def drop_before(self, period_start: int) -> None:
        """Forget periods that closed: their invoices are out."""
        self.partial_fee = {s: a for s, a in self.partial_fee.items() if s >= period_start}
        self.commitments = {s: c for s, c in self.commitments.items() if s >= period_start}

    def to_dict(self) -> dict[str, Any] | None:
        """None when empty: the state then has no key, as before advance items existed."""
        if not self.partial_fee and not self.commitments:
            return None
        return {
            "fee": {str(s): str(a) for s, a in sorted(self.partial_fee.items())},
            "meters": {
                str(s): {m: str(q) for m, q in sorted(c.items())}
                for s, c in sorted(self.commitments.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Prebilled:
        if not data:
            return cls()
        return cls(
            {int(s): to_decimal(a) for s, a in data.get("fee", {}).items()},
            {
                int(s): {m: to_decimal(q) for m, q in c.items()}
                for s, c in data.get("meters", {}).items()
            },
        )


def span(
    anchor: BillingAnchor, first: Period, periods: int | None, until: int | None
) -> list[Covered]:
    """The periods from ``first``: ``periods`` whole ones, or those starting before ``until``
    (the last one cut at ``until``). Raises ValueError for an empty or too long span."""
    if until is not None and periods is not None:
        raise ValueError("give periods or until, not both")
    out: list[Covered] = []
    p = first
    if until is None:
        count = 1 if periods is None else periods
        if count < 1:
            raise ValueError("periods must be at least 1")
        if count > MAX_ADVANCE_PERIODS:
            raise ValueError(f"at most {MAX_ADVANCE_PERIODS} periods can be billed in advance")
        for _ in range(count):
            out.append(Covered(p, p.end))
            p = next_period(anchor, p)
        return out
    if until <= first.start:
        raise ValueError(f"until {until} is not after the span's start {first.start}")
    while p.start < until:
        if len(out) == MAX_ADVANCE_PERIODS:
            raise ValueError(f"at most {MAX_ADVANCE_PERIODS} periods can be billed in advance")
        out.append(Covered(p, min(p.end, until)))
        p = next_period(anchor, p)
    return out


def advance_invoice_id(customer_id: str, periods: Sequence[Covered]) -> str:
    """``inv:{customer}:{start}:advance`` for one whole period (the id it always had), with
    ``:{end}`` (the span's end, ms) for any other span."""
    first, last = periods[0], periods[-1]
    base = invoice_id(customer_id, first.period, "advance")
    return base if len(periods) == 1 and first.whole else f"{base}:{last.end}"


def check_items(plan: Plan, items: Iterable[AdvanceItem]) -> list[AdvanceItem]:
    """The items, each once; a meter item must name a meter the plan prices with a model."""
    out: list[AdvanceItem] = []
    seen: set[tuple[ItemKind, str]] = set()
    for item in items:
        key = (item.kind, item.meter)
        if key in seen:
            raise ValueError(f"{item.kind.value} {item.meter} named twice".rstrip())
        seen.add(key)
        if item.kind is ItemKind.METER:
            entry = plan.entry(item.meter)
            if entry is None or entry.model is None:
                raise ValueError(f"meter {item.meter!r} has no rate-card price on the plan")
        out.append(item)
    if not out:
        raise ValueError("nothing to bill in advance")
    return out


def conflicts(
    periods: Sequence[Covered],
    items: Sequence[AdvanceItem],
    full_fee: Iterable[int],
    prebilled: Prebilled,
) -> list[str]:
    """(period, item) pairs of the request already billed ahead, described."""
    fee_done = set(full_fee) | set(prebilled.partial_fee)
    out = []
    for c in periods:
        start = c.period.start
        for item in items:
            if item.kind is ItemKind.FEE and start in fee_done:
                out.append(f"the fee of the period starting {start}")
            elif item.kind is ItemKind.METER and prebilled.committed(start, item.meter):
                out.append(f"{item.meter} of the period starting {start}")
    return out


def billable_price(model: PriceModel, quantity: Decimal, committed: Decimal) -> Decimal:
    """What ``quantity`` used in a period costs when ``committed`` of it was prepaid."""
    if committed <= 0:
        return price(model, quantity)
    return price(model, quantity) - price(model, min(quantity, committed))


@exact
def usage_cost(model: PriceModel, before: Decimal, after: Decimal, committed: Decimal) -> Decimal:
    """What moving the period's quantity from ``before`` to ``after`` costs (negative: a
    rebate); with nothing committed, the marginal cost (pricing.py)."""
    return billable_price(model, after, committed) - billable_price(model, before, committed)


@exact
def build_advance_invoice(
    customer_id: str,
    plan: Plan,
    periods: Sequence[Covered],
    items: Sequence[AdvanceItem],
    issued_at: int,
    fx: FxQuote | None = None,
) -> Invoice:
    """One invoice for the span: per period, a fee line (prorated when partial) and a
    ``commitment`` line per meter item; then overage (zero) and amount due. Each line carries
    its own period's bounds."""
    inv_id = advance_invoice_id(customer_id, periods)
    # In the customer's currency when it has one (fx.py): converted exactly, then rounded.
    currency = plan.currency if fx is None else fx.quote

    def conv(amount: Decimal) -> Decimal:
        return amount if fx is None else fx.convert(amount)

    rows: list[InvoiceLine] = []

    def add(
        c: Covered | None,
        kind: Any,
        amount: Decimal,
        meter: str = "",
        quantity: Decimal | None = None,
        unit: Decimal | None = None,
    ) -> Decimal:
        start, end = (
            (periods[0].period.start, periods[-1].end)
            if c is None
            else (
                c.period.start,
                c.end,
            )
        )
        rows.append(
            InvoiceLine(
                inv_id, customer_id, start, end, len(rows) + 1, kind, meter, quantity, unit, amount
            )
        )
        return amount

    due = ZERO
    for c in periods:
        for item in items:
            if item.kind is ItemKind.FEE:
                if plan.fee > 0:
                    share = Decimal(1) if c.whole else _fraction(c)
                    due += add(
                        c,
                        "fee",
                        round_minor(conv(c.share(plan.fee)), currency),
                        "",
                        share,
                        conv(plan.fee),
                    )
                continue
            entry = plan.entry(item.meter)
            assert entry is not None and entry.model is not None
            amount = price(entry.model, item.quantity)
            unit = display_unit_price(entry.model)
            if unit is None:
                unit = divide_unit_price(amount, item.quantity)
            due += add(
                c,
                "commitment",
                round_minor(conv(amount), currency),
                item.meter,
                item.quantity,
                conv(unit),
            )
    add(None, "overage", ZERO)
    add(None, "amount_due", due)
    return Invoice(
        inv_id,
        customer_id,
        currency,
        "advance",
        periods[0].period.start,
        periods[-1].end,
        issued_at,
        tuple(rows),
        due,
        fx=fx,
    )


def _fraction(c: Covered) -> Decimal:
    quantum = Decimal(1).scaleb(-FRACTION_PLACES)
    return c.share(Decimal(1)).quantize(quantum, context=ROUNDING)


def remaining_fee(fee: Decimal, billed_ahead: Decimal | None, currency: str) -> Decimal:
    """A partially pre-billed period's own fee: the fee rounded, less what was billed ahead,
    never below zero (a fee lowered since is not refunded here)."""
    if billed_ahead is None:
        return fee
    return max(ZERO, round_minor(fee, currency) - billed_ahead)
