"""Disputes of top-up and invoice payments (disputes.py)."""

from __future__ import annotations

from decimal import Decimal

from meterline.billing.account import Account

from .accounts import START, new_account
from .helpers import HOUR, through_json
from .payment_outcomes import invoiced_account, pay

D = Decimal


def _identity(account: Account) -> None:
    w = account.wallet
    assert w.balance_total == sum((g.remaining for g in w.grants.values()), D(0))
    assert w.balance_total == sum(w.totals.values(), D(0))


def topped_up() -> tuple[Account, int]:
    """Plan credits spent down to 1 general and 4 image credits, then a 20.00 top-up paid
    (grant topup:p1)."""
    account = new_account()
    account.apply_usage("burn", "llm", D(1), START + 1, D("14"))
    t = START + HOUR
    fx = account.apply_payment(pay("p1", "succeeded", "20.00", "topup:cust:1", t, kind="topup"))
    assert fx.status == "applied"
    return account, t


def test_dispute_opened_holds_the_unspent_credits_and_won_gives_them_back() -> None:
    account, t = topped_up()
    account.apply_usage("spend", "llm", D(1), t + 1, D("12"))  # 1 plan credit, 11 of the top-up
    assert account.wallet.grants["topup:p1"].remaining == D(9)
    balance = account.balance()
    fx = account.apply_payment(pay("p1", "dispute_opened", "20", "topup:cust:1", t + 2, "topup"))
    assert [(e.kind, e.amount) for e in fx.entries] == [("dispute_hold", D(-9))]
    assert account.balance() == balance - 9
    _identity(account)
    again = through_json(account)
    assert again.wallet.grants["topup:p1"].held == D(9)
    repeat = pay("p1", "dispute_opened", "20", "topup:cust:1", t + 3, "topup")
    assert account.apply_payment(repeat).status == "duplicate"
    fx = account.apply_payment(pay("p1", "dispute_won", "20", "topup:cust:1", t + 4, "topup"))
    assert [(e.kind, e.amount) for e in fx.entries] == [("dispute_release", D(9))]
    assert account.balance() == balance
    _identity(account)


def test_a_refund_while_disputed_takes_held_credits_so_winning_gives_back_only_the_rest() -> None:
    # Found by the payment property test (an EUR overpayment disputed, refunded, then won):
    # the refund saw no spendable credits (all held), so it reversed nothing and either
    # owed the amount as money or, with nothing spent, took nothing; winning then gave every
    # held credit back.
    account, t = topped_up()
    account.apply_usage("spend", "llm", D(1), t + 1, D("12"))  # 9 of the top-up left
    balance = account.balance()
    account.apply_payment(pay("p1", "dispute_opened", "20", "topup:cust:1", t + 2, "topup"))
    fx = account.apply_payment(pay("p1", "refunded", "5", "topup:cust:1", t + 3, "topup"))
    assert [(e.kind, e.amount) for e in fx.entries] == [
        ("dispute_release", D(5)),
        ("reversal", D(-5)),
    ]
    assert account.owed == 0  # unspent credits came back: no money is owed for them
    _identity(account)
    fx = account.apply_payment(pay("p1", "dispute_won", "20", "topup:cust:1", t + 4, "topup"))
    assert [(e.kind, e.amount) for e in fx.entries] == [("dispute_release", D(4))]
    assert account.balance() == balance - 5
    _identity(account)


def test_dispute_lost_is_reversed_as_a_refund() -> None:
    account, t = topped_up()
    account.apply_usage("spend", "llm", D(1), t + 1, D("12"))
    account.apply_payment(pay("p1", "dispute_opened", "20", "topup:cust:1", t + 2, "topup"))
    fx = account.apply_payment(pay("p1", "dispute_lost", "20", "topup:cust:1", t + 3, "topup"))
    assert [(e.kind, e.amount) for e in fx.entries] == [
        ("dispute_release", D(9)),
        ("reversal", D(-9)),
    ]
    assert account.owed == D(11)  # the spent part, billed on the next invoice
    assert "refund_debt" in fx.alert_kinds()
    _identity(account)
    # A later refund of what the dispute already took back changes nothing.
    late = pay("p1", "refunded", "20", "topup:cust:1", t + 4, "topup")
    assert account.apply_payment(late).status == "duplicate"


def test_dispute_of_a_payment_that_never_succeeded_is_rejected() -> None:
    account = new_account()
    account.apply_usage("burn", "llm", D(1), START + 1, D("14"))
    fx = account.apply_payment(pay("p1", "dispute_opened", "5", "topup:cust:1", START + 2, "topup"))
    assert fx.status == "rejected" and "never succeeded" in fx.errors[0]


def test_invoice_dispute_reopens_the_invoice_until_won() -> None:
    account, inv_id, t = invoiced_account()
    account.apply_payment(pay("a", "succeeded", "10", inv_id, t))
    fx = account.apply_payment(pay("a", "dispute_opened", "10", inv_id, t + 1))
    assert (fx.invoices[0].remaining, fx.invoices[0].status) == (D("10.00"), "open")
    fx = account.apply_payment(pay("a", "dispute_won", "10", inv_id, t + 2))
    assert fx.invoices[0].status == "paid"


def test_invoice_dispute_lost_leaves_it_open() -> None:
    account, inv_id, t = invoiced_account()
    account.apply_payment(pay("a", "succeeded", "12", inv_id, t))  # 2.00 became credit
    fx = account.apply_payment(pay("a", "dispute_opened", "12", inv_id, t + 1))
    assert [(e.kind, e.amount) for e in fx.entries] == [("dispute_hold", D(-2))]
    fx = account.apply_payment(pay("a", "dispute_lost", "12", inv_id, t + 2))
    assert [e.kind for e in fx.entries] == ["dispute_release", "reversal"]
    [inv] = fx.invoices  # one version per outcome
    assert (inv.remaining, inv.status) == (D("10.00"), "open")
    _identity(account)


def test_a_lost_disputes_fee_is_billed_once_on_the_next_invoice() -> None:
    account, t = topped_up()
    account.apply_payment(pay("p1", "dispute_opened", "20", "topup:cust:1", t + 1, "topup"))
    lost = pay("p1", "dispute_lost", "20", "topup:cust:1", t + 2, "topup", dispute_fee="15")
    assert lost.to_dict()["dispute_fee"] == "15"
    assert account.apply_payment(lost).status == "applied"
    assert account.apply_payment(lost).status == "duplicate"
    again = through_json(account)
    assert again.dispute_fees == account.dispute_fees == D(15)
    [inv] = again.tick(START + 40 * 24 * HOUR).invoices
    assert inv.line("dispute_fee").amount == D("15.00")
    assert inv.amount_due == sum(
        (x.amount for x in inv.lines if x.kind not in ("overage", "amount_due")), D(0)
    )
    assert again.dispute_fees == 0 and "dispute_fees" not in again.to_dict()
