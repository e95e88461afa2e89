"""What an account holds, and its state as a JSON-able dict (the account table's value).

The fields are the account's whole state: ``Account`` (account.py) adds behaviour only. What the
state keeps is bounded by retention (retention.py): it holds what can still change, and the
rest is already in ClickHouse through the effects that created it.

State format (``to_dict``): version 2 (``"v": 2``) writes the many things compactly (state.py).
A state written before retention (no ``"v"``: every grant, payment and invoice as a full dict)
still loads: its payments get the time their last outcome was applied where it can be told
(state.infer_last_at), and the first operation after the load prunes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Self

from meterline.billing.advance import Prebilled
from meterline.billing.alerts import BalanceAlerts, ExpiryNotices
from meterline.billing.catalog import Plan
from meterline.billing.credits import Wallet
from meterline.billing.dunning import InvoiceDunning, decode_dunning, encode_dunning
from meterline.billing.fx import FxQuote, FxRates
from meterline.billing.invoice import Invoice
from meterline.billing.money import ZERO, opt_str, to_decimal
from meterline.billing.payments import PaymentRecord
from meterline.billing.periods import BillingAnchor, Period
from meterline.billing.retention import DAY_MS, PAYMENT_RETENTION_MS
from meterline.billing.state import (
    STATE_VERSION,
    decode_invoice,
    decode_topup,
    decode_usage,
    encode_invoice,
    encode_topup,
    encode_usage,
    infer_granted_at,
    infer_last_at,
)
from meterline.billing.state_rows import (
    decode_payments,
    decode_wallet,
    encode_payments,
    encode_wallet,
)
from meterline.billing.topup import DEFAULT_PAID_PRIORITY, AutoTopup
from meterline.billing.usage import MeterPeriod

DEFAULT_EXPIRY_NOTICE_MS = 3 * DAY_MS


@dataclass(slots=True)
class AccountData:
    customer_id: str
    plan: Plan | None = None
    anchor: BillingAnchor | None = None
    period: Period | None = None
    clock: int | None = None
    wallet: Wallet = field(init=False)
    topup: AutoTopup | None = None
    usage: dict[str, MeterPeriod] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    advance_billed: list[int] = field(default_factory=list)  # period starts, fee billed whole
    # Partial fees and committed quantities billed ahead, by period (advance.py).
    prebilled: Prebilled = field(default_factory=Prebilled)
    # The customer's own currency for invoices (fx.py); None: the plan's.
    invoice_currency: str | None = None
    # The catalog's exchange rates, handed in by the adapter (as plans are): not state.
    fx_rates: FxRates | None = field(default=None, compare=False)
    owed: Decimal = ZERO  # refund debts, billed on the next period invoice
    dispute_fees: Decimal = ZERO  # fees of lost disputes, billed on the next period invoice
    # Unpaid invoices between a declined payment and their next retry (dunning.py).
    dunning: dict[str, InvoiceDunning] = field(default_factory=dict)
    period_fee: Decimal = ZERO  # the fee of the plan in force when the open period began
    low_balance_threshold: Decimal | None = None
    expiry_notice_ms: int | None = DEFAULT_EXPIRY_NOTICE_MS
    balance_alerts: BalanceAlerts = field(default_factory=BalanceAlerts)
    expiry_notices: ExpiryNotices = field(default_factory=ExpiryNotices)
    # The refund and dispute window (retention.py); None keeps everything forever. A setting of
    # the deployment, not part of the state: from_dict takes it as an argument.
    payment_retention_ms: int | None = PAYMENT_RETENTION_MS
    forgotten_until: int | None = None  # last_at of the newest payment record dropped
    next_prune_at: int | None = None  # None: prune at the next operation

    def __post_init__(self) -> None:
        self.wallet = Wallet(self.customer_id)

    def fx_quote(self, at: int) -> FxQuote | None:
        """The rate of an invoice issued at ``at`` (fx.py: the one in force then)."""
        if self.plan is None or self.invoice_currency is None or self.fx_rates is None:
            return None
        return self.fx_rates.quote(self.plan.currency, self.invoice_currency, at)

    @property
    def _paid_priority(self) -> int:
        return DEFAULT_PAID_PRIORITY if self.topup is None else self.topup.policy.paid_priority

    def to_dict(self) -> dict[str, Any]:
        rows, joined = encode_payments(
            self.payments.values(), self.wallet, self.customer_id, self._paid_priority
        )
        return {
            "v": STATE_VERSION,
            "customer_id": self.customer_id,
            "plan": None if self.plan is None else self.plan.to_dict(),
            "anchor": None if self.anchor is None else self.anchor.to_dict(),
            "period": None if self.period is None else self.period.to_dict(),
            "clock": self.clock,
            "wallet": encode_wallet(self.wallet, joined),
            "topup": None if self.topup is None else encode_topup(self.topup),
            "usage": {m: encode_usage(u, self.wallet) for m, u in sorted(self.usage.items())},
            "invoices": [encode_invoice(inv) for inv in self.invoices.values()],
            "payments": rows,
            "advance_billed": list(self.advance_billed),
            **({} if (ahead := self.prebilled.to_dict()) is None else {"advance": ahead}),
            **(
                {} if self.invoice_currency is None else {"invoice_currency": self.invoice_currency}
            ),
            "owed": str(self.owed),
            # Both left out at their usual value: a state keeps the shape it had without them.
            **({"dispute_fees": str(self.dispute_fees)} if self.dispute_fees else {}),
            **({"dunning": encode_dunning(self.dunning)} if self.dunning else {}),
            "period_fee": str(self.period_fee),
            "low_balance_threshold": opt_str(self.low_balance_threshold),
            "expiry_notice_ms": self.expiry_notice_ms,
            "low_alerted": self.balance_alerts.low_alerted,
            "exhausted_alerted": self.balance_alerts.exhausted_alerted,
            "expiring_alerted": list(self.expiry_notices.alerted),
            "forgotten_until": self.forgotten_until,
            "next_prune_at": self.next_prune_at,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, payment_retention_ms: int | None = PAYMENT_RETENTION_MS
    ) -> Self:
        acc = cls(data["customer_id"], payment_retention_ms=payment_retention_ms)
        customer = acc.customer_id
        acc.plan = None if data["plan"] is None else Plan.from_dict(data["plan"])
        acc.anchor = None if data["anchor"] is None else BillingAnchor.from_dict(data["anchor"])
        acc.period = None if data["period"] is None else Period.from_dict(data["period"])
        acc.clock = data["clock"]
        acc.topup = None if data["topup"] is None else decode_topup(data["topup"])
        if data.get("v") == STATE_VERSION:
            records, paid = decode_payments(data["payments"], customer, acc._paid_priority)
            acc.wallet = decode_wallet(data["wallet"], paid)
            acc.forgotten_until = data["forgotten_until"]
            acc.next_prune_at = data["next_prune_at"]
        else:
            records = [PaymentRecord.from_dict(p) for p in data["payments"]]
            acc.wallet = Wallet.from_dict(data["wallet"])
            for g in acc.wallet.grants.values():
                if g.granted_at is None:
                    g.granted_at = infer_granted_at(g, customer)
            for rec in records:
                if rec.last_at is None:
                    rec.last_at = infer_last_at(rec, acc.wallet, acc.clock or 0)
        acc.payments = {p.payment_id: p for p in records}
        ids_by_seq = {g.created_seq: g.grant_id for g in acc.wallet.grants.values()}
        acc.usage = {m: decode_usage(u, ids_by_seq) for m, u in data["usage"].items()}
        invoices = (decode_invoice(i) for i in data["invoices"])
        acc.invoices = {i.invoice_id: i for i in invoices}
        acc.advance_billed = [int(s) for s in data["advance_billed"]]
        acc.prebilled = Prebilled.from_dict(data.get("advance"))  # absent: nothing of it
        acc.invoice_currency = data.get("invoice_currency")
        acc.owed = to_decimal(data["owed"])
        acc.dispute_fees = to_decimal(data.get("dispute_fees", "0"))
        acc.dunning = decode_dunning(data.get("dunning"))
        acc.period_fee = to_decimal(data["period_fee"])
        threshold = data["low_balance_threshold"]
        acc.low_balance_threshold = None if threshold is None else to_decimal(threshold)
        acc.expiry_notice_ms = data["expiry_notice_ms"]
        acc.balance_alerts = BalanceAlerts(
            bool(data["low_alerted"]), bool(data["exhausted_alerted"])
        )
        acc.expiry_notices = ExpiryNotices(list(data["expiring_alerted"]))
        return acc
