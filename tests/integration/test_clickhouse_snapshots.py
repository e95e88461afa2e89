"""Snapshot semantics, roll-ups and insert dedup against a real embedded ClickHouse (chDB)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from sinks.client import SharedClient
from sinks.query import query_rows
from sinks.writer import (
    ClickHouseWriter,
    content_token,
)
from tests.integration.clickhouse_fixtures import *  # noqa: F403
from tests.integration.clickhouse_rows import (
    MINUTE_COLUMNS,
    T0,
    base_rows,
    minute,
    windows,
)

pytestmark = pytest.mark.integration


# ---- snapshot semantics -------------------------------------------------------------------


def test_latest_snapshot_wins_over_versions_and_duplicates(ch: SharedClient) -> None:
    cust = "snap"
    # The window grows: each flush rewrites the snapshot with a higher version. Separate
    # inserts stay separate parts until a merge, which this test never waits for.
    for version, (value, events) in enumerate([("1.5", 1), ("4.25", 3), ("10.125", 7)], 1):
        ch.insert(
            "usage_minute",
            [minute(cust, T0, value, events=events, version=version)],
            column_names=MINUTE_COLUMNS,
        )
    # A replay re-sends older snapshots. Identical blocks would be dropped by insert dedup
    # (even without a token, the table's dedup window hashes block content), so turn it off
    # here: this checks what readers see when duplicates did get stored (e.g. re-batched).
    # ClickHouse 26.x: deduplicate_insert supersedes insert_deduplicate (ignored here).
    no_dedup = {"deduplicate_insert": "disable"}
    ch.insert(
        "usage_minute",
        [minute(cust, T0, "4.25", events=3, version=2)],
        column_names=MINUTE_COLUMNS,
        settings=no_dedup,
    )
    ch.insert(
        "usage_minute",
        [minute(cust, T0, "10.125", events=7, version=3)],
        column_names=MINUTE_COLUMNS,
        settings=no_dedup,
    )
    assert base_rows(ch) == 5
    dims = json.dumps({"region": "eu"})
    assert windows(ch, "minute", cust) == {("api_calls", T0, dims): (Decimal("10.125"), 7)}
    for size, start in [
        ("hour", T0.replace(minute=0)),
        ("day", T0.replace(hour=0, minute=0)),
        ("month", datetime(2024, 1, 1, tzinfo=UTC)),
    ]:
        assert windows(ch, size, cust) == {("api_calls", start, dims): (Decimal("10.125"), 7)}
    # The analysts' typical query is exact too.
    _, rows = query_rows(
        ch,
        "SELECT customer_id, meter, sum(value), sum(events) FROM usage_windows_streamed"
        " WHERE window = 'minute' GROUP BY customer_id, meter",
    )
    assert rows == [(cust, "api_calls", Decimal("10.125"), 7)]


def test_rollups_cross_hour_day_month_and_leap_day(ch: SharedClient) -> None:
    cust = "rollup"
    eu, us = {"region": "eu"}, {"region": "us"}
    stamps = [
        (datetime(2024, 1, 31, 22, 59, tzinfo=UTC), "1", eu),
        (datetime(2024, 1, 31, 23, 0, tzinfo=UTC), "2", eu),
        (datetime(2024, 1, 31, 23, 59, tzinfo=UTC), "4", eu),
        (datetime(2024, 2, 1, 0, 0, tzinfo=UTC), "8", eu),
        (datetime(2024, 2, 29, 23, 59, tzinfo=UTC), "16", eu),
        (datetime(2024, 3, 1, 0, 0, tzinfo=UTC), "32", eu),
        (datetime(2024, 1, 31, 23, 59, tzinfo=UTC), "64", us),
    ]
    writer = ClickHouseWriter(ch)
    writer.add("usage_minute", [minute(cust, ts, v, dims=d) for ts, v, d in stamps], MINUTE_COLUMNS)
    assert writer.flush() == len(stamps)

    def totals(size: str) -> dict[tuple[str, datetime], Decimal]:
        got = windows(ch, size, cust)
        return {(json.loads(d)["region"], ws): v for (_, ws, d), (v, _) in got.items()}

    def at(*args: int) -> datetime:
        return datetime(*args, tzinfo=UTC)

    assert totals("hour") == {
        ("eu", at(2024, 1, 31, 22)): Decimal(1),
        ("eu", at(2024, 1, 31, 23)): Decimal(6),
        ("eu", at(2024, 2, 1, 0)): Decimal(8),
        ("eu", at(2024, 2, 29, 23)): Decimal(16),
        ("eu", at(2024, 3, 1, 0)): Decimal(32),
        ("us", at(2024, 1, 31, 23)): Decimal(64),
    }
    assert totals("day") == {
        ("eu", at(2024, 1, 31)): Decimal(7),
        ("eu", at(2024, 2, 1)): Decimal(8),
        ("eu", at(2024, 2, 29)): Decimal(16),
        ("eu", at(2024, 3, 1)): Decimal(32),
        ("us", at(2024, 1, 31)): Decimal(64),
    }
    assert totals("month") == {
        ("eu", at(2024, 1, 1)): Decimal(7),
        ("eu", at(2024, 2, 1)): Decimal(24),
        ("eu", at(2024, 3, 1)): Decimal(32),
        ("us", at(2024, 1, 1)): Decimal(64),
    }
    _, events = query_rows(
        ch, "SELECT window, sum(events) FROM usage_windows_streamed GROUP BY window ORDER BY window"
    )
    assert events == [("day", 7), ("hour", 7), ("minute", 7), ("month", 7)]


def test_late_correction_parts_add_up_and_replay_idempotently(ch: SharedClient) -> None:
    cust = "late"
    writer = ClickHouseWriter(ch)
    writer.add(
        "usage_minute",
        [
            minute(cust, T0, "10", events=4, version=5),
            minute(cust, T0, "2.5", events=1, version=6, part="late:e-1"),
            minute(cust, T0, "0.25", events=1, version=7, part="late:e-2"),
        ],
        MINUTE_COLUMNS,
    )
    writer.flush()
    # After a crash the state replays: same corrections at a higher state version, and the
    # live window re-snapshotted; nothing may be counted twice.
    writer.add(
        "usage_minute",
        [
            minute(cust, T0, "10", events=4, version=9),
            minute(cust, T0, "2.5", events=1, version=9, part="late:e-1"),
        ],
        MINUTE_COLUMNS,
    )
    writer.flush()
    dims = json.dumps({"region": "eu"})
    assert windows(ch, "minute", cust) == {("api_calls", T0, dims): (Decimal("12.75"), 6)}
    assert windows(ch, "hour", cust) == {
        ("api_calls", T0.replace(minute=0), dims): (Decimal("12.75"), 6)
    }


def test_min_max_meters_roll_up_by_their_aggregation(ch: SharedClient) -> None:
    cols = [*MINUTE_COLUMNS, "aggregation"]
    rows = []
    noon = T0.replace(hour=12)
    for i, v in enumerate(["5", "2", "9"]):
        start = noon + timedelta(minutes=i)
        rows.append([*minute("agg", start, v, meter="peak"), "max"])
        rows.append([*minute("agg", start, v, meter="floor"), "min"])
        rows.append([*minute("agg", start, v, meter="total"), "sum"])
    rows.append([*minute("agg", noon, "20", meter="peak", part="late:x"), "max"])
    writer = ClickHouseWriter(ch)
    writer.add("usage_minute", rows, cols)
    writer.flush()
    _, got = query_rows(
        ch,
        "SELECT meter, sum(value) FROM usage_windows_streamed WHERE window = 'day'"
        " AND customer_id = 'agg' GROUP BY meter ORDER BY meter",
    )
    assert got == [("floor", Decimal(2)), ("peak", Decimal(20)), ("total", Decimal(16))]


# ---- insert dedup -------------------------------------------------------------------------


def test_dedup_token_drops_an_identical_replayed_insert(ch: SharedClient) -> None:
    rows = [minute("dedup", T0 + timedelta(minutes=i), f"{i}.5", version=3) for i in range(50)]
    first = ClickHouseWriter(ch)
    first.add("usage_minute", rows, MINUTE_COLUMNS)
    assert first.flush() == 50
    assert base_rows(ch) == 50
    # A restarted worker rebuilds the same rows (dims dicts in another key order even) and
    # writes them again: ClickHouse recognises the token and stores nothing.
    replay = [[*r[:3], dict(reversed(list(r[3].items()))), *r[4:]] for r in rows]
    again = ClickHouseWriter(ch)
    again.add("usage_minute", replay[:20], MINUTE_COLUMNS)
    again.add("usage_minute", replay[20:], MINUTE_COLUMNS)
    assert again.flush() == 50
    assert base_rows(ch) == 50
    # Different content is a different token: stored.
    again.add("usage_minute", [minute("dedup", T0, "0.5", version=4)], MINUTE_COLUMNS)
    again.flush()
    assert base_rows(ch) == 51
    assert windows(ch, "hour", "dedup")  # and readable


def test_dedup_token_is_deterministic_and_content_based() -> None:
    rows = [minute("c", T0, "1.5"), minute("c", T0, "2")]
    token = content_token("usage_minute", MINUTE_COLUMNS, rows)
    assert token == content_token("usage_minute", MINUTE_COLUMNS, [list(r) for r in rows])
    assert token != content_token("usage_minute", MINUTE_COLUMNS, rows[::-1])
    assert token != content_token("dlq", MINUTE_COLUMNS, rows)
    assert token.startswith("usage_minute-")


def test_a_multi_month_batch_replays_as_a_no_op(ch: SharedClient) -> None:
    # One insert spanning partitions becomes several blocks; each must dedup on replay.
    rows = [minute("months", datetime(2024, m, 1, tzinfo=UTC), "1") for m in range(1, 7)]
    for _ in range(3):
        writer = ClickHouseWriter(ch)
        writer.add("usage_minute", rows, MINUTE_COLUMNS)
        writer.flush()
    assert base_rows(ch) == 6
