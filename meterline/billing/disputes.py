"""Disputes (chargebacks) of a payment that succeeded: ``dispute_opened``, then ``dispute_won``
or ``dispute_lost``. One dispute per payment; each status applies once ((payment_id, status)).

The disputed amount is the outcome's amount, at most what was paid and not refunded.

* ``dispute_opened`` — a top-up: its grant's unspent credits, up to the amount, stop being
  spendable (a ``dispute_hold`` entry takes them out of the balance; the spent part is not
  touched yet). An invoice payment: like a refund, from its overpayment credits first (held, not
  taken back), then off the invoice, which reopens.
* ``dispute_won`` — all of that is undone: a ``dispute_release`` entry gives the held credits
  back and the invoice gets its amount paid back. Without an open dispute it changes nothing.
* ``dispute_lost`` — the hold is undone as if won, then the disputed amount is refunded
  through the refund path (refunds.py): unspent credits taken back, the spent part owed on the
  next invoice, the invoice's part off it. A lost dispute counts as refunded: later refund
  figures of the payment are taken as including it. Lost with no dispute opened: the outcome's
  amount is refunded the same way. An outcome's ``dispute_fee`` (optional) is billed once, as a
  ``dispute_fee`` line of the next period invoice (the lost outcome applies once).

The ledger identity holds throughout: the held credits leave ``remaining`` with an entry and
come back with one, so the entries still sum to the balance and to the grants' remaining.
"""

from __future__ import annotations

from decimal import Decimal

from meterline.billing.effects import Effects
from meterline.billing.money import ZERO, exact
from meterline.billing.payment_types import (
    PaymentContext,
    PaymentOutcome,
    PaymentRecord,
    PaymentResult,
)
from meterline.billing.refunds import (
    change_paid,
    credit_part,
    refund_invoice_payment,
    reverse_credits,
)


def _disputable(o: PaymentOutcome, rec: PaymentRecord) -> Decimal:
    return min(o.amount, rec.captured - rec.refunded)


def _hold(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects, x: Decimal
) -> None:
    if rec.grant_id is not None and x > 0:
        held = rec.credits(x)
        fx.entries += ctx.wallet.hold(rec.grant_id, held, ctx.now, ref=f"{o.payment_id}:dispute")


def _release(o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects) -> None:
    if rec.grant_id is not None:
        fx.entries += ctx.wallet.release(rec.grant_id, ctx.now, ref=f"{o.payment_id}:dispute")


def _restore_invoice(rec: PaymentRecord, ctx: PaymentContext, fx: Effects) -> None:
    """Give the invoice back what the dispute took off it, if the payment still pays it."""
    off, rec.dispute_off = rec.dispute_off, ZERO
    if off > 0 and "unlinked" not in rec.statuses and rec.pays_id in ctx.invoices:
        rec.applied += off
        change_paid(ctx, fx, rec.pays_id, off)


def _won(opened: Decimal) -> PaymentResult:
    return PaymentResult(
        "applied" if opened > 0 else "ignored", "" if opened else "no dispute open"
    )


def _lost_amount(o: PaymentOutcome, rec: PaymentRecord, opened: Decimal) -> Decimal:
    # A refund while the dispute was open may have taken part of it already.
    return min(opened, rec.captured - rec.refunded) if opened > 0 else _disputable(o, rec)


@exact
def apply_topup_dispute(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects
) -> PaymentResult:
    if o.status == "dispute_opened":
        rec.disputed = _disputable(o, rec)
        _hold(o, rec, ctx, fx, rec.disputed)
        return PaymentResult("applied")
    opened, rec.disputed = rec.disputed, ZERO
    _release(o, rec, ctx, fx)
    if o.status == "dispute_won":
        return _won(opened)
    x = _lost_amount(o, rec, opened)
    owed = reverse_credits(o, rec, ctx, fx, x)
    return PaymentResult("applied", owed=owed, dispute_fee=o.dispute_fee or ZERO)


@exact
def apply_invoice_dispute(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects
) -> PaymentResult:
    if o.status == "dispute_opened":
        x = rec.disputed = _disputable(o, rec)
        c = credit_part(rec, ctx)
        from_credit = min(x, max(c - rec.refunded, ZERO))
        _hold(o, rec, ctx, fx, from_credit)
        off = min(x - from_credit, rec.applied)
        if off > 0 and "unlinked" not in rec.statuses and rec.pays_id in ctx.invoices:
            rec.applied -= off
            rec.dispute_off = off
            change_paid(ctx, fx, rec.pays_id, -off)
        return PaymentResult("applied")
    opened, rec.disputed = rec.disputed, ZERO
    _release(o, rec, ctx, fx)
    _restore_invoice(rec, ctx, fx)
    if o.status == "dispute_won":
        return _won(opened)
    x = _lost_amount(o, rec, opened)
    owed = refund_invoice_payment(o, rec, ctx, fx, x)
    # The fee is billed on the next period invoice, which is computed in the plan's currency.
    fee = rec.credits(o.dispute_fee) if o.dispute_fee else ZERO
    return PaymentResult("applied", owed=owed, dispute_fee=fee)
