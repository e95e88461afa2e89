"""The billing tables, written from an account's outbox once its state is durable (DDL:
003_billing.sql): ``credit_ledger``, ``balance_history`` (read as ``balances``),
``invoice_lines``, ``invoices``, ``payments``, ``topups``, ``alerts``. Outbox records are the
effects' dicts; every one carries a deterministic id, so a re-publication repeats a row that
the table's sort key collapses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from meterline.processor.account_state import AccountState
from sinks.tables import Table, utc

CREDIT_LEDGER = Table(
    "credit_ledger",
    ("entry_id", "seq", "customer_id", "at", "kind", "amount", "balance_after", "grant_id", "ref"),
)
BALANCE_HISTORY = Table("balance_history", ("customer_id", "balance", "at", "version"))
INVOICE_LINES = Table(
    "invoice_lines",
    (
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
    ),
)
INVOICES = Table(
    "invoices",
    (
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
        "payment_method_id",
        "payment_method_name",
        "plan_currency",
        "fx_rate",
        "fx_rate_effective_from",
    ),
)
PAYMENTS = Table(
    "payments",
    (
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
        "payment_method_id",
        "payment_method_name",
        "dispute_fee",
    ),
)
TOPUPS = Table(
    "topups",
    (
        "request_id",
        "customer_id",
        "amount",
        "currency",
        "requested_at",
        "attempt",
        "pays_kind",
        "pays",
    ),
)
ALERTS = Table("alerts", ("alert_id", "customer_id", "kind", "at", "ref", "data"))


def _d(raw: Any) -> Decimal | None:
    return None if raw is None else Decimal(str(raw))


def _ledger(c: str, e: dict[str, Any]) -> list[Any]:
    return [
        e["entry_id"],
        e["seq"],
        c,
        utc(e["at"]),
        e["kind"],
        Decimal(e["amount"]),
        Decimal(e["balance_after"]),
        e["grant_id"],
        e["ref"],
    ]


def _line(c: str, ln: dict[str, Any]) -> list[Any]:
    return [
        ln["invoice_id"],
        c,
        utc(ln["period_start"]),
        utc(ln["period_end"]),
        ln["line_no"],
        ln["kind"],
        ln["meter"],
        _d(ln["quantity"]),
        _d(ln["unit_price"]),
        Decimal(ln["amount"]),
    ]


def _invoice(c: str, i: dict[str, Any], version: int) -> list[Any]:
    return [
        i["invoice_id"],
        c,
        i["currency"],
        i["kind"],
        utc(i["period_start"]),
        utc(i["period_end"]),
        utc(i["issued_at"]),
        Decimal(i["amount_due"]),
        Decimal(i["amount_paid"]),
        Decimal(i["remaining"]),
        i["status"],
        version,
        i.get("payment_method_id"),
        i.get("payment_method_name"),
        i.get("plan_currency"),
        Decimal(i["fx_rate"]) if "fx_rate" in i else None,
        utc(i["fx_rate_effective_from"]) if "fx_rate_effective_from" in i else None,
    ]


def _payment(c: str, p: dict[str, Any]) -> list[Any]:
    return [
        p["payment_id"],
        c,
        p["processor"],
        p["status"],
        Decimal(p["amount"]),
        p["currency"],
        p["pays_kind"],
        p["pays_id"],
        p.get("failure_code") or "",
        utc(p["occurred_at"]),
        p.get("payment_method_id"),
        p.get("payment_method_name"),
        _d(p.get("dispute_fee")),
    ]


def _topup(c: str, t: dict[str, Any]) -> list[Any]:
    return [
        t["request_id"],
        c,
        Decimal(t["amount"]),
        t["currency"],
        utc(t["requested_at"]),
        t["attempt"],
        # A top-up request pays itself; a dunning retry pays its invoice (008_payment_requests).
        t.get("pays_kind", "topup"),
        t.get("pays_id") or t["request_id"],
    ]


def _alert(c: str, a: dict[str, Any]) -> list[Any]:
    return [a["alert_id"], c, a["kind"], utc(a["at"]), a["ref"], dict(a["data"])]


def outbox_rows(state: AccountState) -> dict[Table, list[list[Any]]]:
    """Rows of one account's outbox, by table (tables with no rows left out)."""
    o = state.outbox
    c = state.customer_id
    rows: dict[Table, list[list[Any]]] = {
        CREDIT_LEDGER: [_ledger(c, e) for e in o["entries"]],
        INVOICE_LINES: [_line(c, ln) for inv in o["invoices"] for ln in inv["lines"]],
        INVOICES: [_invoice(c, i, state.version) for i in o["invoices"]],
        PAYMENTS: [_payment(c, p) for p in o["payments"]],
        TOPUPS: [_topup(c, t) for t in o["topups"]],
        ALERTS: [_alert(c, a) for a in o["alerts"]],
    }
    if state.balance_dirty:
        account = state.account
        rows[BALANCE_HISTORY] = [[c, account.balance(), utc(account.clock or 0), state.version]]
    return {table: r for table, r in rows.items() if r}
