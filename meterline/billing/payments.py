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
* invoice ``succeeded`` — adds to the invoice's amount paid (payments may be partial);
  ``refunded`` takes the increase back off; ``failed`` raises ``invoice_payment_failed``;
  ``canceled`` is recorded and changes nothing.

An outcome for a payment we do not know (no such top-up request or invoice), in another currency,
or a refund of a payment that never succeeded is ``rejected``: the caller sends it to the DLQ.

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

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from meterline.billing.credits import Wallet
from meterline.billing.effects import Effects, alert
from meterline.billing.invoice import Invoice
from meterline.billing.money import ZERO, exact, to_decimal
from meterline.billing.topup import AutoTopup

PaymentStatus = Literal["succeeded", "failed", "refunded", "canceled"]
PaysKind = Literal["topup", "invoice"]
STATUSES: tuple[PaymentStatus, ...] = ("succeeded", "failed", "refunded", "canceled")
PAYS_KINDS: tuple[PaysKind, ...] = ("topup", "invoice")
ResultStatus = Literal["applied", "duplicate", "ignored", "rejected"]


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    payment_id: str
    customer_id: str
    processor: str
    status: PaymentStatus
    amount: Decimal
    currency: str
    pays_kind: PaysKind
    pays_id: str
    occurred_at: int
    failure_code: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown payment status {self.status!r}")
        if self.pays_kind not in PAYS_KINDS:
            raise ValueError(f"a payment pays a topup or an invoice, not {self.pays_kind!r}")
        if self.amount < 0:
            raise ValueError("payment amount must not be negative")

    def to_dict(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "customer_id": self.customer_id,
            "processor": self.processor,
            "status": self.status,
            "amount": str(self.amount),
            "currency": self.currency,
            "pays_kind": self.pays_kind,
            "pays_id": self.pays_id,
            "occurred_at": self.occurred_at,
            "failure_code": self.failure_code,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaymentOutcome:
        return cls(
            data["payment_id"],
            data["customer_id"],
            data["processor"],
            data["status"],
            to_decimal(data["amount"], "amount"),
            data["currency"],
            data["pays_kind"],
            data["pays_id"],
            int(data["occurred_at"]),
            data.get("failure_code"),
        )


@dataclass(slots=True)
class PaymentRecord:
    payment_id: str
    pays_kind: PaysKind
    pays_id: str
    statuses: list[str] = field(default_factory=list)
    captured: Decimal = ZERO
    refunded: Decimal = ZERO
    grant_id: str | None = None
    # Account clock when the last outcome was applied: the retention window counts from here.
    # None only in a state written before it was kept (state.py fills it in on load).
    last_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "pays_kind": self.pays_kind,
            "pays_id": self.pays_id,
            "statuses": list(self.statuses),
            "captured": str(self.captured),
            "refunded": str(self.refunded),
            "grant_id": self.grant_id,
            "last_at": self.last_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaymentRecord:
        last_at = data.get("last_at")
        return cls(
            data["payment_id"],
            data["pays_kind"],
            data["pays_id"],
            list(data["statuses"]),
            to_decimal(data["captured"]),
            to_decimal(data["refunded"]),
            data.get("grant_id"),
            None if last_at is None else int(last_at),
        )


@dataclass(frozen=True, slots=True)
class PaymentResult:
    status: ResultStatus
    reason: str = ""
    owed: Decimal = ZERO  # money owed for spent credits of a refunded top-up


@dataclass(slots=True)
class PaymentContext:
    """The parts of an account a payment outcome may change."""

    customer_id: str
    currency: str
    now: int
    wallet: Wallet
    topup: AutoTopup | None
    invoices: dict[str, Invoice]
    records: dict[str, PaymentRecord]
    forgotten_until: int | None = None  # see the module doc
    retention_ms: int | None = None  # only to say why an outcome is refused


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


def check_payment(o: PaymentOutcome, ctx: PaymentContext) -> PaymentResult | None:
    """A reason to reject or skip the outcome, or None to apply it."""
    if o.customer_id != ctx.customer_id:
        return PaymentResult("rejected", f"payment for {o.customer_id} sent to {ctx.customer_id}")
    if o.currency != ctx.currency:
        return PaymentResult("rejected", f"payment in {o.currency}, account bills {ctx.currency}")
    rec = ctx.records.get(o.payment_id)
    if rec is None and _may_be_forgotten(o, ctx):
        return PaymentResult("duplicate", "outside the retention window")
    if rec is not None and (rec.pays_kind, rec.pays_id) != (o.pays_kind, o.pays_id):
        return PaymentResult(
            "rejected", f"payment {o.payment_id} already pays {rec.pays_kind} {rec.pays_id}"
        )
    if o.status == "refunded":
        if rec is None or "succeeded" not in rec.statuses:
            why = _forgotten(ctx, "last paid or refunded") if rec is None else ""
            return PaymentResult(
                "rejected", f"refund of {o.payment_id}, which never succeeded{why}"
            )
        if min(o.amount, rec.captured) <= rec.refunded:
            return PaymentResult("duplicate")
    elif rec is not None and o.status in rec.statuses:
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
    if o.pays_kind == "topup":
        result = _apply_topup(o, rec, ctx, fx)
    else:
        result = _apply_invoice(o, rec, ctx, fx)
    if o.status not in rec.statuses:
        rec.statuses.append(o.status)
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
    rec.refunded += delta
    assert rec.grant_id is not None
    rev = ctx.wallet.reverse(rec.grant_id, delta, now, ref=o.payment_id)
    fx.entries += rev.entries
    if rev.unrecovered > 0:
        ref = f"{o.payment_id}:{rec.refunded}"
        fx.alerts.append(
            alert(
                ctx.customer_id,
                "refund_debt",
                now,
                ref,
                owed=str(rev.unrecovered),
                payment_id=o.payment_id,
            )
        )
    return PaymentResult("applied", owed=rev.unrecovered)


def _apply_invoice(
    o: PaymentOutcome, rec: PaymentRecord, ctx: PaymentContext, fx: Effects
) -> PaymentResult:
    inv = ctx.invoices[o.pays_id]
    if o.status == "succeeded":
        rec.captured = o.amount
        inv = replace(inv, amount_paid=inv.amount_paid + o.amount)
    elif o.status == "refunded":
        delta = min(o.amount, rec.captured) - rec.refunded
        rec.refunded += delta
        inv = replace(inv, amount_paid=inv.amount_paid - delta)
    elif o.status == "failed":
        if "succeeded" in rec.statuses:
            return PaymentResult("ignored", "failure reported after success")
        fx.alerts.append(
            alert(
                ctx.customer_id,
                "invoice_payment_failed",
                ctx.now,
                o.payment_id,
                invoice_id=inv.invoice_id,
                failure_code=o.failure_code or "",
            )
        )
        return PaymentResult("applied")
    else:
        return PaymentResult("ignored", "a canceled invoice payment changes nothing")
    ctx.invoices[inv.invoice_id] = inv
    fx.invoices.append(inv)
    return PaymentResult("applied")
