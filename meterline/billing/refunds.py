"""Taking back the credits a payment bought: a refund, or a lost dispute, of a top-up or of an
invoice overpayment.

The rule is the wallet's (credits.py, ``reverse``): the unspent part of the grant is taken back
(a ``reversal`` entry), the part already spent is money owed, billed once on the next invoice,
with a ``refund_debt`` alert. A lost dispute goes through here too, so it is reversed exactly
as a refund of its amount would be.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from meterline.billing.effects import Effects, alert
from meterline.billing.invoice import Invoice
from meterline.billing.money import ZERO, exact, money_text
from meterline.billing.payment_types import PaymentContext, PaymentOutcome, PaymentRecord


@exact
def reverse_credits(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects, delta: Decimal
) -> Decimal:
    """Count ``delta`` more as refunded and take it back from the payment's grant; returns the
    money now owed for credits already spent."""
    before, rec.refunded = rec.refunded, rec.refunded + delta
    if rec.grant_id is None or rec.grant_id not in ctx.wallet.grants or delta <= 0:
        return ZERO
    # In another currency the cumulative figure is converted (fx.py): the reversals of one
    # payment then add up to exactly its credits, whatever the conversion rounded.
    credits = (
        rec.credits(delta) if rec.rate is None else rec.credits(rec.refunded) - rec.credits(before)
    )
    rev = ctx.wallet.reverse(rec.grant_id, credits, ctx.now, ref=o.payment_id)
    fx.entries += rev.entries
    if rev.unrecovered > 0:
        ref = f"{o.payment_id}:{rec.refunded}"
        fx.alerts.append(
            alert(
                ctx.customer_id,
                "refund_debt",
                ctx.now,
                ref,
                owed=money_text(rev.unrecovered, ctx.currency),
                payment_id=o.payment_id,
            )
        )
    return rev.unrecovered


def credit_part(rec: PaymentRecord, ctx: PaymentContext) -> Decimal:
    """What of an invoice payment became credits (its overpayment grant), in the payment's
    currency."""
    g = None if rec.grant_id is None else ctx.wallet.grants.get(rec.grant_id)
    if g is None:
        return ZERO
    return g.amount if rec.rate is None else rec.credited


@exact
def refund_invoice_payment(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects, delta: Decimal
) -> Decimal:
    """Refund ``delta`` more of an invoice payment: from the credits its overpayment bought
    first (the money that paid no invoice), then off the invoice it is linked to. Returns the
    money owed for spent credits."""
    c = credit_part(rec, ctx)
    from_credit = min(rec.refunded + delta, c) - min(rec.refunded, c)
    owed = reverse_credits(o, rec, ctx, fx, from_credit)
    rest = delta - from_credit
    rec.refunded += rest
    off = min(rest, rec.applied)
    if off > 0 and rec.pays_id in ctx.invoices:
        rec.applied -= off
        change_paid(ctx, fx, rec.pays_id, -off)
    return owed


def change_paid(ctx: PaymentContext, fx: Effects, invoice_id: str, by: Decimal) -> None:
    """Add ``by`` (signed) to an invoice's amount paid and publish the new invoice."""
    inv = ctx.invoices[invoice_id]
    publish_invoice(ctx, fx, replace(inv, amount_paid=inv.amount_paid + by))


def publish_invoice(ctx: PaymentContext, fx: Effects, inv: Invoice) -> None:
    """Keep and publish the invoice's new version. One outcome may change an invoice twice (a
    lost dispute gives back, then refunds): only its last version goes out, since the rows of
    one publication share a version in the ``invoices`` table."""
    ctx.invoices[inv.invoice_id] = inv
    fx.invoices[:] = [i for i in fx.invoices if i.invoice_id != inv.invoice_id]
    fx.invoices.append(inv)
