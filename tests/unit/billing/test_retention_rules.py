"""Retention, rule by rule (meterline/billing/README.md, "What state keeps and why"): what stays
for as long as something can still happen to it, and what a late input gets once it is gone."""

from __future__ import annotations

from decimal import Decimal

from meterline.billing.account import Account
from meterline.billing.payments import PaymentOutcome
from meterline.billing.periods import BillingAnchor
from meterline.billing.retention import PAYMENT_RETENTION_MS

from .accounts import POLICY, START
from .helpers import DAY, HOUR, every_model_plan, is_empty

D = Decimal
G1 = f"plan:cust:{START}:0"  # the first period's general credits (15, priority 1)


def new_account(retention_ms: int | None) -> Account:
    account = Account("cust", payment_retention_ms=retention_ms)
    account.upsert(every_model_plan(), BillingAnchor(START, "Europe/Berlin"), START, topup=POLICY)
    return account


def pay(
    payment_id: str, status: str, amount: str, pays: str, at: int, kind: str = "topup"
) -> PaymentOutcome:
    return PaymentOutcome.from_dict(
        {
            "payment_id": payment_id,
            "customer_id": "cust",
            "processor": "acme",
            "status": status,
            "amount": amount,
            "currency": "USD",
            "pays_kind": kind,
            "pays_id": pays,
            "occurred_at": at,
        }
    )


def bought_and_spent(account: Account) -> None:
    """A top-up p1 of 20.00, bought at START + 2 h and spent entirely an hour later; a second
    top-up (topup:cust:2) is then pending."""
    fx = account.apply_usage("e1", "llm", D(1), START + HOUR, D("12"))  # 3 + 4 image-only left
    assert [t.request_id for t in fx.topups] == ["topup:cust:1"]
    account.apply_payment(pay("p1", "succeeded", "20.00", "topup:cust:1", START + 2 * HOUR))
    fx = account.apply_usage("e2", "llm", D(1), START + 3 * HOUR, D("23"))
    assert [(e.grant_id, e.amount) for e in fx.entries] == [(G1, D(-3)), ("topup:p1", D(-20))]
    assert [t.request_id for t in fx.topups] == ["topup:cust:2"]


def test_refund_of_an_old_payment_whose_credits_are_spent_bills_what_was_spent() -> None:
    pruned, reference = new_account(PAYMENT_RETENTION_MS), new_account(None)
    for account in (pruned, reference):
        bought_and_spent(account)
        account.tick(START + 70 * DAY)  # two periods later
    assert G1 not in pruned.wallet.grants  # expired, spent: gone
    assert "p1" in pruned.payments and "topup:p1" in pruned.wallet.grants  # in its window
    refund = pay("p1", "refunded", "20.00", "topup:cust:1", START + 70 * DAY)
    fx_pruned, fx_reference = pruned.apply_payment(refund), reference.apply_payment(refund)
    assert fx_pruned == fx_reference
    assert fx_pruned.alert_kinds() == ["refund_debt"] and not fx_pruned.entries
    assert pruned.owed == D("20.00") == reference.owed
    assert pruned.wallet.grants["topup:p1"].clawed == D("20.00")
    assert pruned.apply_payment(refund).status == "duplicate"  # spent part owed once only
    inv = pruned.tick(START + 90 * DAY).invoices[0]
    assert inv.line("refund_adjustment").amount == D("20.00")


def test_a_payment_out_of_its_window_is_forgotten_and_its_replays_are_duplicates() -> None:
    account = new_account(10 * DAY)
    bought_and_spent(account)
    account.tick(START + 40 * DAY)
    assert "p1" not in account.payments and not account.wallet.knows("topup:p1")
    assert account.topup is not None and "topup:cust:1" not in account.topup.requests
    assert account.forgotten_until == START + 2 * HOUR  # p1's last outcome
    before = account.to_dict()
    replay = pay("p1", "succeeded", "20.00", "topup:cust:1", START + 2 * HOUR)
    fx = account.apply_payment(replay)
    assert fx.status == "duplicate" and is_empty(fx)  # not a second 20.00 of credits
    assert account.to_dict() == before
    # An old time does not make garbage a duplicate: a request never issued is still unknown.
    fx = account.apply_payment(pay("p7", "succeeded", "5", "topup:cust:99", START))
    assert fx.status == "rejected" and "unknown top-up request topup:cust:99" in fx.errors[0]
    # News of it, after its window, cannot be applied faithfully: to the DLQ, saying why.
    fx = account.apply_payment(pay("p1", "refunded", "20.00", "topup:cust:1", START + 40 * DAY))
    assert fx.status == "rejected" and "never succeeded (or last paid or refunded" in fx.errors[0]
    assert "more than 10 days ago, now forgotten" in fx.errors[0]
    fx = account.apply_payment(pay("p9", "succeeded", "5", "topup:cust:1", START + 40 * DAY))
    assert fx.status == "rejected" and "unknown top-up request topup:cust:1 (or" in fx.errors[0]
    assert account.to_dict() == before


def test_an_outcome_for_a_pending_request_is_applied_however_old_it_looks() -> None:
    """Nothing was ever applied to a pending request, so its outcome cannot be a replay."""
    account = new_account(10 * DAY)
    bought_and_spent(account)
    account.tick(START + 40 * DAY)
    assert account.topup is not None and account.topup.pending is not None
    assert account.forgotten_until is not None
    late = pay("p2", "succeeded", "20.00", "topup:cust:2", account.forgotten_until)
    fx = account.apply_payment(late)
    assert fx.status == "applied" and [e.kind for e in fx.entries] == ["topup"]


def test_a_grant_id_is_remembered_for_the_window_after_it_was_granted() -> None:
    account = new_account(10 * DAY)
    at = START + HOUR
    assert account.grant("promo", D(5), at, expires_at=START + 5 * DAY).status == "applied"
    account.tick(START + 6 * DAY)  # expired (written off), then dropped by the daily pass
    assert "promo" not in account.wallet.grants and account.wallet.knows("promo")
    again = account.grant("promo", D(5), at, expires_at=START + 5 * DAY)  # the same command
    assert again.status == "duplicate" and is_empty(again)
    fx = account.void("promo", START + 6 * DAY)
    assert fx.status == "applied" and not fx.entries and not fx.errors
    account.tick(START + 12 * DAY)  # granted more than 10 days ago: the id is forgotten too
    assert not account.wallet.knows("promo")
    fx = account.grant("promo", D(5), at, expires_at=START + 5 * DAY)
    assert (
        fx.status == "rejected"
        and "older than the account's 10-day retention window" in (fx.errors[0])
    )
    assert account.void("promo", START + 12 * DAY).status == "rejected"
    # Sent again with a current time it is a new grant, on purpose.
    assert account.grant("promo", D(5), START + 12 * DAY).status == "applied"


def test_an_unsettled_invoice_stays_until_it_is_paid() -> None:
    account = new_account(5 * DAY)
    [inv] = account.tick(START + 30 * DAY).invoices
    account.apply_payment(pay("i1", "succeeded", "4", inv.invoice_id, START + 30 * DAY, "invoice"))
    account.tick(START + 50 * DAY)  # long past i1's window
    assert account.invoices[inv.invoice_id].amount_paid == 4
    assert "i1" in account.payments  # a kept invoice keeps its payments: no payment is new twice
    replay = pay("i1", "succeeded", "4", inv.invoice_id, START + 30 * DAY, "invoice")
    assert account.apply_payment(replay).status == "duplicate"
    fx = account.apply_payment(
        pay("i2", "succeeded", "6", inv.invoice_id, START + 50 * DAY, "invoice")
    )
    assert [i.status for i in fx.invoices] == ["paid"]
    account.tick(START + 60 * DAY)
    assert inv.invoice_id not in account.invoices  # settled, old, no payment of it in the window
    assert not ({"i1", "i2"} & set(account.payments))
    assert [i.status for i in account.invoices.values()] == ["open"]  # the next period's
    assert account.apply_payment(replay).status == "duplicate"  # still, by its time


def test_an_advance_invoice_stays_until_its_period_comes() -> None:
    account = new_account(DAY)
    [adv] = account.bill_in_advance(START + DAY).invoices
    account.apply_payment(pay("a1", "succeeded", "10", adv.invoice_id, START + DAY, "invoice"))
    account.tick(START + 20 * DAY)
    assert adv.invoice_id in account.invoices and "a1" in account.payments
    assert account.bill_in_advance(START + 20 * DAY).status == "duplicate"
    first, second = account.tick(adv.period_end).invoices  # up to the advance-billed period
    assert first.line("fee").amount == D("10.00")
    assert (second.period_start, [x.kind for x in second.lines]) == (
        adv.period_start,
        ["overage", "amount_due"],  # its fee was billed in advance
    )
    account.tick(adv.period_end + 2 * DAY)
    assert adv.invoice_id not in account.invoices and "a1" not in account.payments


def test_a_state_keeps_the_retention_of_whoever_loads_it() -> None:
    account = new_account(None)
    bought_and_spent(account)
    account.tick(START + 200 * DAY)
    assert "p1" in account.payments  # kept forever
    loaded = Account.from_dict(account.to_dict(), payment_retention_ms=10 * DAY)
    loaded.tick(START + 200 * DAY + 1)
    assert "p1" not in loaded.payments
