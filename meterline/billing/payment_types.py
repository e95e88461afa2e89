"""The records of payments: an outcome as a processor reports it, what the account keeps of a
payment, and what applying an outcome may touch. The rules are in payments.py (and
invoice_payments.py, disputes.py); this module only holds the shapes, so those modules can share
them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, get_args

from meterline.billing.credits import Wallet
from meterline.billing.dunning import InvoiceDunning
from meterline.billing.fx import to_base
from meterline.billing.invoice import Invoice
from meterline.billing.money import EXACT, ZERO, to_decimal
from meterline.billing.topup import DEFAULT_PAID_PRIORITY, DEFAULT_RETRY_DELAYS_MS, AutoTopup

# In the Avro enum's order: new symbols only ever go at the end (schema evolution). "unknown" is
# the enum's default, what a reader makes of a symbol newer than itself: rejected, never guessed.
PaymentStatus = Literal[
    "succeeded",
    "failed",
    "refunded",
    "canceled",
    "dispute_opened",
    "dispute_won",
    "dispute_lost",
    "unlinked",
    "unknown",
]
PaysKind = Literal["topup", "invoice"]
STATUSES: tuple[PaymentStatus, ...] = get_args(PaymentStatus)
PAYS_KINDS: tuple[PaysKind, ...] = get_args(PaysKind)
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
    payment_method_id: str | None = None  # e.g. "pm_123"
    payment_method_name: str | None = None  # e.g. "Visa •••• 4242", "ACH"
    # On dispute_lost: a fee to bill the customer for it, on the next period invoice (the
    # merchant's choice to pass the processor's chargeback fee on); None: no fee.
    dispute_fee: Decimal | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown payment status {self.status!r}")
        if self.pays_kind not in PAYS_KINDS:
            raise ValueError(f"a payment pays a topup or an invoice, not {self.pays_kind!r}")
        if self.amount < 0:
            raise ValueError("payment amount must not be negative")
        if self.dispute_fee is not None and self.dispute_fee < 0:
            raise ValueError("dispute fee must not be negative")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
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
        # Left out when unknown, so outcomes without a method keep the shape they always had.
        if self.payment_method_id is not None:
            out["payment_method_id"] = self.payment_method_id
        if self.payment_method_name is not None:
            out["payment_method_name"] = self.payment_method_name
        if self.dispute_fee is not None:
            out["dispute_fee"] = str(self.dispute_fee)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaymentOutcome:
        fee = data.get("dispute_fee")
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
            data.get("payment_method_id"),
            data.get("payment_method_name"),
            None if fee is None else to_decimal(fee, "dispute_fee"),
        )


def default_applied(
    pays_kind: str, statuses: list[str], captured: Decimal, refunded: Decimal
) -> Decimal:
    """What a record written before ``applied`` was kept had on its invoice: an invoice payment
    that succeeded counted its capture less its refunds (the old rule); a top-up counts nothing."""
    if pays_kind != "invoice" or "succeeded" not in statuses:
        return ZERO
    return EXACT.subtract(captured, refunded) if refunded else captured


@dataclass(slots=True)
class PaymentRecord:
    payment_id: str
    pays_kind: PaysKind
    pays_id: str
    statuses: list[str] = field(default_factory=list)
    captured: Decimal = ZERO
    refunded: Decimal = ZERO
    # The credits the payment bought: a top-up's grant, or an invoice overpayment's.
    grant_id: str | None = None
    # Account clock when the last outcome was applied: the retention window counts from here.
    # None only in a state written before it was kept (state.py fills it in on load).
    last_at: int | None = None
    method_id: str | None = None
    method_name: str | None = None
    # An invoice payment's part now counted in its invoice's amount_paid.
    applied: Decimal = ZERO
    disputed: Decimal = ZERO  # under an open dispute
    dispute_off: Decimal = ZERO  # of it, what the dispute took off the invoice
    # occurred_at of the last unlink or relink: an unlink or relink that did not occur after it
    # is a re-delivery (invoice_payments.py).
    link_at: int | None = None
    # A payment of an invoice in the customer's own currency (fx.py): that currency and the
    # invoice's rate, fixed at its first success; every amount above is in that currency, and
    # ``credited`` is the part of it that became credits. None: the plan's currency.
    currency: str | None = None
    rate: Decimal | None = None
    credited: Decimal = ZERO

    def credits(self, amount: Decimal) -> Decimal:
        """``amount`` of the payment's currency as credits (the plan's currency)."""
        return amount if self.rate is None else to_base(amount, self.rate)

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
            "method_id": self.method_id,
            "method_name": self.method_name,
            "applied": str(self.applied),
            "disputed": str(self.disputed),
            "dispute_off": str(self.dispute_off),
            "link_at": self.link_at,
            # Only for a payment in another currency: the records of all others stay as small
            # (and as byte-identical) as before it was kept.
            **(
                {}
                if self.rate is None
                else {
                    "currency": self.currency,
                    "rate": str(self.rate),
                    "credited": str(self.credited),
                }
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaymentRecord:
        last_at, link_at = data.get("last_at"), data.get("link_at")
        statuses = list(data["statuses"])
        captured, refunded = to_decimal(data["captured"]), to_decimal(data["refunded"])
        applied = data.get("applied")
        return cls(
            data["payment_id"],
            data["pays_kind"],
            data["pays_id"],
            statuses,
            captured,
            refunded,
            data.get("grant_id"),
            None if last_at is None else int(last_at),
            data.get("method_id"),
            data.get("method_name"),
            default_applied(data["pays_kind"], statuses, captured, refunded)
            if applied is None
            else to_decimal(applied),
            to_decimal(data.get("disputed", "0")),
            to_decimal(data.get("dispute_off", "0")),
            None if link_at is None else int(link_at),
            data.get("currency"),
            None if data.get("rate") is None else to_decimal(data["rate"]),
            to_decimal(data.get("credited", "0")),
        )


@dataclass(frozen=True, slots=True)
class PaymentResult:
    status: ResultStatus
    reason: str = ""
    owed: Decimal = ZERO  # money owed for spent credits of a refunded top-up
    dispute_fee: Decimal = ZERO  # a lost dispute's fee, billed on the next period invoice


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
    forgotten_until: int | None = None  # see payments.py
    retention_ms: int | None = None  # only to say why an outcome is refused
    paid_priority: int = (
        DEFAULT_PAID_PRIORITY  # priority of credits bought (top-ups, invoice overpayments)
    )
    # Unpaid invoices' dunning (dunning.py), and its schedule: the top-up policy's.
    dunning: dict[str, InvoiceDunning] = field(default_factory=dict)
    retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS
