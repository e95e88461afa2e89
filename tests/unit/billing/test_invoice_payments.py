"""Invoice payments: partial and several payments, overpayment as credit, past due, payment
method, unlink and relink (invoice_payments.py)."""

from __future__ import annotations

import json
from decimal import Decimal

from meterline.billing.account import Account

from .helpers import DAY, HOUR, is_empty, through_json
from .payment_outcomes import invoiced_account, pay

D = Decimal


def _identity(account: Account) -> None:
    w = account.wallet
    assert w.balance_total == sum((g.remaining for g in w.grants.values()), D(0))
    assert w.balance_total == sum(w.totals.values(), D(0))


def test_several_partial_payments_then_an_overpayment_becomes_credit() -> None:
    account, inv_id, t = invoiced_account()
    account.apply_payment(pay("a", "succeeded", "4", inv_id, t))
    assert account.invoices[inv_id].status == "partially_paid"
    before = account.wallet.balance_total
    fx = account.apply_payment(pay("b", "succeeded", "9.50", inv_id, t + 1))
    [entry] = fx.entries
    assert (entry.kind, entry.grant_id, entry.amount, entry.ref) == (
        "overpayment",
        "overpay:b",
        D("3.50"),
        "b",
    )
    inv = account.invoices[inv_id]
    assert (inv.amount_paid, inv.remaining, inv.status) == (D("10.00"), D("0.00"), "paid")
    grant = account.wallet.grants["overpay:b"]
    assert (grant.category, grant.priority) == ("paid", 100)
    assert account.wallet.balance_total == before + D("3.50")
    _identity(account)
    # The same outcome again changes nothing; a payment of a paid invoice is all credit.
    assert account.apply_payment(pay("b", "succeeded", "9.50", inv_id, t + 2)).status == (
        "duplicate"
    )
    fx = account.apply_payment(pay("c", "succeeded", "1", inv_id, t + 3))
    assert [(e.kind, e.amount) for e in fx.entries] == [("overpayment", D(1))]


def test_refund_of_an_overpayment_takes_the_credit_back_first() -> None:
    account, inv_id, t = invoiced_account()
    account.apply_payment(pay("b", "succeeded", "13", inv_id, t))
    fx = account.apply_payment(pay("b", "refunded", "4", inv_id, t + 1))
    assert [(e.kind, e.amount) for e in fx.entries] == [("reversal", D(-3))]
    assert account.invoices[inv_id].remaining == D(1)
    _identity(account)


def test_a_declined_invoice_is_retried_on_schedule_then_past_due_once() -> None:
    account, inv_id, t = invoiced_account()  # retry delays (accounts.POLICY): 1 h, then 3 h
    account.apply_payment(pay("a", "succeeded", "4", inv_id, t))
    fx = account.apply_payment(pay("f1", "failed", "6", inv_id, t + 1))
    assert fx.alert_kinds() == ["invoice_payment_failed"] and not fx.topups
    assert fx.alerts[0].data["retry_at"] == str(t + 1 + HOUR)
    assert not account.tick(t + HOUR).topups  # not due yet
    again = through_json(account)
    assert again.dunning == account.dunning
    [retry] = again.tick(t + 1 + HOUR).topups
    [same] = account.tick(t + 1 + HOUR).topups
    assert retry == same
    assert retry.to_dict() == {
        "request_id": f"retry:{inv_id}:1",
        "customer_id": "cust",
        "amount": "6.00",
        "currency": "USD",
        "requested_at": t + 1 + HOUR,
        "attempt": 2,
        "pays_kind": "invoice",
        "pays_id": inv_id,
    }
    assert not account.tick(t + 2 * HOUR).topups  # asked once
    account.apply_payment(pay("f2", "failed", "6", inv_id, t + 2 * HOUR))
    [retry] = account.tick(t + 5 * HOUR).topups
    assert (retry.request_id, retry.attempt) == (f"retry:{inv_id}:2", 3)
    fx = account.apply_payment(pay("f3", "failed", "6", inv_id, t + 5 * HOUR))
    assert fx.alert_kinds() == ["invoice_payment_failed", "invoice_past_due"]
    assert fx.alerts[1].alert_id == f"alert:cust:invoice_past_due:{inv_id}:3"
    assert [i.status for i in fx.invoices] == ["past_due"]
    assert account.dunning[inv_id].retry_at is None  # the round is over
    fx = account.apply_payment(pay("f4", "failed", "6", inv_id, t + 6 * HOUR))
    assert fx.alert_kinds() == ["invoice_payment_failed"] and not fx.invoices
    assert not account.tick(t + 30 * HOUR).topups
    account.apply_payment(pay("ok", "succeeded", "6", inv_id, t + 31 * HOUR))
    assert account.invoices[inv_id].status == "paid"
    assert through_json(account).invoices[inv_id] == account.invoices[inv_id]


def test_a_payment_that_settles_the_invoice_ends_its_round_and_a_reopened_one_starts_anew() -> None:
    account, inv_id, t = invoiced_account()
    # A state without dunning keeps the shape it had.
    assert "dunning" not in account.to_dict()
    account.apply_payment(pay("f1", "failed", "10", inv_id, t))
    account.apply_payment(pay("ok", "succeeded", "10", inv_id, t + 1))
    assert not account.tick(t + DAY).topups
    # A refund reopens it; its next decline starts a new round, with ids of its own.
    account.apply_payment(pay("ok", "refunded", "4", inv_id, t + DAY + 1))
    fx = account.apply_payment(pay("f2", "failed", "4", inv_id, t + DAY + 2))
    assert fx.alerts[0].data["retry_at"] == str(t + DAY + 2 + HOUR)  # the first delay again
    [retry] = account.tick(t + 2 * DAY).topups
    assert (retry.request_id, retry.amount, retry.attempt) == (f"retry:{inv_id}:2", D(4), 2)
    assert account.dunning == through_json(account).dunning


def test_payment_method_on_the_outcome_record_and_invoice() -> None:
    account, inv_id, t = invoiced_account()
    method = {"payment_method_id": "pm_123", "payment_method_name": "Visa •••• 4242"}
    fx = account.apply_payment(pay("a", "succeeded", "4", inv_id, t, **method))
    assert fx.payments[0].to_dict()["payment_method_id"] == "pm_123"
    assert (account.payments["a"].method_id, account.payments["a"].method_name) == (
        "pm_123",
        "Visa •••• 4242",
    )
    inv = fx.invoices[0].to_dict()
    assert (inv["payment_method_id"], inv["payment_method_name"]) == ("pm_123", "Visa •••• 4242")
    account.apply_payment(pay("b", "succeeded", "6", inv_id, t + 1, payment_method_name="ACH"))
    assert account.invoices[inv_id].payment_method_name == "ACH"
    again = through_json(account)
    assert again.payments == account.payments and again.invoices == account.invoices
    # Without a method, the dicts keep the shape they had.
    assert "payment_method_id" not in pay("x", "failed", "1", inv_id, t).to_dict()


def test_unlink_reopens_the_invoice_and_a_relink_pays_another() -> None:
    account, inv_id, t = invoiced_account()
    account.apply_payment(pay("a", "succeeded", "10", inv_id, t))
    fx = account.apply_payment(pay("a", "unlinked", "10", inv_id, t + 1))
    inv = fx.invoices[0]
    assert (inv.amount_paid, inv.remaining, inv.status) == (D("0.00"), D("10.00"), "open")
    # A re-delivered unlink, or the first success again, change nothing.
    assert account.apply_payment(pay("a", "unlinked", "10", inv_id, t + 1)).status == "duplicate"
    assert account.apply_payment(pay("a", "succeeded", "10", inv_id, t)).status == "duplicate"
    advance = account.bill_in_advance(t + 2).invoices[0].invoice_id
    fx = account.apply_payment(pay("a", "succeeded", "10", advance, t + 3))
    assert fx.status == "applied"
    assert account.invoices[advance].status == "paid"  # the fee, 10.00
    assert account.invoices[inv_id].remaining == D("10.00")
    assert account.payments["a"].pays_id == advance
    # Unlinked from the advance invoice and relinked to the first one: nothing counted twice.
    account.apply_payment(pay("a", "unlinked", "10", advance, t + 4))
    account.apply_payment(pay("a", "succeeded", "10", inv_id, t + 5))
    assert account.invoices[inv_id].status == "paid"
    assert account.invoices[advance].remaining == D("10.00")
    again = through_json(account)
    assert again.payments == account.payments
    _identity(account)


def test_unlink_of_a_topup_or_an_unknown_payment_is_rejected() -> None:
    account, inv_id, t = invoiced_account()
    assert account.apply_payment(pay("zz", "unlinked", "1", inv_id, t)).status == "rejected"
    assert account.apply_payment(pay("zz", "unknown", "1", inv_id, t)).status == "rejected"


def test_rows_without_the_new_fields_are_what_older_code_wrote() -> None:
    """A payment that uses none of the new rules is written as before, but for the time of its
    success (``la``: a later unlink is ordered against it), and a row written before ``applied``
    or ``la`` were kept decodes with what the old rule counted on the invoice."""
    account, inv_id, t = invoiced_account()
    account.apply_payment(pay("a", "succeeded", "4", inv_id, t))
    account.apply_payment(pay("a", "refunded", "1", inv_id, t + 1))
    [row] = account.to_dict()["payments"]
    assert row == ["a", f"i:{inv_id}", "sr", "4", row[4], None, {"rf": "1", "la": t}]
    [inv] = account.to_dict()["invoices"]
    assert "pd" not in inv and "pm" not in inv
    state = json.loads(json.dumps(account.to_dict()))
    del state["payments"][0][6]["la"]
    again = Account.from_dict(state)
    assert again.payments["a"].applied == D(3) and again.payments["a"].link_at is None
    assert again.invoices[inv_id].remaining == D("7.00")
    # Such a payment still unlinks, and is not unlinked twice.
    assert again.apply_payment(pay("a", "unlinked", "0", inv_id, t + 2)).status == "applied"
    assert again.invoices[inv_id].remaining == D("10.00")
    assert again.apply_payment(pay("a", "unlinked", "0", inv_id, t + 2)).status == "duplicate"


def test_an_unlink_stamped_before_the_success_changes_nothing() -> None:
    """Found by hypothesis: the unlink was applied, and a replay of the success relinked."""
    account, inv_id, t = invoiced_account()
    assert account.apply_payment(pay("p", "succeeded", "4", inv_id, t + 5)).status == "applied"
    assert account.apply_payment(pay("p", "unlinked", "0", inv_id, t + 3)).status == "duplicate"
    before = account.to_dict()
    assert is_empty(account.apply_payment(pay("p", "succeeded", "4", inv_id, t + 5)))
    assert account.to_dict() == before and account.invoices[inv_id].remaining == D("6.00")


def test_a_later_report_of_a_success_orders_the_unlinks_after_it() -> None:
    """Found by hypothesis: success at t, again at t+2 (a duplicate), an unlink at t+1 applied,
    then the t+2 success replayed relinked. Now the t+2 report keeps its time and the unlink,
    older than it, changes nothing: in either order of arrival the payment ends linked."""
    account, inv_id, t = invoiced_account()
    account.apply_payment(pay("p", "succeeded", "4", inv_id, t))
    later = account.apply_payment(pay("p", "succeeded", "4", inv_id, t + 2))
    assert later.status == "duplicate" and is_empty(later)
    assert account.apply_payment(pay("p", "unlinked", "0", inv_id, t + 1)).status == "duplicate"
    before = account.to_dict()
    assert is_empty(account.apply_payment(pay("p", "succeeded", "4", inv_id, t + 2)))
    assert account.to_dict() == before and account.invoices[inv_id].remaining == D("6.00")

    other, inv_id, t = invoiced_account()
    other.apply_payment(pay("p", "succeeded", "4", inv_id, t))
    assert other.apply_payment(pay("p", "unlinked", "0", inv_id, t + 1)).status == "applied"
    assert other.apply_payment(pay("p", "succeeded", "4", inv_id, t + 2)).status == "applied"
    assert other.invoices[inv_id].remaining == D("6.00")
