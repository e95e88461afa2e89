"""Billing adapter: drives each customer's ``Account`` (meterline.billing) from the inputs the
usage agent already routes to the customer's single writer — counted usage and token events,
account commands, payment outcomes — and turns the account's effects into rows and records.

Exactness follows the usage state's rules (docs/ARCHITECTURE.md): an ``AccountState`` records
the last input offset it applied per source partition, and its effects wait in an outbox that
is part of the same changelog record; the outbox is published and stored only once that state
is durable, then cleared. Every effect carries a deterministic id, so a re-publication after a
crash repeats the same facts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from meterline.billing.account import Account
from meterline.billing.catalog import Plan
from meterline.billing.commands import apply_command
from meterline.billing.effects import Effects
from meterline.billing.payments import PaymentOutcome
from meterline.billing.usage import ADDITIVE, Reading
from meterline.metering.meters import MeterCatalog, dims_key
from meterline.metering.pricebook import PriceBook, PricingError

TOKENS_METER = "llm_tokens"
OUTBOX_KINDS = ("entries", "topups", "alerts", "invoices", "payments")


@dataclass(slots=True)
class AccountState:
    customer_id: str
    account: Account
    applied: dict[str, int] = field(default_factory=dict)
    version: int = 0
    outbox: dict[str, list[dict]] = field(default_factory=lambda: {k: [] for k in OUTBOX_KINDS})
    balance_dirty: bool = False

    def record(self, fx: Effects) -> None:
        self.outbox["entries"] += [e.to_dict() for e in fx.entries]
        self.outbox["topups"] += [t.to_dict() for t in fx.topups]
        self.outbox["alerts"] += [a.to_dict() for a in fx.alerts]
        self.outbox["invoices"] += [i.to_dict() for i in fx.invoices]
        self.outbox["payments"] += [p.to_dict() for p in fx.payments]
        self.balance_dirty = True

    @property
    def has_outbox(self) -> bool:
        return self.balance_dirty or any(self.outbox.values())

    def clear_outbox(self) -> None:
        self.outbox = {k: [] for k in OUTBOX_KINDS}
        self.balance_dirty = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "c": self.customer_id,
            "a": self.account.to_dict(),
            "applied": self.applied,
            "v": self.version,
            "o": self.outbox,
            "b": self.balance_dirty,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountState:
        return cls(
            data["c"],
            Account.from_dict(data["a"]),
            {k: int(v) for k, v in data["applied"].items()},
            int(data["v"]),
            {k: list(data["o"].get(k, [])) for k in OUTBOX_KINDS},
            bool(data["b"]),
        )


def command_from_avro(value: dict[str, Any]) -> dict[str, Any]:
    """The Avro AccountCommand in the shape of meterline.billing.commands."""
    name, body = value["command"]
    base = {"customer_id": value["customer_id"], "at": value["issued_at"]}
    short = name.rsplit(".", 1)[-1]
    if short == "CustomerUpsert":
        topup = body.get("topup")
        return {
            **base,
            "type": "upsert",
            "plan_id": body["plan"],
            "billing_anchor": body["billing_anchor"],
            "tz": body.get("timezone", "UTC"),
            "topup": None
            if topup is None
            else {
                "threshold": topup["threshold"],
                "mode": topup["mode"],
                "amount": topup["amount"],
                "target": topup.get("target") or 0,
                "cooldown_ms": int(topup["cooldown_seconds"]) * 1000,
                "max_per_period": topup["max_per_period"],
            },
        }
    if short == "CreditGrant":
        return {**base, "type": "grant", **body}
    if short == "GrantVoid":
        return {**base, "type": "void", "grant_id": body["grant_id"]}
    if short == "BillInAdvance":
        return {**base, "type": "bill_in_advance", "period_start": body["period_start"]}
    raise ValueError(f"unknown account command {name!r}")


class BillingAdapter:
    def __init__(
        self, meters: MeterCatalog, prices: PriceBook, plans: dict[str, dict[str, Any]]
    ) -> None:
        self.meters = meters
        self.prices = prices
        self.plan_dicts = plans
        self._plans: dict[str, Plan] = {}
        self._plans_seen: dict[str, dict[str, Any]] = {}

    def plans(self) -> dict[str, Plan]:
        # Plans change rarely (catalog); parse each version once.
        for plan_id, raw in self.plan_dicts.items():
            if self._plans_seen.get(plan_id) is not raw:
                self._plans[plan_id] = Plan.from_dict(raw)
                self._plans_seen[plan_id] = raw
        return self._plans

    def usage(self, state: AccountState, kind: str, record: dict[str, Any]) -> list[str]:
        """Rates one counted event and burns credits. Meters the plan does not price are
        metered but free; an account without a plan is metered only."""
        account = state.account
        if account.plan is None:
            return []
        at = record["timestamp"]
        if kind == "tokens":
            try:
                cost = self.prices.cost(
                    record["model"],
                    record["input_tokens"],
                    record["output_tokens"],
                    record["cached_input_tokens"],
                    at,
                ).billed
            except PricingError as exc:
                return [str(exc)]
            tokens = record["input_tokens"] + record["output_tokens"]
            tokens += record["cached_input_tokens"]
            fx = account.apply_usage(
                f"tokens:{record['event_id']}", TOKENS_METER, Decimal(tokens), at, cost=cost
            )
        else:
            entry = account.plan.entry(record["meter"])
            if entry is None or entry.model is None:
                return []
            meter = self.meters.get(record["meter"])
            # The meter's own value field and group-by, as metering reads them.
            value, unique_value = meter.extract(record)
            if meter.aggregation in ADDITIVE:
                fx = account.apply_usage(record["event_id"], record["meter"], value, at)
            else:
                reading = Reading(
                    meter.aggregation,
                    dims_key(meter.group_dims(record["dimensions"])),
                    value,
                    at,
                    unique_value,
                )
                fx = account.apply_reading(record["event_id"], record["meter"], reading)
        state.record(fx)
        return fx.errors

    def command(self, state: AccountState, name: str, value: Any) -> list[str]:
        cmd = command_from_avro(value) if name != "json" else value
        fx = apply_command(state.account, cmd, self.plans())
        state.record(fx)
        return fx.errors

    def payment(self, state: AccountState, name: str, value: Any) -> list[str]:
        if name != "json":
            value = dict(value, pays_id=value.get("pays_id", ""))
        try:
            outcome = PaymentOutcome.from_dict(value)
        except (KeyError, TypeError, ValueError) as exc:
            return [f"malformed payment outcome: {exc!r}"]
        fx = state.account.apply_payment(outcome)
        state.record(fx)
        return fx.errors


def _t(ms: int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def _d(raw: Any) -> Decimal | None:
    return None if raw is None else Decimal(str(raw))


LEDGER_COLUMNS = [
    "entry_id",
    "seq",
    "customer_id",
    "at",
    "kind",
    "amount",
    "balance_after",
    "grant_id",
    "ref",
]
BALANCE_COLUMNS = ["customer_id", "balance", "at", "version"]
LINE_COLUMNS = [
    "invoice_id",
    "customer_id",
    "period_start",
    "period_end",
    "line_no",
    "kind",
    "meter",
    "quantity",
    "unit_price",
    "amount",
]
INVOICE_COLUMNS = [
    "invoice_id",
    "customer_id",
    "currency",
    "kind",
    "period_start",
    "period_end",
    "issued_at",
    "amount_due",
    "amount_paid",
    "remaining",
    "status",
    "version",
]
PAYMENT_COLUMNS = [
    "payment_id",
    "customer_id",
    "processor",
    "status",
    "amount",
    "currency",
    "pays_kind",
    "pays",
    "failure_code",
    "at",
]
TOPUP_COLUMNS = ["request_id", "customer_id", "amount", "currency", "requested_at", "attempt"]
ALERT_COLUMNS = ["alert_id", "customer_id", "kind", "at", "ref", "data"]


def outbox_rows(state: AccountState) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """ClickHouse rows for one account's outbox, by table."""
    o = state.outbox
    c = state.customer_id
    rows: dict[str, tuple[list[str], list[list[Any]]]] = {
        "credit_ledger": (
            LEDGER_COLUMNS,
            [
                [
                    e["entry_id"],
                    e["seq"],
                    c,
                    _t(e["at"]),
                    e["kind"],
                    Decimal(e["amount"]),
                    Decimal(e["balance_after"]),
                    e["grant_id"],
                    e["ref"],
                ]
                for e in o["entries"]
            ],
        ),
        "invoice_lines": (
            LINE_COLUMNS,
            [
                [
                    ln["invoice_id"],
                    c,
                    _t(ln["period_start"]),
                    _t(ln["period_end"]),
                    ln["line_no"],
                    ln["kind"],
                    ln["meter"],
                    _d(ln["quantity"]),
                    _d(ln["unit_price"]),
                    Decimal(ln["amount"]),
                ]
                for inv in o["invoices"]
                for ln in inv["lines"]
            ],
        ),
        "invoices": (
            INVOICE_COLUMNS,
            [
                [
                    i["invoice_id"],
                    c,
                    i["currency"],
                    i["kind"],
                    _t(i["period_start"]),
                    _t(i["period_end"]),
                    _t(i["issued_at"]),
                    Decimal(i["amount_due"]),
                    Decimal(i["amount_paid"]),
                    Decimal(i["remaining"]),
                    i["status"],
                    state.version,
                ]
                for i in o["invoices"]
            ],
        ),
        "payments": (
            PAYMENT_COLUMNS,
            [
                [
                    p["payment_id"],
                    c,
                    p["processor"],
                    p["status"],
                    Decimal(p["amount"]),
                    p["currency"],
                    p["pays_kind"],
                    p["pays_id"],
                    p.get("failure_code") or "",
                    _t(p["occurred_at"]),
                ]
                for p in o["payments"]
            ],
        ),
        "topups": (
            TOPUP_COLUMNS,
            [
                [
                    t["request_id"],
                    c,
                    Decimal(t["amount"]),
                    t["currency"],
                    _t(t["requested_at"]),
                    t["attempt"],
                ]
                for t in o["topups"]
            ],
        ),
        "alerts": (
            ALERT_COLUMNS,
            [
                [a["alert_id"], c, a["kind"], _t(a["at"]), a["ref"], dict(a["data"])]
                for a in o["alerts"]
            ],
        ),
    }
    if state.balance_dirty:
        account = state.account
        rows["balance_history"] = (
            BALANCE_COLUMNS,
            [[c, account.balance(), _t(account.clock or 0), state.version]],
        )
    return {table: v for table, v in rows.items() if v[1]}


def outbound_records(state: AccountState) -> list[tuple[str, dict[str, Any]]]:
    """(topic kind, record) for meterline.topups, .alerts and .invoices."""
    o = state.outbox
    return (
        [("topups", t) for t in o["topups"]]
        + [("alerts", a) for a in o["alerts"]]
        + [("invoices", i) for i in o["invoices"]]
    )


def to_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), default=str).encode()
