"""The RocksDB dedup index (rocksdb:// store) keeps the in-memory index's contract: the same
operations give the same lookups, expiries and counts."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline.metering.dedup import Chunk, DedupIndex
from streams.runtime.dedup_store import RocksDedupIndex

CUSTOMERS = ["a", "ab", "b"]  # "a" is a prefix of "ab": their keys must not mix
IDS = [f"e{i}" for i in range(12)]

op = st.one_of(
    st.tuples(
        st.just("add"),
        st.sampled_from(CUSTOMERS),
        st.dictionaries(st.sampled_from(IDS), st.sampled_from(["r1", "r2", "r3"]), min_size=1),
        st.integers(0, 50),
        st.booleans(),  # rewrite the customer's last chunk (a replay) instead of a new one
    ),
    st.tuples(st.just("expire"), st.sampled_from(CUSTOMERS), st.integers(0, 80)),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(op, max_size=30))
def test_the_rocksdb_index_answers_as_the_memory_index(tmp_path: Path, ops: list) -> None:
    memory = DedupIndex(horizon_ms=20)
    rocks = RocksDedupIndex(tmp_path / "index", horizon_ms=20)
    try:
        rocks.clear()  # hypothesis reuses tmp_path: start empty, as after an assignment
        seq = dict.fromkeys(CUSTOMERS, 0)
        watermark = dict.fromkeys(CUSTOMERS, 0)
        for o in ops:
            if o[0] == "add":
                _, c, ids, ts, rewrite = o
                n = seq[c] - 1 if rewrite and seq[c] > 0 else seq[c]
                seq[c] = max(seq[c], n + 1)
                chunk = Chunk(f"{c}#{n}", c, ids, max_ts=ts)
                memory.add(chunk)
                rocks.add(Chunk(chunk.key, c, dict(ids), ts))
            else:
                _, c, step = o
                watermark[c] += step
                assert rocks.expire(c, watermark[c]) == memory.expire(c, watermark[c])
            for c in CUSTOMERS:
                for e in IDS:
                    assert rocks.lookup(c, e) == memory.lookup(c, e), (c, e)
            assert rocks.size == memory.size
            assert rocks.chunk_count == memory.chunk_count
    finally:
        rocks.close()


def test_opening_empties_what_a_previous_run_left(tmp_path: Path) -> None:
    first = RocksDedupIndex(tmp_path / "index", horizon_ms=10)
    first.add(Chunk("c#0", "c", {"e1": "r"}, max_ts=1))
    first.close()
    again = RocksDedupIndex(tmp_path / "index", horizon_ms=10)
    try:
        assert again.lookup("c", "e1") is None
        assert again.size == 0
    finally:
        again.close()
