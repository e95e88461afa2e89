"""Account aggregate: properties over random histories, and the rules the scenario doesn't hit."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings

from meterline.billing.account import Account
from meterline.billing.catalog import Plan, RateCardEntry
from meterline.billing.commands import apply_command
from meterline.billing.invoice import SUMMARY_KINDS
from meterline.billing.ledger import LedgerEntry
from meterline.billing.payments import PaymentOutcome
from meterline.billing.periods import BillingAnchor
from meterline.billing.pricing import PerUnit, Tier, Volume

from .accounts import START, apply, histories, new_account
from .helpers import DAY, effects_dict, every_model_plan, is_empty, through_json, utc

D = Decimal


@settings(deadline=None)
@given(histories)
def test_state_round_trip_preserves_behaviour(ops: list) -> None:
    straight, restored = new_account(), through_json(new_account())
    for n, op in enumerate(ops):
        fx_a, _ = apply(straight, op, n)
        fx_b, _ = apply(restored, op, n)
        assert effects_dict(fx_a) == effects_dict(fx_b)
        restored = through_json(restored)
    assert straight.to_dict() == restored.to_dict()


@settings(deadline=None)
@given(histories)
def test_replayed_payment_outcomes_change_nothing(ops: list) -> None:
    account = new_account()
    accepted: list[PaymentOutcome] = []
    for n, op in enumerate(ops):
        fx, outcome = apply(account, op, n)
        if outcome is not None and fx.status != "rejected":
            accepted.append(outcome)
            before = account.to_dict()
            again = account.apply_payment(outcome)  # delivered twice in a row
            assert is_empty(again) and account.to_dict() == before
    before = account.to_dict()
    for outcome in accepted:  # and once more, much later
        assert is_empty(account.apply_payment(outcome))
    assert account.to_dict() == before


@settings(deadline=None)
@given(histories)
def test_ledger_invoices_and_topups_stay_consistent(ops: list) -> None:
    account = new_account()
    ledger: list[LedgerEntry] = []
    pending: set[str] = set()
    for n, op in enumerate(ops):
        fx, outcome = apply(account, op, n)
        ledger += fx.entries
        # The cooldown counts from the previous request (issue 9), so the outcome that closes
        # a request may be followed by the next request in the same step: what must never
        # happen is a request while another is still pending after this step's outcome.
        if outcome is not None and account.topup is not None:
            pending -= {r for r in pending if account.topup.requests.get(r) != "pending"}
        # (Retries of unpaid invoices share the topic: dunning.py. Only top-ups count here.)
        for request in (t for t in fx.topups if t.pays_kind == "topup"):
            assert not pending, "a second top-up while one is pending"
            pending.add(request.request_id)
        if account.topup is not None:
            pending = {r for r, s in account.topup.requests.items() if s == "pending"}
        for inv in fx.invoices:
            charges = sum((x.amount for x in inv.lines if x.kind not in SUMMARY_KINDS), D(0))
            assert inv.line("amount_due").amount == inv.amount_due == charges
            usage = sum(
                (x.amount for x in inv.lines if x.kind in ("usage", "credits_applied")), D(0)
            )
            assert inv.line("overage").amount == usage
        if fx.status == "rejected":
            assert fx.errors and not (fx.entries or fx.topups or fx.invoices)
    start = new_account().wallet.seq
    assert [e.seq for e in ledger] == list(range(start + 1, start + len(ledger) + 1))
    opening = new_account().wallet.balance_total
    assert opening + sum((e.amount for e in ledger), D(0)) == account.wallet.balance_total
    assert account.wallet.balance_total == sum(
        (g.remaining for g in account.wallet.grants.values()), D(0)
    )


VSTART = utc(2025, 1, 31)


def _vol_account() -> Account:
    plan = Plan(
        "vol",
        "USD",
        D(0),
        (),
        {"m": RateCardEntry("m", Volume((Tier(D(10), D("1.00")), Tier(None, D("0.50")))))},
    )
    account = Account("v")
    account.upsert(plan, BillingAnchor(VSTART), VSTART)
    return account


def test_volume_rebate_first_lowers_overage_then_returns_credits() -> None:
    account = _vol_account()
    account.grant("a", D(6), VSTART)
    fx = account.apply_usage("e1", "m", D(10), VSTART + 1)  # 10.00: 6 credits, 4 overage
    assert [e.amount for e in fx.entries] == [D(-6)]
    # 11 units: the whole quantity is now at 0.50 → 5.50 total, a marginal cost of -4.50.
    fx = account.apply_usage("e2", "m", D(1), VSTART + 2)
    assert [(e.kind, e.grant_id, e.amount) for e in fx.entries] == [("rebate", "a", D("0.50"))]
    u = account.usage["m"]
    assert (u.amount, u.credits, u.overage) == (D("5.50"), D("5.50"), D(0))
    inv = account.tick(utc(2025, 3, 1)).invoices[0]
    assert [(x.kind, x.amount) for x in inv.lines] == [
        ("usage", D("5.50")),
        ("credits_applied", D("-5.50")),
        ("overage", D("0.00")),
        ("amount_due", D("0.00")),
    ]


def test_rejected_input_changes_nothing() -> None:
    empty = Account("x")
    assert empty.apply_usage("e", "api", D(1), START).status == "rejected"
    account = new_account()
    before = account.to_dict()
    for fx in (
        account.apply_usage("e1", "unknown", D(1), START + DAY),
        account.apply_usage("e2", "llm", D(1), START + DAY),  # no cost, no model
        account.apply_usage("e3", "api", D(-1), START + DAY),
        account.void("nope", START + DAY),
        account.grant("g", D(0), START + DAY),
        account.apply_payment(
            PaymentOutcome(
                "p",
                "cust",
                "stripe",
                "succeeded",
                D(5),
                "USD",
                "topup",
                "topup:cust:99",
                START + DAY,
            )
        ),
        account.apply_payment(
            PaymentOutcome(
                "p", "cust", "stripe", "refunded", D(5), "USD", "invoice", "inv:nope", START + DAY
            )
        ),
        account.apply_payment(
            PaymentOutcome(
                "p", "cust", "stripe", "succeeded", D(5), "EUR", "invoice", "inv:nope", START + DAY
            )
        ),
        account.upsert(every_model_plan(), BillingAnchor(START + 1), START + DAY),
    ):
        assert fx.status == "rejected" and fx.errors and not fx.entries
    assert account.to_dict() == before


def test_bill_in_advance_moves_the_fee() -> None:
    account = new_account()
    fx = account.bill_in_advance(START + DAY)
    [adv] = fx.invoices
    nxt = utc(2025, 2, 27, 23)  # 28 Feb, midnight in Berlin
    assert adv.invoice_id == f"inv:cust:{nxt}:advance"
    assert [(x.kind, x.amount) for x in adv.lines] == [
        ("fee", D("10.00")),
        ("overage", D("0")),
        ("amount_due", D("10.00")),
    ]
    assert account.bill_in_advance(START + DAY).status == "duplicate"
    assert account.bill_in_advance(START + DAY, nxt + 1).status == "rejected"
    first = account.tick(nxt).invoices[0]
    assert first.line("fee").amount == D("10.00")  # the first period still has its fee
    second = account.tick(utc(2025, 3, 30, 22)).invoices[0]  # 31 Mar, Berlin summer time
    assert [x.kind for x in second.lines] == ["overage", "amount_due"]


def test_exhausted_and_expiring_alerts_fire_once() -> None:
    account = Account("z")
    plan = Plan("p", "USD", D(0), (), {"m": RateCardEntry("m", PerUnit(D(1)))})
    account.upsert(plan, BillingAnchor(START), START)
    account.grant("g", D(3), START, expires_at=START + 10 * DAY)
    assert account.apply_usage("e1", "m", D(1), START + 6 * DAY).alert_kinds() == []
    assert account.apply_usage("e2", "m", D(1), START + 8 * DAY).alert_kinds() == ["grant_expiring"]
    assert account.apply_usage("e3", "m", D(5), START + 9 * DAY).alert_kinds() == [
        "balance_exhausted"
    ]
    assert account.apply_usage("e4", "m", D(1), START + 9 * DAY).alert_kinds() == []


def test_late_event_is_charged_now_into_the_open_period() -> None:
    account = _vol_account()
    account.tick(utc(2025, 3, 5))
    fx = account.apply_usage("late", "m", D(2), VSTART + 1)
    assert fx.status == "applied" and account.usage["m"].quantity == 2
    assert account.period is not None and account.period.start == utc(2025, 2, 28)


def test_upsert_without_policy_disables_top_up_but_keeps_requests() -> None:
    account = new_account()
    account.apply_usage("e", "llm", D(1), START + 1, D("20"))
    assert account.topup is not None and account.topup.pending is not None
    account.upsert(every_model_plan(), BillingAnchor(START, "Europe/Berlin"), START + 2)
    assert not account.topup.policy.enabled and account.topup.pending is not None


def test_commands_from_dicts() -> None:
    plans = {"every-model": every_model_plan()}
    account = Account("cust")
    fx = apply_command(
        account,
        {
            "type": "upsert",
            "customer_id": "cust",
            "plan_id": "every-model",
            "at": START,
            "billing_anchor": START,
            "tz": "UTC",
            "topup": {"threshold": "5", "amount": "20", "retry_delays_ms": [1000, 2000]},
        },
        plans,
    )
    assert fx.status == "applied" and len(fx.entries) == 2
    fx = apply_command(
        account,
        {
            "type": "grant",
            "customer_id": "cust",
            "at": START,
            "grant_id": "promo",
            "amount": "7.5",
            "scope": ["img"],
        },
        plans,
    )
    assert [e.amount for e in fx.entries] == [D("7.5")]
    fx = apply_command(
        account, {"type": "void", "customer_id": "cust", "at": START, "grant_id": "promo"}, plans
    )
    assert [e.kind for e in fx.entries] == ["void"]
    for bad in (
        {"type": "grant", "customer_id": "cust", "at": START, "grant_id": "f", "amount": 1.5},
        {"type": "upsert", "customer_id": "cust", "plan_id": "nope", "at": START},
        {"type": "explode", "customer_id": "cust", "at": START},
        {"type": "void", "customer_id": "other", "at": START, "grant_id": "promo"},
        {"type": "void", "customer_id": "cust", "grant_id": "promo"},
    ):
        assert apply_command(account, bad, plans).status == "rejected"
    assert apply_command(
        account, {"type": "bill_in_advance", "customer_id": "cust", "at": START}, plans
    ).invoices


def test_unrateable_quantity_is_rejected_not_rounded() -> None:
    account = new_account()
    huge = D("9" * 78 + ".5")  # more digits than exact arithmetic keeps
    fx = account.apply_usage("big", "api", huge, START + 1)
    assert fx.status == "rejected" and not fx.entries
    assert "api" not in account.usage


def test_rejected_advance_bill_still_returns_the_period_close() -> None:
    account = new_account()
    fx = account.bill_in_advance(START + 40 * DAY, period_start=START)
    assert fx.status == "rejected" and [i.kind for i in fx.invoices] == ["period"]


def test_plan_change_applies_its_fee_from_the_next_period() -> None:
    account = new_account()
    dearer = replace(every_model_plan(), plan_id="dearer", fee=D("99"))
    account.upsert(dearer, BillingAnchor(START, "Europe/Berlin"), START + DAY)
    first = account.tick(START + 40 * DAY).invoices[0]
    assert first.line("fee").amount == D("10.00")
    second = account.tick(START + 70 * DAY).invoices[0]
    assert second.line("fee").amount == D("99.00")
