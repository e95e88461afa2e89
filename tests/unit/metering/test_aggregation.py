"""WindowAgg against a plain reference, whatever the arrival order or partitioning."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.metering.aggregation import Aggregation, WindowAgg


@dataclass(frozen=True)
class Ev:
    value: Decimal
    ts: int
    event_id: str
    unique: str


# Mixed exponents on purpose: 1, 1.0 and 1.00 are equal numbers with different representations,
# which is where order-dependent state would show.
values = st.builds(
    lambda digits, places: Decimal(digits).scaleb(-places),
    st.integers(-(10**9), 10**9) | st.integers(-3, 3),
    st.integers(0, 4),
)
# Few distinct timestamps and ids so equal-timestamp ties are common.
events = st.lists(
    st.builds(
        Ev,
        values,
        st.integers(0, 20),
        st.sampled_from([f"e{i}" for i in range(12)]),
        st.sampled_from(["u1", "u2", "u3", "u4", "u5"]),
    ),
    max_size=40,
)


def aggregate(evs: list[Ev], keep_uniques: bool = True) -> WindowAgg:
    agg = WindowAgg.empty(keep_uniques)
    for e in evs:
        agg.add(e.value, e.ts, e.event_id, e.unique)
    return agg


def reference(evs: list[Ev], aggregation: Aggregation) -> Decimal:
    """What each aggregation means, written the obvious way."""
    if aggregation is Aggregation.COUNT:
        return Decimal(len(evs))
    if aggregation is Aggregation.UNIQUE_COUNT:
        return Decimal(len({e.unique for e in evs}))
    if not evs:
        return Decimal(0)
    if aggregation is Aggregation.SUM:
        with localcontext() as ctx:
            ctx.prec = 200  # the reference must not round either
            return sum((e.value for e in evs), Decimal(0))
    if aggregation is Aggregation.MIN:
        return min(e.value for e in evs)
    if aggregation is Aggregation.MAX:
        return max(e.value for e in evs)
    latest = max(evs, key=lambda e: (e.ts, e.event_id, e.value))
    return latest.value


@given(events)
def test_each_aggregation_matches_reference(evs: list[Ev]) -> None:
    agg = aggregate(evs)
    for aggregation in Aggregation:
        assert agg.result(aggregation) == reference(evs, aggregation), aggregation


@given(events, st.randoms(use_true_random=False))
def test_arrival_order_does_not_matter(evs: list[Ev], rnd) -> None:
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    # Representation-exact equality, not only numeric: the state is serialised and compared.
    assert aggregate(shuffled) == aggregate(evs)
    assert aggregate(shuffled).to_dict() == aggregate(evs).to_dict()


@given(
    events, st.lists(st.integers(0, 4), min_size=40, max_size=40), st.randoms(use_true_random=False)
)
def test_any_partition_merged_equals_whole(evs: list[Ev], parts: list[int], rnd) -> None:
    buckets: list[list[Ev]] = [[] for _ in range(5)]
    for e, p in zip(evs, parts, strict=False):
        buckets[p].append(e)
    partials = [aggregate(b) for b in buckets]
    rnd.shuffle(partials)
    merged = WindowAgg.empty(True)
    for p in partials:
        merged.merge(p)
    assert merged == aggregate(evs)
    for aggregation in Aggregation:
        assert merged.result(aggregation) == reference(evs, aggregation)


@given(events, events, events)
def test_merge_is_associative_and_commutative(a: list[Ev], b: list[Ev], c: list[Ev]) -> None:
    def merged(*parts: list[Ev]) -> WindowAgg:
        acc = WindowAgg.empty(True)
        for p in parts:
            acc.merge(aggregate(p))
        return acc

    ab_c = merged(a, b)
    ab_c.merge(aggregate(c))
    bc = aggregate(b)
    bc.merge(aggregate(c))
    a_bc = aggregate(a)
    a_bc.merge(bc)
    assert ab_c == a_bc
    assert merged(a, b) == merged(b, a)


@given(events)
def test_merge_does_not_alias_the_other_side(evs: list[Ev]) -> None:
    other = aggregate(evs)
    before = other.to_dict()
    target = WindowAgg.empty(True)
    target.merge(other)
    target.add(Decimal(7), 99, "zz", "new-user")
    assert other.to_dict() == before


@given(events)
def test_dict_round_trip_is_json_and_exact(evs: list[Ev]) -> None:
    agg = aggregate(evs)
    data = json.loads(json.dumps(agg.to_dict()))
    assert WindowAgg.from_dict(data) == agg
    copy = agg.copy()
    assert copy == agg
    assert copy.uniques is not agg.uniques


@given(events)
def test_windows_without_uniques_match_except_unique_count(evs: list[Ev]) -> None:
    agg = aggregate(evs, keep_uniques=False)
    assert agg.uniques is None
    for aggregation in Aggregation:
        if aggregation is not Aggregation.UNIQUE_COUNT:
            assert agg.result(aggregation) == reference(evs, aggregation)
    with pytest.raises(ValueError, match="unique_count"):
        agg.result(Aggregation.UNIQUE_COUNT)


def test_empty_window_results_are_zero() -> None:
    agg = WindowAgg.empty(True)
    assert [agg.result(a) for a in Aggregation] == [Decimal(0)] * len(Aggregation)
    assert agg.to_dict()["latest_ts"] == -1


def test_latest_ties_break_on_event_id_not_arrival() -> None:
    first = WindowAgg.empty(False)
    first.add(Decimal("5"), 1000, "b")
    first.add(Decimal("9"), 1000, "a")
    second = WindowAgg.empty(False)
    second.add(Decimal("9"), 1000, "a")
    second.add(Decimal("5"), 1000, "b")
    assert first.result(Aggregation.LATEST) == second.result(Aggregation.LATEST) == 5
    # An older event arriving last does not win.
    first.add(Decimal("1"), 999, "z")
    assert first.result(Aggregation.LATEST) == 5


def test_sum_is_exact_beyond_default_precision() -> None:
    # 30 significant digits: the default 28-digit context would round this sum.
    agg = WindowAgg.empty(False)
    agg.add(Decimal("12345678901234567890123456.000001"), 0, "a")
    agg.add(Decimal("0.000001"), 0, "b")
    assert agg.result(Aggregation.SUM) == Decimal("12345678901234567890123456.000002")


def test_aggregation_values_are_the_public_names() -> None:
    assert [a.value for a in Aggregation] == [
        "sum",
        "count",
        "min",
        "max",
        "unique_count",
        "latest",
    ]
    assert Aggregation("unique_count") is Aggregation.UNIQUE_COUNT
