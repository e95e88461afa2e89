"""The pure per-customer processor, without a broker: replay skipping, dedup, windows and
billing in one pass, and the exactness rules the checkpoint relies on."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.metering.aggregation import WindowAgg
from meterline.metering.catalog_file import load_catalog
from meterline.metering.dedup import DedupIndex
from meterline.metering.windows import minute_start
from meterline.processor.billing_rules import BillingRules
from meterline.processor.customer import CHUNK_EVENTS, CustomerProcessor, CustomerState
from meterline.processor.inputs import BillingInput, InputKind, InputRecord, Origin

SEED = load_catalog()
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
CUSTOMER = "lora-p"


def processor() -> CustomerProcessor:
    rules = BillingRules(
        SEED.meter_catalog(), SEED.price_book(), {p["plan_id"]: p for p in SEED.plans}
    )
    return CustomerProcessor(SEED.meter_catalog(), rules, DedupIndex(horizon_ms=35 * DAY))


def usage(offset: int, event_id: str, minute: int, value: str = "1", index: int = 0) -> InputRecord:
    body = {
        "event_id": event_id,
        "customer_id": CUSTOMER,
        "meter": "image_generations",
        "value": Decimal(value),
        "timestamp": START + minute * 60_000,
        "dimensions": {"model": "flux"},
    }
    origin = Origin("meterline.usage", 0, offset, CUSTOMER.encode(), b"")
    return InputRecord(InputKind.USAGE, origin, index, body)


def upsert(offset: int) -> InputRecord:
    command = {
        "type": "upsert",
        "customer_id": CUSTOMER,
        "at": START,
        "plan_id": "lora-pro",
        "billing_anchor": START,
        "tz": "UTC",
    }
    origin = Origin("meterline.accounts", 0, offset, CUSTOMER.encode(), b"")
    return InputRecord(InputKind.ACCOUNTS, origin, 0, BillingInput(CUSTOMER, "json", command))


def windows(state: CustomerState) -> dict[Any, dict]:
    return {k: a.to_dict() for k, a in state.usage.windows.items()}


# A stream of usage events: ids from a small pool, so some repeat at later offsets.
streams = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 50), st.sampled_from(["1", "2.5", "4"])),
    min_size=1,
    max_size=60,
)


def records(stream: list[tuple[int, int, str]]) -> list[InputRecord]:
    return [
        usage(offset, f"e{eid}", minute, value)
        for offset, (eid, minute, value) in enumerate(stream)
    ]


@settings(max_examples=80, deadline=None)
@given(stream=streams, cut=st.integers(0, 60))
def test_each_event_id_is_counted_once_whatever_the_batches(stream, cut) -> None:
    items = records(stream)
    cut = min(cut, len(items))
    p = processor()
    state = CustomerState.new(CUSTOMER)
    steps = [p.process(state, items[:cut]), p.process(state, items[cut:])]
    first_seen: dict[str, InputRecord] = {}
    for item in items:
        first_seen.setdefault(item.body["event_id"], item)
    reference: dict[int, WindowAgg] = {}
    for item in first_seen.values():
        agg = reference.setdefault(minute_start(item.body["timestamp"]), WindowAgg.empty(False))
        agg.add(item.body["value"], item.body["timestamp"], item.body["event_id"])
    got = {k[2]: a.sum for k, a in state.usage.windows.items()}
    assert got == {k: a.sum for k, a in reference.items()}
    assert sum(s.stats.counted for s in steps) == len(first_seen)
    assert sum(s.stats.duplicates for s in steps) == len(items) - len(first_seen)
    raw = [r["event_id"] for s in steps for r in s.usage_events]
    assert sorted(raw) == sorted(first_seen)


@settings(max_examples=60, deadline=None)
@given(stream=streams, cut=st.integers(0, 60))
def test_a_replayed_prefix_changes_nothing(stream, cut) -> None:
    items = records(stream)
    cut = min(cut, len(items))
    p = processor()
    state = CustomerState.new(CUSTOMER)
    p.process(state, items[:cut])
    once = copy.deepcopy(state)
    p.process(once, items[cut:])
    # The worker restarts from committed offsets: the whole stream again, prefix included.
    step = p.process(state, items)
    assert windows(state) == windows(once)
    assert state.usage.applied == once.usage.applied
    assert step.stats.replayed == cut


@settings(max_examples=60, deadline=None)
@given(stream=streams)
def test_same_input_twice_gives_the_same_output(stream) -> None:
    items = [upsert(0), *records(stream)]
    a, b = CustomerState.new(CUSTOMER), CustomerState.new(CUSTOMER)
    step_a, step_b = processor().process(a, items), processor().process(b, items)
    assert windows(a) == windows(b)
    assert step_a.usage_events == step_b.usage_events
    assert [p.chunk for p in step_a.parts] == [p.chunk for p in step_b.parts]
    assert a.account is not None and b.account is not None
    assert a.account.to_dict() == b.account.to_dict()


def test_a_record_whose_state_was_lost_but_whose_dedup_chunk_survived_is_counted() -> None:
    # A crash after step 3 of the checkpoint (chunk durable) but before the state was: the
    # replay meets its own ids at its own positions, which is a replay, not a duplicate.
    p = processor()
    state = CustomerState.new(CUSTOMER)
    before = copy.deepcopy(state)
    items = [upsert(0), usage(1, "a", 1), usage(2, "b", 2), usage(3, "a", 3)]
    first = p.process(state, items)
    lost = before
    again = p.process(lost, items)
    assert again.stats.counted == first.stats.counted == 2
    assert again.stats.duplicates == 1
    assert windows(lost) == windows(state)
    assert lost.account is not None and state.account is not None
    assert lost.account.account.balance() == state.account.account.balance()


def test_billing_inputs_skip_what_the_account_holds_and_payments_need_an_account() -> None:
    p = processor()
    state = CustomerState.new(CUSTOMER)
    payment = {
        "payment_id": "p1",
        "customer_id": CUSTOMER,
        "processor": "adyen",
        "status": "succeeded",
        "amount": "10",
        "currency": "USD",
        "pays_kind": "topup",
        "pays_id": "topup:x:1",
        "occurred_at": START,
    }
    origin = Origin("meterline.payments", 0, 0, None, b"{}")
    pay = InputRecord(InputKind.PAYMENTS, origin, 0, BillingInput(CUSTOMER, "json", payment))
    step = p.process(state, [pay])
    assert [r.reason for r in step.rejects] == [f"payment for unknown customer {CUSTOMER!r}"]
    step = p.process(state, [upsert(0), usage(1, "x", 1, "3")])
    assert state.account is not None and step.account is state.account
    balance = state.account.account.balance()
    assert balance == Decimal("50.00") - 3 * Decimal("0.04")
    # Offsets already applied change nothing, however often they come.
    step = p.process(state, [upsert(0), usage(1, "x", 1, "3")])
    assert step.account is None and not step.usage_changed
    assert state.account.account.balance() == balance


def test_many_events_of_one_customer_are_kept_in_bounded_parts() -> None:
    p = processor()
    state = CustomerState.new(CUSTOMER)
    items = [usage(i, f"e{i}", i % 50) for i in range(CHUNK_EVENTS * 2 + 7)]
    step = p.process(state, items)
    assert [len(part.chunk.ids) for part in step.parts] == [CHUNK_EVENTS, CHUNK_EVENTS, 7]
    assert [len(part.raw.usage) for part in step.parts] == [CHUNK_EVENTS, CHUNK_EVENTS, 7]
    assert len({part.chunk.key for part in step.parts}) == 3
    assert state.usage.chunk_seq == 3


def test_an_event_older_than_the_dedup_horizon_is_rejected() -> None:
    p = processor()
    state = CustomerState.new(CUSTOMER)
    p.process(state, [usage(0, "new", 40 * 24 * 60)])
    step = p.process(state, [usage(1, "old", 0)])
    assert step.stats.counted == 0
    assert "older than the dedup horizon" in step.rejects[0].reason
