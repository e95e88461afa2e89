"""What an account operation asks the outside world to do, as plain records.

The adapter publishes each list to its topic (ledger entries to the credit ledger, top-up
requests to ``meterline.topups``, alerts to ``meterline.alerts``, invoices to
``meterline.invoices``, accepted payment outcomes to the payments table) and ``errors`` to the
DLQ with the input that caused them. Every record carries a deterministic id, so publishing the
effects of a replayed input again is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from meterline.billing.ledger import LedgerEntry
from meterline.billing.topup import TopupRequest

if TYPE_CHECKING:
    from meterline.billing.invoice import Invoice
    from meterline.billing.payment_types import PaymentOutcome

AlertKind = Literal[
    "balance_low",
    "balance_exhausted",
    "topup_failed",
    "topup_suspended",
    "grant_expiring",
    "refund_debt",
    "invoice_payment_failed",
    "invoice_past_due",
    "payment_unapplied",
]


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str  # f"alert:{customer}:{kind}:{ref}": one alert per cause, even on replay
    customer_id: str
    kind: AlertKind
    at: int
    ref: str
    data: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "customer_id": self.customer_id,
            "kind": self.kind,
            "at": self.at,
            "ref": self.ref,
            "data": dict(self.data),
        }


def alert(customer_id: str, kind: AlertKind, at: int, ref: str, **data: str) -> Alert:
    return Alert(f"alert:{customer_id}:{kind}:{ref}", customer_id, kind, at, ref, data)


@dataclass(slots=True)
class Effects:
    entries: list[LedgerEntry] = field(default_factory=list)
    topups: list[TopupRequest] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    payments: list[PaymentOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # applied | duplicate | ignored | rejected: what became of the input itself
    status: str = "applied"

    def alert_kinds(self) -> list[str]:
        return [a.kind for a in self.alerts]
