"""Payment outcomes from any processor, applied to a customer's credits and invoices.

Idempotency: an outcome is identified by (payment_id, status). A second delivery of the same
pair changes nothing and reports ``duplicate``. Refunds are the one status a payment can report
more than once with new meaning (several partial refunds), so a refund outcome carries the
*cumulative* refunded amount (as Stripe's ``amount_refunded`` does) and only the increase over
what was already applied is refunded; a repeat or an older, smaller figure changes nothing.

What each status does:

* top-up ``succeeded`` — grants paid credits of the amount actually paid (grant id
  ``topup:{payment_id}``, so the same payment can never grant twice); the request is closed and
  the cooldown starts. A success reported after a decline still grants: the money was taken.
* top-up ``failed`` — the next dunning step (see topup.py) and a ``topup_failed`` alert; a failure
  after the same payment already succeeded is stale and ignored.
* top-up ``canceled`` — before success: the request is closed with no credits; after success:
  the grant is voided (its unspent remaining is written off, nothing is owed).
* top-up ``refunded`` — the grant is reversed (credits.py: unspent first, the spent part becomes
  money owed on the next invoice and a ``refund_debt`` alert).
* top-up disputes — disputes.py: ``dispute_opened`` holds the unspent credits, ``dispute_won``
  gives them back, ``dispute_lost`` is reversed as a refund of the disputed amount.
* invoice payments — invoice_payments.py: partial and several payments, overpayment as credit,
  ``failed`` makes the invoice past due, refunds, disputes, ``unlinked`` and relink.

An outcome for a payment we do not know (no such top-up request or invoice), in another currency,
a refund or dispute of a payment that never succeeded, or a status this version cannot read
(``unknown``, the Avro enum's default for a newer symbol) is ``rejected``: the caller sends it to
the DLQ. The payment method an outcome names is kept on the record (the latest one named).

Retention (retention.py): a payment's record is kept while an outcome for it may still come: for
the retention window after the last outcome applied to it (``last_at``), and as long as the
request or invoice it pays is kept. So an unknown payment id naming a kept request or invoice is a
new payment. Once records are dropped, the greatest ``last_at`` dropped is kept as
``forgotten_until``; an outcome naming a request or invoice the account issued but no longer
keeps, that occurred at or before it, is answered ``duplicate``: it is a re-delivery of an outcome
already applied (and already in the ``payments`` table), or news older than the window, which the
account could no longer apply faithfully. Later news of a forgotten payment (a refund after the
window) finds neither record nor target: it is rejected with a reason that says so, for finance
to handle by hand.
"""

from __future__ import annotations

from meterline.billing.disputes import apply_topup_dispute
from meterline.billing.effects import Effects, alert
from meterline.billing.invoice_payments import apply_invoice, check_link, is_later_success
from meterline.billing.money import exact
from meterline.billing.payment_types import (
    PAYS_KINDS,
    STATUSES,
    PaymentContext,
    PaymentOutcome,
    PaymentRecord,
    PaymentResult,
    PaymentStatus,
    PaysKind,
    ResultStatus,
)
from meterline.billing.refunds import reverse_credits

__all__ = [
    "PAYS_KINDS",
    "STATUSES",
    "PaymentContext",
    "PaymentOutcome",
    "PaymentRecord",
    "PaymentResult",
    "PaymentStatus",
    "PaysKind",
    "ResultStatus",
    "apply_payment",
    "check_payment",
]
# Statuses that need a payment that succeeded (money was taken) before they mean anything.
_AFTER_SUCCESS = frozenset({"refunded", "dispute_opened", "dispute_won", "dispute_lost"})


def _may_be_forgotten(o: PaymentOutcome, ctx: PaymentContext) -> bool:
    """An outcome of a payment the account may have dropped: for a request or an invoice the
    account issued and no longer keeps (a kept one keeps all its payments, so an unknown id
    for it is a new payment), that occurred no later than the newest payment dropped."""
    if ctx.forgotten_until is None or o.occurred_at > ctx.forgotten_until:
        return False
    if o.pays_kind == "invoice":
        return o.pays_id not in ctx.invoices and o.pays_id.startswith(f"inv:{ctx.customer_id}:")
    topup = ctx.topup
    return topup is not None and not topup.knows(o.pays_id) and topup.issued(o.pays_id)


def _forgotten(ctx: PaymentContext, what: str) -> str:
    """The other possible reason, once the account has forgotten payments: it was one of them."""
    if ctx.retention_ms is None or ctx.forgotten_until is None:
        return ""
    return f" (or {what} more than {ctx.retention_ms / 86_400_000:g} days ago, now forgotten)"


def _currency(o: PaymentOutcome, ctx: PaymentContext) -> str:
    """The currency an outcome must be in: a top-up's is the plan's; an invoice payment's is
    its invoice's (fx.py), the one it is linking to for a first success or a relink."""
    rec = ctx.records.get(o.payment_id)
    inv = ctx.invoices.get(o.pays_id) if o.pays_kind == "invoice" else None
    if inv is not None:
        return inv.currency
    if rec is not None and rec.currency is not None:
        return rec.currency
    return ctx.currency


def check_payment(o: PaymentOutcome, ctx: PaymentContext) -> PaymentResult | None:
    """A reason to reject or skip the outcome, or None to apply it."""
    if o.customer_id != ctx.customer_id:
        return PaymentResult("rejected", f"payment for {o.customer_id} sent to {ctx.customer_id}")
    want = _currency(o, ctx)
    if o.currency != want:
        return PaymentResult("rejected", f"payment in {o.currency}, expected {want}")
    if o.status == "unknown":
        return PaymentResult(
            "rejected", f"payment {o.payment_id}: a status this version cannot read"
        )
    rec = ctx.records.get(o.payment_id)
    if rec is None and _may_be_forgotten(o, ctx):
        return PaymentResult("duplicate", "outside the retention window")
    link = check_link(o, rec, ctx)  # unlink and relink (invoice_payments.py)
    if link is not None:
        return None if link == "apply" else link
    if rec is not None and (rec.pays_kind, rec.pays_id) != (o.pays_kind, o.pays_id):
        return PaymentResult(
            "rejected", f"payment {o.payment_id} already pays {rec.pays_kind} {rec.pays_id}"
        )
    if o.status in _AFTER_SUCCESS:
        if rec is None or rec.captured <= 0:
            why = _forgotten(ctx, "last paid or refunded") if rec is None else ""
            return PaymentResult(
                "rejected", f"{o.status} of {o.payment_id}, which never succeeded{why}"
            )
        if o.status == "refunded" and min(o.amount, rec.captured) <= rec.refunded:
            return PaymentResult("duplicate")
    if (
        rec is not None
        and o.status != "refunded"
        and o.status in rec.statuses
        and not is_later_success(o, rec)
    ):
        return PaymentResult("duplicate")
    if rec is None:
        if o.pays_kind == "topup" and (ctx.topup is None or not ctx.topup.knows(o.pays_id)):
            why = _forgotten(ctx, "closed")
            return PaymentResult("rejected", f"unknown top-up request {o.pays_id}{why}")
        if o.pays_kind == "invoice" and o.pays_id not in ctx.invoices:
            why = _forgotten(ctx, "settled")
            return PaymentResult("rejected", f"unknown invoice {o.pays_id}{why}")
    if o.status == "succeeded" and o.amount <= 0:
        return PaymentResult("rejected", f"payment {o.payment_id} succeeded with no amount")
    return None


@exact
def apply_payment(o: PaymentOutcome, ctx: PaymentContext, fx: Effects) -> PaymentResult:
    early = check_payment(o, ctx)
    if early is not None:
        if early.status == "rejected":
            fx.errors.append(early.reason)
        return early
    rec = ctx.records.setdefault(o.payment_id, PaymentRecord(o.payment_id, o.pays_kind, o.pays_id))
    if o.pays_kind == "invoice":
        result = apply_invoice(o, rec, ctx, fx)
        if result.status == "duplicate":  # a later success's time, kept; nothing else changes
            return result
    elif o.status.startswith("dispute_"):
        result = apply_topup_dispute(o, rec, ctx, fx)
    else:
        result = _apply_topup(o, rec, ctx, fx)
    if o.status not in rec.statuses:
        rec.statuses.append(o.status)
    if o.payment_method_id is not None or o.payment_method_name is not None:
        rec.method_id, rec.method_name = o.payment_method_id, o.payment_method_name
    rec.last_at = ctx.now
    fx.payments.append(o)
    return result


def _apply_topup(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects
) -> PaymentResult:
    topup, now, succeeded = ctx.topup, ctx.now, "succeeded" in rec.statuses
    if o.status == "succeeded":
        rec.captured = o.amount
        rec.grant_id = f"topup:{o.payment_id}"
        priority = topup.policy.paid_priority if topup is not None else 0
        fx.entries += ctx.wallet.grant(
            rec.grant_id,
            o.amount,
            now,
            priority=priority,
            category="paid",
            kind="topup",
            ref=o.payment_id,
        )
        if topup is not None:
            topup.on_succeeded(o.pays_id, now)
        return PaymentResult("applied")
    if o.status == "failed":
        if succeeded or topup is None:
            return PaymentResult("ignored", "failure reported after success")
        step = topup.on_failed(o.pays_id, now)
        if step == "stale":
            return PaymentResult("ignored", "request already closed")
        data = {"request_id": o.pays_id, "failure_code": o.failure_code or ""}
        if topup.not_before is not None:
            data["retry_at"] = str(topup.not_before)
        fx.alerts.append(alert(ctx.customer_id, "topup_failed", now, o.payment_id, **data))
        if step == "suspended":
            fx.alerts.append(
                alert(
                    ctx.customer_id, "topup_suspended", now, o.pays_id, failures=str(topup.failures)
                )
            )
        return PaymentResult("applied")
    if o.status == "canceled":
        if succeeded and rec.grant_id is not None:
            fx.entries += ctx.wallet.void(rec.grant_id, now, ref=o.payment_id)
        elif topup is not None:
            topup.on_canceled(o.pays_id, now)
        return PaymentResult("applied")
    # refunded: check_payment made sure it succeeded and the refund grew.
    delta = min(o.amount, rec.captured) - rec.refunded
    return PaymentResult("applied", owed=reverse_credits(o, rec, ctx, fx, delta))
