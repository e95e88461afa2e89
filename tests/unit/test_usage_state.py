"""UsageState against a plain reference: whatever the arrival order, the flush points, the
grace period and the restarts from serialised state, the stored snapshots (newest version per
window and part, as ClickHouse's ReplacingMergeTree FINAL keeps them) add up to exactly the
per-minute sums of the events."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.metering.aggregation import Aggregation
from meterline.metering.dedup import Chunk, DedupIndex
from meterline.metering.meters import MeterDef
from meterline.metering.usage_state import UsageState

SUM = MeterDef.default("calls")
MAX = MeterDef(code="peak", aggregation=Aggregation.MAX, value_field="value", group_by=())
BASE = 1_700_000_000_000 // 60_000 * 60_000

events_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=90 * 60_000),  # event time offset
        st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False),
    ),
    max_size=60,
)


def flush(state: UsageState, store: dict, grace_ms: int) -> None:
    target = state.close_target(grace_ms)
    state.dirty |= {k for k in state.windows if k[2] < target}
    for snap in state.snapshots():
        key = (snap.meter, snap.dims_key, snap.window_start, snap.part)
        row = (snap.version, snap.agg.result(snap.aggregation), snap.agg.count)
        if key not in store or store[key][0] <= snap.version:
            store[key] = row
    state.evict_closed(target)
    state.corrections.clear()
    state.dirty.clear()
    state.version += 1


@settings(max_examples=200, deadline=None)
@given(
    events=events_strategy,
    flush_every=st.integers(min_value=1, max_value=10),
    restart_every=st.integers(min_value=1, max_value=15),
    grace_min=st.integers(min_value=0, max_value=5),
)
def test_stored_snapshots_equal_reference(
    events: list[tuple[int, Decimal]], flush_every: int, restart_every: int, grace_min: int
) -> None:
    grace_ms = grace_min * 60_000
    state = UsageState("c")
    store: dict = {}
    for i, (offset, value) in enumerate(events):
        state.add(SUM, "{}", value, None, BASE + offset, f"e{i}")
        state.version += 1
        if i % flush_every == 0:
            flush(state, store, grace_ms)
        if i % restart_every == 0:
            # A restart: the state comes back from its changelog record, every window dirty.
            state = UsageState.from_dict(state.to_dict())
            state.dirty = set(state.windows)
    flush(state, store, grace_ms)

    stored: dict[int, list] = defaultdict(lambda: [Decimal(0), 0])
    for (_m, _d, start, _part), (_v, value, count) in store.items():
        stored[start][0] += value
        stored[start][1] += count
    reference: dict[int, list] = defaultdict(lambda: [Decimal(0), 0])
    for offset, value in events:
        reference[(BASE + offset) // 60_000 * 60_000][0] += value
        reference[(BASE + offset) // 60_000 * 60_000][1] += 1
    assert dict(stored) == dict(reference)


def test_late_event_past_grace_becomes_a_correction_not_a_reopened_window() -> None:
    state = UsageState("c")
    state.add(SUM, "{}", Decimal(5), None, BASE, "a")
    state.add(SUM, "{}", Decimal(1), None, BASE + 10 * 60_000, "b")
    store: dict = {}
    flush(state, store, grace_ms=60_000)
    assert (BASE,) not in {k[2:3] for k in state.windows}
    late = state.add(SUM, "{}", Decimal(2), None, BASE + 1, "c")
    assert late
    flush(state, store, grace_ms=60_000)
    assert store[("calls", "{}", BASE, "")][1] == Decimal(5)
    assert store[("calls", "{}", BASE, "late:c")][1] == Decimal(2)


def test_max_meter_keeps_its_aggregation_through_serialisation() -> None:
    state = UsageState("c")
    for i, v in enumerate([3, 9, 4]):
        state.add(MAX, "{}", Decimal(v), None, BASE + i, f"e{i}")
    restored = UsageState.from_dict(state.to_dict())
    (snap,) = restored.snapshots(all_windows=True)
    assert snap.agg.result(snap.aggregation) == Decimal(9)


def test_dedup_index_remembers_within_horizon_and_forgets_after() -> None:
    index = DedupIndex(horizon_ms=1000)
    index.add(Chunk("c#0", "c", {"e1": "t/0@1.0"}, max_ts=100))
    index.add(Chunk("c#1", "c", {"e2": "t/0@2.0"}, max_ts=2000))
    assert index.lookup("c", "e1") == "t/0@1.0"
    assert index.expire("c", watermark_ms=1500) == ["c#0"]
    assert index.lookup("c", "e1") is None
    assert index.lookup("c", "e2") == "t/0@2.0"


def test_dedup_index_rewritten_chunk_replaces_old_content() -> None:
    index = DedupIndex(horizon_ms=10**9)
    index.add(Chunk("c#0", "c", {"e1": "r1", "e2": "r2"}, max_ts=1))
    index.add(Chunk("c#0", "c", {"e1": "r1"}, max_ts=1))
    assert index.lookup("c", "e2") is None
    assert index.chunk_count == 1


def test_the_windows_awaiting_a_snapshot_survive_a_store_that_decodes_every_read() -> None:
    # RocksDB hands the publisher a freshly decoded state: the marks must be in the record.
    state = UsageState(customer_id="c")
    state.add(SUM, "", Decimal(1), None, BASE, "e1")
    state.add(SUM, "", Decimal(2), None, BASE + 60_000, "e2")
    decoded = UsageState.from_dict(state.to_dict())
    assert decoded.dirty == state.dirty == set(state.windows)
    decoded.dirty.clear()
    assert UsageState.from_dict(decoded.to_dict()).dirty == set()


def test_a_state_written_before_the_marks_were_kept_has_every_window_marked() -> None:
    state = UsageState(customer_id="c")
    state.add(SUM, "", Decimal(1), None, BASE, "e1")
    state.dirty.clear()
    old = state.to_dict()
    del old["d"]
    assert UsageState.from_dict(old).dirty == set(state.windows)
