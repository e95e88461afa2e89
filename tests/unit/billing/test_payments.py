"""Payment outcomes: what each status does, partial refunds, and what goes to the DLQ."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterline.billing.account import Account
from meterline.billing.payments import PaymentOutcome

from .accounts import START, new_account
from .helpers import HOUR, is_empty

D = Decimal


def outcome(
    payment_id: str,
    status: str,
    amount: str,
    pays: str,
    at: int = START + HOUR,
    kind: str = "topup",
    currency: str = "USD",
) -> PaymentOutcome:
    """Built from the dict form, as the adapter will: statuses arrive as plain strings."""
    code = "do_not_honor" if status == "failed" else None
    return PaymentOutcome.from_dict(
        {
            "payment_id": payment_id,
            "customer_id": "cust",
            "processor": "acme",
            "status": status,
            "amount": amount,
            "currency": currency,
            "pays_kind": kind,
            "pays_id": pays,
            "occurred_at": at,
            "failure_code": code,
        }
    )


def low_account() -> Account:
    """An account whose first top-up request (topup:cust:1, 20.00) is pending."""
    account = new_account()
    fx = account.apply_usage("burn", "llm", D(1), START + 1, D("14"))
    assert [t.request_id for t in fx.topups] == ["topup:cust:1"]
    return account


def test_success_grants_paid_credits_once() -> None:
    account = low_account()
    fx = account.apply_payment(outcome("p1", "succeeded", "20.00", "topup:cust:1"))
    [entry] = fx.entries
    assert (entry.kind, entry.grant_id, entry.amount) == ("topup", "topup:p1", D("20.00"))
    grant = account.wallet.grants["topup:p1"]
    assert (grant.category, grant.priority, grant.expires_at) == ("paid", 100, None)
    assert is_empty(account.apply_payment(outcome("p1", "succeeded", "20.00", "topup:cust:1")))


def test_partial_refunds_are_cumulative() -> None:
    account = low_account()
    account.apply_payment(outcome("p1", "succeeded", "20.00", "topup:cust:1"))
    # 6 more: the last 1 of the plan credits, then 5 of the 20 bought.
    account.apply_usage("u", "llm", D(1), START + 2 * HOUR, D("6"))
    fx = account.apply_payment(outcome("p1", "refunded", "6.00", "topup:cust:1"))
    assert [e.amount for e in fx.entries] == [D("-6.00")]
    assert account.apply_payment(outcome("p1", "refunded", "6.00", "topup:cust:1")).status == (
        "duplicate"
    )
    fx = account.apply_payment(outcome("p1", "refunded", "20.00", "topup:cust:1"))
    # 9 unspent are reversed; the 5 already spent are owed and billed at period close.
    assert [e.amount for e in fx.entries] == [D("-9.00")]
    assert fx.alert_kinds()[0] == "refund_debt" and account.owed == D("5.00")
    assert account.apply_payment(outcome("p1", "refunded", "3.00", "topup:cust:1")).status == (
        "duplicate"
    )


def test_cancel_after_success_voids_and_failure_after_success_is_ignored() -> None:
    account = low_account()
    account.apply_payment(outcome("p1", "succeeded", "20.00", "topup:cust:1"))
    fx = account.apply_payment(outcome("p1", "failed", "20.00", "topup:cust:1"))
    assert fx.status == "ignored" and not fx.entries and not fx.alerts
    fx = account.apply_payment(outcome("p1", "canceled", "20.00", "topup:cust:1"))
    assert [(e.kind, e.amount) for e in fx.entries] == [("void", D("-20.00"))]
    assert account.owed == 0


def test_decline_then_success_of_the_same_payment() -> None:
    account = low_account()
    fx = account.apply_payment(outcome("p1", "failed", "20.00", "topup:cust:1"))
    assert fx.alert_kinds() == ["topup_failed"]
    fx = account.apply_payment(
        outcome("p1", "succeeded", "20.00", "topup:cust:1", at=START + 2 * HOUR)
    )
    assert [e.kind for e in fx.entries] == ["topup"]
    assert account.topup is not None and account.topup.failures == 0


def test_dunning_runs_out_and_suspends() -> None:
    account = low_account()
    at, kinds = START + 1, []
    for n in (1, 2, 3):
        at += 4 * HOUR
        fx = account.apply_payment(outcome(f"p{n}", "failed", "20", f"topup:cust:{n}", at=at))
        kinds += fx.alert_kinds()
        retry = account.tick(at + 4 * HOUR).topups
        assert [t.request_id for t in retry] == ([f"topup:cust:{n + 1}"] if n < 3 else [])
        at += 4 * HOUR
    assert kinds == ["topup_failed", "topup_failed", "topup_failed", "topup_suspended"]


def test_invoice_payments() -> None:
    account = new_account()
    inv_id = account.tick(START + 40 * 24 * HOUR).invoices[0].invoice_id
    assert account.invoices[inv_id].amount_due == D("10.00")
    fx = account.apply_payment(outcome("i1", "failed", "10", inv_id, kind="invoice"))
    # A failed payment of an unpaid invoice starts its dunning schedule (dunning.py).
    assert fx.alert_kinds() == ["invoice_payment_failed"] and "i1" not in account.dunning
    assert account.dunning[inv_id].failures == 1
    account.apply_payment(outcome("i2", "succeeded", "4", inv_id, kind="invoice"))
    assert account.invoices[inv_id].status == "partially_paid"
    account.apply_payment(outcome("i3", "succeeded", "6", inv_id, kind="invoice"))
    assert account.invoices[inv_id].status == "paid"
    assert account.dunning[inv_id].retry_at is None  # the round ended
    fx = account.apply_payment(outcome("i3", "refunded", "2.5", inv_id, kind="invoice"))
    [inv] = fx.invoices
    assert (inv.amount_paid, inv.remaining, inv.status) == (D("7.5"), D("2.50"), "partially_paid")
    assert account.apply_payment(outcome("i4", "canceled", "1", inv_id, kind="invoice")).status == (
        "ignored"
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (outcome("p9", "succeeded", "5", "topup:cust:77"), "unknown top-up request"),
        (outcome("p9", "succeeded", "5", "inv:nope", kind="invoice"), "unknown invoice"),
        (outcome("p9", "refunded", "5", "topup:cust:1"), "never succeeded"),
        (outcome("p9", "succeeded", "5", "topup:cust:1", currency="EUR"), "expected USD"),
        (outcome("p9", "succeeded", "0", "topup:cust:1"), "no amount"),
    ],
)
def test_unknown_or_invalid_outcomes_go_to_the_dlq(bad: PaymentOutcome, reason: str) -> None:
    account = low_account()
    before = account.to_dict()
    fx = account.apply_payment(bad)
    assert fx.status == "rejected" and reason in fx.errors[0]
    assert account.to_dict() == before


def test_payment_reusing_an_id_for_another_target_is_rejected() -> None:
    account = low_account()
    account.apply_payment(outcome("p1", "failed", "20", "topup:cust:1"))
    account.tick(START + 3 * HOUR)
    fx = account.apply_payment(outcome("p1", "succeeded", "20", "topup:cust:2"))
    assert fx.status == "rejected" and "already pays" in fx.errors[0]


def test_outcome_dict_round_trip_and_validation() -> None:
    o = outcome("p1", "failed", "20.10", "topup:cust:1")
    assert PaymentOutcome.from_dict(o.to_dict()) == o
    with pytest.raises(ValueError):
        outcome("p1", "chargeback", "1", "x")
    with pytest.raises(ValueError):
        outcome("p1", "succeeded", "-1", "x")
