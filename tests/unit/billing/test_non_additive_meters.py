"""Invoices bill exactly what metering reports for every aggregation, unique_count and latest
included (issue 9, item 1): the invoice quantity is the meter's aggregate over the period, with
its value field and group-by, and the amount is that quantity's price on the rate card."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.billing.account import Account
from meterline.billing.catalog import Plan, RateCardEntry, RecurringCredit
from meterline.billing.periods import BillingAnchor
from meterline.billing.pricing import Package, Tier, Volume, price
from meterline.metering.aggregation import Aggregation, WindowAgg
from meterline.metering.catalog_file import load_catalog
from meterline.metering.meters import MeterCatalog, MeterDef, dims_key
from meterline.processor.account_state import AccountState
from meterline.processor.billing_rules import BillingRules
from meterline.processor.inputs import InputKind

from .helpers import MINUTE, utc

D = Decimal
START = utc(2026, 1, 1)
END = utc(2026, 2, 1)


def _lora_adapter() -> tuple[BillingRules, AccountState]:
    seed = load_catalog()
    adapter = BillingRules(seed.meter_catalog(), seed.price_book(), {})
    plan = Plan.from_dict(next(p for p in seed.plans if p["plan_id"] == "lora-pro"))
    account = Account("lora-u")
    account.upsert(plan, BillingAnchor(START, "UTC"), START)
    return adapter, AccountState("lora-u", account)


def _usage(n: int, meter: str, value: str, ts: int, **dims: str) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "customer_id": "lora-u",
        "meter": meter,
        "value": D(value),
        "timestamp": ts,
        "dimensions": dims,
    }


def test_the_issue_scenario_bills_distinct_users_and_the_latest_reading() -> None:
    adapter, state = _lora_adapter()
    n = 0
    for i in range(120):
        n += 1
        user = f"u{i % 105}"
        event = _usage(n, "active_users", "1", START + n, user_id=user)
        assert adapter.usage(state, InputKind.USAGE, event) == []
    for gb in ("30", "120", "250"):
        n += 1
        assert (
            adapter.usage(state, InputKind.USAGE, _usage(n, "storage_gb", gb, START + n * MINUTE))
            == []
        )
    invoice = state.account.tick(END).invoices[0]
    users = invoice.line("usage", "active_users")
    storage = invoice.line("usage", "storage_gb")
    assert (users.quantity, users.amount) == (D(105), D("42.00"))
    assert (storage.quantity, storage.amount) == (D(250), D("6.00"))
    # 49.00 fee; the 50.00 recurring credits may not pay for seats or storage.
    assert invoice.amount_due == D("97.00")


def test_a_latest_gauge_going_down_gives_back_what_it_cost() -> None:
    adapter, state = _lora_adapter()
    for n, gb in enumerate(("250", "30"), 1):
        assert (
            adapter.usage(state, InputKind.USAGE, _usage(n, "storage_gb", gb, START + n * MINUTE))
            == []
        )
    line = state.account.tick(END).invoices[0].line("usage", "storage_gb")
    assert (line.quantity, line.amount) == (D(30), D("2.00"))


def test_a_late_reading_does_not_replace_a_newer_one() -> None:
    adapter, state = _lora_adapter()
    adapter.usage(state, InputKind.USAGE, _usage(1, "storage_gb", "250", START + 5 * MINUTE))
    adapter.usage(state, InputKind.USAGE, _usage(2, "storage_gb", "30", START + 1 * MINUTE))
    line = state.account.tick(END).invoices[0].line("usage", "storage_gb")
    assert line.quantity == D(250)


def test_a_seeded_catalog_declares_its_meters() -> None:
    # The catalog file is applied at version 0: an empty catalog must take it.
    catalog = MeterCatalog()
    upsert = {"version": 0, "op": "upsert", "meter": {"code": "m", "aggregation": "latest"}}
    assert catalog.apply(upsert) is True
    assert catalog.get("m").aggregation is Aggregation.LATEST
    # One meter's newer change does not shadow another meter's older one.
    other = {"version": 5, "op": "upsert", "meter": {"code": "n", "aggregation": "max"}}
    assert catalog.apply(other) is True
    older = {"version": 3, "op": "upsert", "meter": {"code": "m", "aggregation": "min"}}
    assert catalog.apply(older) is True
    assert catalog.get("m").aggregation is Aggregation.MIN


# -- every aggregation against a plain reference ---------------------------------------------

KINDS = list(Aggregation)
MODEL = Volume((Tier(D(3), D("0.50")), Tier(D(10), D("0.40")), Tier(None, D("0.25"), D("1"))))
PACKAGE = Package(D(5), D("2.00"))

events = st.lists(
    st.tuples(
        st.integers(0, 40),  # minute in the period
        st.sampled_from(["1", "2.5", "7", "0", "12.25", "3"]),  # value
        st.sampled_from(["a", "b", "c", "d"]),  # user_id
        st.sampled_from(["eu", "us"]),  # region (group-by)
    ),
    max_size=40,
)


def _reference(meter: MeterDef, evs: list[tuple[int, str, str, str]]) -> Decimal:
    groups: dict[str, WindowAgg] = {}
    for n, (minute, value, user, region) in enumerate(evs):
        record = {"value": D(value), "dimensions": {"user_id": user, "region": region}}
        v, u = meter.extract(record)
        key = dims_key(meter.group_dims(record["dimensions"]))
        agg = groups.setdefault(key, WindowAgg.empty(meter.keeps_uniques))
        agg.add(v, START + minute * MINUTE, f"e{n}", u)
    results = [g.result(meter.aggregation) for g in groups.values()]
    if not results:
        return D(0)
    if meter.aggregation is Aggregation.MIN:
        return min(results)
    if meter.aggregation is Aggregation.MAX:
        return max(results)
    return sum(results, D(0))


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    grouped=st.booleans(),
    packaged=st.booleans(),
    evs=events,
)
def test_invoice_quantity_is_the_metering_figure_of_the_period(
    kind: Aggregation, grouped: bool, packaged: bool, evs: list[tuple[int, str, str, str]]
) -> None:
    field = "user_id" if kind is Aggregation.UNIQUE_COUNT else "value"
    meter = MeterDef("m", kind, field, ("region",) if grouped else ())
    model = PACKAGE if packaged else MODEL
    plan = Plan(
        "p",
        "USD",
        D(0),
        (RecurringCredit(D("4"), scope=frozenset({"m"})),),
        {"m": RateCardEntry("m", model, "m")},
    )
    account = Account("c")
    account.upsert(plan, BillingAnchor(START, "UTC"), START)
    state = AccountState("c", account)
    adapter = BillingRules(MeterCatalog([meter]), load_catalog().price_book(), {})
    # Arrival order is not event-time order: latest must still be the newest reading.
    for n, (minute, value, user, region) in enumerate(evs):
        record = {
            "event_id": f"e{n}",
            "customer_id": "c",
            "meter": "m",
            "value": D(value),
            "timestamp": START + minute * MINUTE,
            "dimensions": {"user_id": user, "region": region},
        }
        assert adapter.usage(state, InputKind.USAGE, record) == []
    expected = _reference(meter, evs)
    invoice = account.tick(END).invoices[0]
    lines = [ln for ln in invoice.lines if ln.kind == "usage"]
    if expected == 0 and price(model, expected) == 0:
        assert all(ln.quantity == 0 for ln in lines) or not lines
        return
    (line,) = lines
    assert line.quantity == expected
    assert line.amount == price(model, expected).quantize(D("0.01"))
    credits = [ln.amount for ln in invoice.lines if ln.kind == "credits_applied"]
    assert -sum(credits, D(0)) == min(price(model, expected), D(4)).quantize(D("0.01"))
