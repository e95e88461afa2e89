"""The payment method reaches the ``payments`` and ``invoices`` rows (migration 007), and rows
of outcomes or invoices without one carry NULL; a dispute fee and what a payment request pays
reach ``payments`` and ``topups`` (migration 010)."""

from __future__ import annotations

from decimal import Decimal

from sinks.tables.billing import INVOICES, PAYMENTS, TOPUPS, _invoice, _payment, _topup

PAYMENT = {
    "payment_id": "p1",
    "processor": "stripe",
    "status": "succeeded",
    "amount": "10.00",
    "currency": "USD",
    "pays_kind": "invoice",
    "pays_id": "inv:c:1",
    "occurred_at": 0,
    "failure_code": None,
}
INVOICE = {
    "invoice_id": "inv:c:1",
    "currency": "USD",
    "kind": "period",
    "period_start": 0,
    "period_end": 1,
    "issued_at": 1,
    "amount_due": "10.00",
    "amount_paid": "10.00",
    "remaining": "0.00",
    "status": "paid",
}
METHOD = {"payment_method_id": "pm_123", "payment_method_name": "Visa •••• 4242"}


def _named(columns: tuple[str, ...], row: list) -> dict:
    assert len(columns) == len(row)
    return dict(zip(columns, row, strict=True))


def test_payment_method_columns() -> None:
    row = _named(PAYMENTS.columns, _payment("c", {**PAYMENT, **METHOD}))
    assert (row["payment_method_id"], row["payment_method_name"]) == ("pm_123", "Visa •••• 4242")
    row = _named(PAYMENTS.columns, _payment("c", PAYMENT))
    assert (row["payment_method_id"], row["payment_method_name"]) == (None, None)
    row = _named(INVOICES.columns, _invoice("c", {**INVOICE, **METHOD}, 3))
    assert row["payment_method_name"] == "Visa •••• 4242"
    assert _named(INVOICES.columns, _invoice("c", INVOICE, 3))["payment_method_id"] is None


def test_dispute_fee_and_what_a_request_pays() -> None:
    lost = {**PAYMENT, "status": "dispute_lost", "dispute_fee": "15"}
    assert _named(PAYMENTS.columns, _payment("c", lost))["dispute_fee"] == Decimal(15)
    assert _named(PAYMENTS.columns, _payment("c", PAYMENT))["dispute_fee"] is None
    request = {
        "request_id": "topup:c:1",
        "customer_id": "c",
        "amount": "20.00",
        "currency": "USD",
        "requested_at": 0,
        "attempt": 1,
    }
    row = _named(TOPUPS.columns, _topup("c", request))
    assert (row["pays_kind"], row["pays"]) == ("topup", "topup:c:1")
    retry = {
        **request,
        "request_id": "retry:inv:c:1:1",
        "pays_kind": "invoice",
        "pays_id": "inv:c:1",
    }
    row = _named(TOPUPS.columns, _topup("c", retry))
    assert (row["pays_kind"], row["pays"]) == ("invoice", "inv:c:1")
