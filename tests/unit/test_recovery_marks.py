"""A restart reads only the marks written in front of each state: they must pick out exactly
the customers the full decode picked out (something unpublished, or a window past grace), and
the framing must round-trip and still read records written before it."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.metering.aggregation import Aggregation, WindowAgg
from meterline.metering.usage_state import Correction, UsageState
from streams.runtime.tables import _usage_mark, _UsageStateCodec, json_values, usage_marks

MIN = 60_000
GRACES = [0, 30_000, 5 * MIN, 3_600_000]


def same(a: UsageState, b: UsageState) -> bool:
    """to_dict lists the dirty set in iteration order; the order means nothing."""
    da, db = a.to_dict(), b.to_dict()
    da["d"], db["d"] = sorted(da["d"]), sorted(db["d"])
    return da == db


def old_pending(state: UsageState, grace_ms: int) -> bool:
    """The condition recovery evaluated on every fully decoded state before the marks."""
    target = state.close_target(grace_ms)
    return bool(state.dirty or state.corrections or any(k[2] < target for k in state.windows))


@st.composite
def states(draw: st.DrawFn) -> UsageState:
    starts = draw(st.lists(st.integers(0, 600), max_size=6, unique=True))
    windows = {("calls", "{}", s * MIN): WindowAgg.empty(False) for s in starts}
    for agg in windows.values():
        agg.add(Decimal("1.5"), 0, "e")
    keys = list(windows)
    dirty = {k for k in keys if draw(st.booleans())}
    corrections = []
    if draw(st.booleans()):
        late = WindowAgg.empty(False)
        late.add(Decimal(1), 0, "late")
        corrections.append(Correction("calls", "{}", 0, "late", Aggregation.SUM, late, 3))
    watermark = draw(st.one_of(st.just(-1), st.integers(0, 700 * MIN)))
    return UsageState(
        customer_id=draw(st.sampled_from(["a", "b#x", "ü"])),
        version=draw(st.integers(0, 10)),
        windows=windows,
        aggregations={"calls": Aggregation.SUM} if windows else {},
        watermark=watermark,
        closed_before=draw(st.integers(0, 300)) * MIN,
        corrections=corrections,
        dirty=dirty,
    )


@settings(max_examples=300, deadline=None)
@given(states())
def test_mark_selects_what_the_full_decode_selected(state: UsageState) -> None:
    codec = _UsageStateCodec()
    encoded = codec._dumps(state)
    for grace in GRACES:
        assert _usage_mark(encoded).pending(grace) == old_pending(state, grace)
        assert state.recovery_mark().pending(grace) == old_pending(state, grace)
    assert same(codec._loads(encoded), state)


@settings(max_examples=100, deadline=None)
@given(states())
def test_a_record_written_before_the_marks_still_loads_and_marks(state: UsageState) -> None:
    old = json.dumps(state.to_dict(), separators=(",", ":")).encode()
    codec = _UsageStateCodec()
    assert same(codec._loads(old), state)
    for grace in GRACES:
        assert _usage_mark(old).pending(grace) == old_pending(state, grace)


def test_scans_read_bytes_and_decoded_values_alike() -> None:
    state = UsageState(customer_id="a", dirty={("calls", "{}", 0)})
    state.windows[("calls", "{}", 0)] = WindowAgg.empty(False)
    encoded = _UsageStateCodec()._dumps(state)
    # A plain mapping stands in for the memory store (decoded values) and bytes for RocksDB.
    marks = dict(usage_marks({"a": state, "b": encoded, "gone": None}))
    assert set(marks) == {"a", "b"}
    assert marks["a"] == marks["b"] == state.recovery_mark()
    assert dict(json_values({"k": b'{"x":1}', "j": {"x": 2}})) == {"k": {"x": 1}, "j": {"x": 2}}
