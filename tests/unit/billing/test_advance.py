"""Bill in advance, fully (issue 9): rate-card items, spans of periods, partial periods, and the
regular cycle after the span billing each item exactly once."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.billing.account import Account
from meterline.billing.advance import AdvanceItem, ItemKind
from meterline.billing.commands import apply_command
from meterline.billing.invoice import Invoice
from meterline.billing.money import round_minor
from meterline.billing.periods import period_by_index
from meterline.billing.pricing import price

from .accounts import START, new_account
from .helpers import DAY, every_model_plan, through_json, utc

D = Decimal
FEE = D("10")  # every_model_plan's
P1 = utc(2025, 2, 27, 23)  # 28 Feb, midnight in Berlin: the period after START's
P2 = utc(2025, 3, 30, 22)  # 31 Mar (summer time)
P3 = utc(2025, 4, 29, 22)  # 30 Apr
P4 = utc(2025, 5, 30, 22)  # 31 May
API = AdvanceItem(ItemKind.METER, "api", D(1000))  # 1000 calls at 0.003: 3.00 a period


def _lines(inv: Invoice, kind: str) -> list[tuple[int, str, Decimal]]:
    return [(x.period_start, x.meter, x.amount) for x in inv.lines if x.kind == kind]


def test_three_months_of_fee_then_the_cycle_resumes() -> None:
    account = new_account()
    [adv] = account.bill_in_advance(START + DAY, periods=3).invoices
    assert adv.invoice_id == f"inv:cust:{P1}:advance:{P4}"
    assert (adv.period_start, adv.period_end, adv.amount_due) == (P1, P4, D("30.00"))
    assert _lines(adv, "fee") == [(P1, "", D("10.00")), (P2, "", D("10.00")), (P3, "", D("10.00"))]
    assert account.bill_in_advance(START + DAY, periods=3).status == "duplicate"
    overlap = account.bill_in_advance(START + DAY, P2)
    assert overlap.status == "rejected" and "already billed in advance" in overlap.errors[0]
    invoices = account.tick(P4 + 1).invoices  # closes the periods up to P4
    fees = {i.period_start: _lines(i, "fee") for i in invoices}
    assert fees[START] != [] and fees[P1] == fees[P2] == fees[P3] == []
    assert through_json(account).to_dict() == account.to_dict()
    [fourth] = account.tick(utc(2025, 6, 29, 22)).invoices
    assert _lines(fourth, "fee") == [(P4, "", D("10.00"))]


def test_up_to_a_date_prorates_the_last_period_and_its_invoice_bills_the_rest() -> None:
    account = new_account()
    until = P2 + 10 * DAY  # 10 of the 30 days of the period from 31 March
    [adv] = account.bill_in_advance(START + DAY, until=until).invoices
    length = P3 - P2
    partial = round_minor(FEE * (until - P2) / length, "USD")
    assert _lines(adv, "fee") == [(P1, "", D("10.00")), (P2, "", partial)]
    assert adv.invoice_id == f"inv:cust:{P1}:advance:{until}"
    partial_line = [x for x in adv.lines if x.kind == "fee"][1]
    assert partial_line.period_end == until and partial_line.quantity == D("0.333333")
    by_start = {i.period_start: i for i in account.tick(P3).invoices}
    assert _lines(by_start[P1], "fee") == []
    assert _lines(by_start[P2], "fee") == [(P2, "", D("10.00") - partial)]
    assert account.prebilled.partial_fee == {} and account.prebilled.commitments == {}


def test_a_committed_quantity_is_billed_once() -> None:
    account = new_account()
    [adv] = account.bill_in_advance(START + DAY, items=[API]).invoices
    assert adv.invoice_id == f"inv:cust:{P1}:advance"
    assert _lines(adv, "commitment") == [(P1, "api", D("3.00"))]
    assert _lines(adv, "fee") == []  # not asked for: billed with its period
    account.tick(P1)
    within = account.apply_usage("a1", "api", D(600), P1 + DAY)
    assert [e.kind for e in within.entries if e.kind == "debit"] == []  # prepaid: no credits
    beyond = account.apply_usage("a2", "api", D(700), P1 + 2 * DAY)  # 300 beyond the 1000
    assert sum(-e.amount for e in beyond.entries if e.kind == "debit") == D("0.900")
    [inv] = account.tick(P2).invoices
    usage = inv.line("usage", "api")
    assert (usage.quantity, usage.amount) == (D(1300), D("0.90"))
    assert _lines(inv, "fee") == [(P1, "", D("10.00"))]
    # The next period has no commitment: usage costs its price again.
    again = account.apply_usage("a3", "api", D(100), P2 + DAY)
    assert sum(-e.amount for e in again.entries if e.kind == "debit") == D("0.300")


def test_malformed_requests_are_rejected_with_a_reason() -> None:
    account = new_account()
    plans = {"every-model": every_model_plan()}
    base = {"type": "bill_in_advance", "customer_id": "cust", "at": START + DAY}
    for extra in (
        {"items": [{"kind": "meter", "meter": "llm", "quantity": "5"}]},  # no price model
        {"items": [{"kind": "meter", "meter": "nope", "quantity": "5"}]},
        {"items": [{"kind": "meter", "meter": "api", "quantity": "-1"}]},
        {"items": [{"kind": "discount"}]},
        {"periods": 0},
        {"periods": 37},
        {"periods": 2, "until": P3},
        {"until": START},
    ):
        fx = apply_command(account, {**base, **extra}, plans)
        assert fx.status == "rejected" and fx.errors, extra
    assert not account.invoices
    fx = apply_command(
        account,
        {
            **base,
            "periods": 2,
            "items": [{"kind": "fee"}, {"kind": "meter", "meter": "pkg", "quantity": "250"}],
        },
        plans,
    )
    assert fx.status == "applied"
    assert [k for k in ("fee", "commitment") for _ in _lines(fx.invoices[0], k)] == ["fee"] * 2 + [
        "commitment"
    ] * 2
    assert fx.invoices[0].amount_due == D("2") * (FEE + D("4.5"))  # 3 packages of 1.5


def test_a_state_without_advance_items_loads_as_before() -> None:
    account = new_account()
    state = account.to_dict()
    assert "advance" not in state  # nothing prebilled: the state is what it was
    account.bill_in_advance(START + DAY, items=[API, AdvanceItem.fee()], until=P2 + DAY)
    state = json.loads(json.dumps(account.to_dict()))
    assert state["advance"]["meters"] == {str(P1): {"api": "1000"}, str(P2): {"api": "1000"}}
    assert Account.from_dict(state).to_dict() == account.to_dict()


usage_of_period = st.lists(st.integers(0, 1500), min_size=4, max_size=4)


@settings(deadline=None, max_examples=40)
@given(
    st.one_of(
        st.tuples(st.just("periods"), st.integers(1, 3)),
        st.tuples(st.just("until"), st.integers(1, 80 * DAY)),
    ),
    st.sampled_from([(AdvanceItem.fee(),), (API,), (AdvanceItem.fee(), API)]),
    usage_of_period,
)
def test_advance_and_regular_invoices_bill_each_item_exactly_once(
    how: tuple[str, int], items: tuple[AdvanceItem, ...], used: list[int]
) -> None:
    account = new_account()
    kind, n = how
    if kind == "periods":
        fx = account.bill_in_advance(START + DAY, periods=n, items=items)
    else:
        fx = account.bill_in_advance(START + DAY, until=P1 + n, items=items)
    assert fx.status == "applied", fx.errors
    invoices = list(fx.invoices)
    anchor = account.anchor
    assert anchor is not None
    for i, q in enumerate(used, start=1):
        p = period_by_index(anchor, i)
        if q:
            invoices += account.apply_usage(f"u{i}", "api", D(q), p.start + DAY).invoices
        invoices += account.tick(p.end).invoices
    unit = every_model_plan().rate_card["api"].model
    assert unit is not None
    for i, q in enumerate(used, start=1):
        start = period_by_index(anchor, i).start
        fee = sum(
            (
                x.amount
                for inv in invoices
                for x in inv.lines
                if x.kind == "fee" and x.period_start == start
            ),
            D(0),
        )
        assert fee == D("10.00")  # whole, or the part ahead plus the rest: once
        committed = [
            x.quantity
            for inv in invoices
            for x in inv.lines
            if x.kind == "commitment" and x.period_start == start
        ]
        assert len(committed) <= 1
        qty = committed[0] if committed else D(0)
        assert qty is not None
        period_inv = next(
            inv for inv in invoices if inv.kind == "period" and inv.period_start == start
        )
        usage = [x for x in period_inv.lines if x.kind == "usage" and x.meter == "api"]
        billed = usage[0].amount if usage else D(0)
        # Each unit once: the commitment's units ahead, the units beyond it with the period.
        assert billed == round_minor(price(unit, D(q)) - price(unit, min(D(q), qty)), "USD")
        if usage:
            assert usage[0].quantity == D(q)  # the invoice still shows what was metered
