"""Payments of invoices: partial and several payments, overpayment, failure, unlink and relink.

* ``succeeded`` — adds to the invoice's amount paid at most what it still owes; the excess is
  the customer's credit: paid credits of that amount (grant ``overpay:{payment_id}``, ledger
  kind ``overpayment``, so one payment can never grant twice). The invoice shows the payment
  method of the last successful payment that named one.
* ``failed`` — an ``invoice_payment_failed`` alert and, while the invoice is unpaid, the next
  step of its dunning schedule (dunning.py): a retry asked later (``retry_at`` in the alert),
  or, once the retries are used up, the invoice becomes ``past_due`` and an ``invoice_past_due``
  alert fires, once per round (its id is the cause). A failure after the same payment
  succeeded is stale and ignored; ``canceled`` changes nothing.
* ``refunded`` — refunds.py: from the overpayment credits first, then off the invoice.
* disputes — disputes.py.
* ``unlinked`` (a reconciliation fix: the payment did not pay this invoice) — the payment's part
  comes off the invoice, which reopens with the right remaining. Its overpayment credits stay
  (the money is still the customer's). A later ``succeeded`` of the same payment relinks it, to
  this invoice or another: it pays what is left of it (captured, less refunds, less what became
  credit) up to that invoice's remaining; an excess becomes credit when the payment has bought
  none yet, otherwise it is left unapplied with a ``payment_unapplied`` alert for finance.

Link changes are ordered by ``occurred_at``. ``link_at`` is the time of the payment's latest
success, unlink or relink; an unlink or a relink that did not occur after it is a re-delivery (or
older than what is known) and a ``duplicate``. So a replayed unlink can never take a payment off
twice, a replayed success never relinks it, and an unlink stamped before the success it would
undo changes nothing. A later report of a success already counted moves ``link_at`` only: the
order of outcomes then no longer decides whether the payment ends linked.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Literal

from meterline.billing.disputes import apply_invoice_dispute
from meterline.billing.dunning import end_dunning, on_declined
from meterline.billing.effects import Effects, alert
from meterline.billing.money import ZERO, exact, money_text
from meterline.billing.payment_types import (
    PaymentContext,
    PaymentOutcome,
    PaymentRecord,
    PaymentResult,
)
from meterline.billing.refunds import credit_part, publish_invoice, refund_invoice_payment


def is_later_success(o: PaymentOutcome, rec: PaymentRecord | None) -> bool:
    """A success of an invoice payment already linked, reported as occurring after its
    ``link_at``: it pays nothing again, but a later unlink must be ordered after it."""
    return (
        o.status == "succeeded"
        and rec is not None
        and rec.pays_kind == "invoice"
        and "succeeded" in rec.statuses
        and (rec.link_at is None or o.occurred_at > rec.link_at)
    )


def check_link(
    o: PaymentOutcome, rec: PaymentRecord | None, ctx: PaymentContext
) -> PaymentResult | Literal["apply"] | None:
    """The answer to an unlink or a relink ("apply": go ahead); None for any other outcome."""
    relink = o.status == "succeeded" and rec is not None and "unlinked" in rec.statuses
    if o.status != "unlinked" and not relink:
        return None
    if rec is None:
        return PaymentResult("rejected", f"unlink of unknown payment {o.payment_id}")
    if rec.pays_kind != "invoice" or o.pays_kind != "invoice":
        return PaymentResult("rejected", f"payment {o.payment_id}: only invoice payments link")
    if rec.link_at is not None and o.occurred_at <= rec.link_at:
        return PaymentResult("duplicate", "not after the payment's last link change")
    if relink:
        if o.pays_id not in ctx.invoices:
            return PaymentResult("rejected", f"relink of {o.payment_id} to unknown {o.pays_id}")
        return "apply"
    if "unlinked" in rec.statuses:
        return PaymentResult("duplicate")
    if "succeeded" not in rec.statuses:
        return PaymentResult("rejected", f"unlink of {o.payment_id}, which never succeeded")
    if o.pays_id != rec.pays_id:
        return PaymentResult("rejected", f"payment {o.payment_id} pays {rec.pays_id}")
    return "apply"


@exact
def apply_invoice(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects
) -> PaymentResult:
    result = _apply(o, rec, ctx, fx)
    # Paid off, an invoice is no longer past due and its round of dunning ends (dunning.py):
    # reopened later, it is dunned afresh. Judged on the outcome's last version of it (a lost
    # dispute gives back, then refunds: that invoice was never paid off).
    for inv in list(fx.invoices):
        if inv.remaining <= 0 and inv.invoice_id in ctx.invoices:
            end_dunning(ctx.dunning, inv)
            if inv.past_due:
                publish_invoice(ctx, fx, replace(inv, past_due=False))
    return result


def _apply(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects
) -> PaymentResult:
    if o.status == "succeeded":
        return _link(o, rec, ctx, fx)
    if o.status == "unlinked":
        if "succeeded" in rec.statuses:
            rec.statuses.remove("succeeded")  # a relink is a new success
        rec.link_at = o.occurred_at
        off, rec.applied = rec.applied, ZERO
        inv = ctx.invoices.get(rec.pays_id)
        if inv is not None:
            publish_invoice(ctx, fx, replace(inv, amount_paid=inv.amount_paid - off))
        return PaymentResult("applied")
    if o.status == "refunded":
        delta = min(o.amount, rec.captured) - rec.refunded
        return PaymentResult("applied", owed=refund_invoice_payment(o, rec, ctx, fx, delta))
    if o.status.startswith("dispute_"):
        return apply_invoice_dispute(o, rec, ctx, fx)
    if o.status == "failed":
        return _failed(o, rec, ctx, fx)
    return PaymentResult("ignored", "a canceled invoice payment changes nothing")


def _link(o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects) -> PaymentResult:
    """A success, first or after an unlink: pay the invoice, credit the excess."""
    rec.link_at = o.occurred_at
    if "succeeded" in rec.statuses:  # is_later_success: counted already, only its time moves
        return PaymentResult("duplicate", "a later report of a success already counted")
    if "unlinked" in rec.statuses:
        rec.statuses.remove("unlinked")
        rec.pays_id = o.pays_id
        available = rec.captured - max(credit_part(rec, ctx), rec.refunded)
    else:
        rec.captured = available = o.amount
    inv = ctx.invoices[o.pays_id]
    if inv.fx is not None and rec.rate is None:  # paid in the invoice's own currency (fx.py)
        rec.currency, rec.rate = inv.currency, inv.fx.rate
    to_invoice = min(available, max(inv.remaining, ZERO))
    excess: Decimal = available - to_invoice
    rec.applied = to_invoice
    inv = replace(inv, amount_paid=inv.amount_paid + to_invoice)
    if o.payment_method_id is not None or o.payment_method_name is not None:
        inv = replace(
            inv, payment_method_id=o.payment_method_id, payment_method_name=o.payment_method_name
        )
    publish_invoice(ctx, fx, inv)
    if excess <= 0:
        return PaymentResult("applied")
    if rec.grant_id is None:
        rec.grant_id = f"overpay:{o.payment_id}"
        rec.credited = excess
        fx.entries += ctx.wallet.grant(
            rec.grant_id,
            rec.credits(excess),
            ctx.now,
            priority=ctx.paid_priority,
            category="paid",
            kind="overpayment",
            ref=o.payment_id,
        )
    else:
        ref = f"{o.payment_id}:{o.occurred_at}"
        fx.alerts.append(
            alert(
                ctx.customer_id,
                "payment_unapplied",
                ctx.now,
                ref,
                invoice_id=o.pays_id,
                amount=money_text(excess, o.currency),
                payment_id=o.payment_id,
            )
        )
    return PaymentResult("applied")


def _failed(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects
) -> PaymentResult:
    if rec.captured > 0:  # the money was taken, even if unlinked since
        return PaymentResult("ignored", "failure reported after success")
    inv = ctx.invoices[rec.pays_id]
    retry_at, declines = None, 0
    if inv.remaining > 0 and not inv.past_due:
        retry_at, declines = on_declined(ctx.dunning, inv.invoice_id, ctx.retry_delays_ms, ctx.now)
    fx.alerts.append(
        alert(
            ctx.customer_id,
            "invoice_payment_failed",
            ctx.now,
            o.payment_id,
            invoice_id=inv.invoice_id,
            failure_code=o.failure_code or "",
            **({} if retry_at is None else {"retry_at": str(retry_at)}),
        )
    )
    if inv.remaining > 0 and not inv.past_due and retry_at is None:
        publish_invoice(ctx, fx, replace(inv, past_due=True))
        fx.alerts.append(
            alert(
                ctx.customer_id,
                "invoice_past_due",
                ctx.now,
                f"{inv.invoice_id}:{declines}",  # once per round of dunning
                invoice_id=inv.invoice_id,
                remaining=money_text(inv.remaining, inv.currency),
                payment_id=o.payment_id,
            )
        )
    return PaymentResult("applied")
