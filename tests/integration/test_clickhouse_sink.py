"""The ClickHouse sink against a real embedded ClickHouse (chDB): DDL, snapshot semantics,
roll-ups, insert dedup, dead letters, exact decimals, retry and back-pressure."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import ProgrammingError

from meterline.metering.meters import dims_key
from sinks.client import SharedClient, chdb_path, connect
from sinks.migrate import load_migrations, migrate, split_statements
from sinks.query import query_rows, to_json, to_tsv
from sinks.writer import (
    ClickHouseWriter,
    RowError,
    SinkUnavailableError,
    content_token,
)
from tests.integration.clickhouse_fixtures import *  # noqa: F403
from tests.integration.clickhouse_fixtures import reset_schema

pytestmark = pytest.mark.integration

MINUTE_COLUMNS = [
    "customer_id",
    "meter",
    "dims_key",
    "dimensions",
    "window_start",
    "part",
    "value",
    "events",
    "version",
]
DLQ_COLUMNS = ["topic", "partition", "offset", "reason", "at", "key", "payload"]
T0 = datetime(2024, 1, 31, 23, 58, tzinfo=UTC)


def minute(
    customer: str,
    start: datetime,
    value: str | Decimal,
    *,
    meter: str = "api_calls",
    events: int = 1,
    version: int = 1,
    part: str = "",
    dims: dict[str, str] | None = None,
) -> list[Any]:
    dims = dims if dims is not None else {"region": "eu"}
    return [customer, meter, dims_key(dims), dims, start, part, Decimal(value), events, version]


def windows(client: SharedClient, window: str, customer: str) -> dict[tuple, tuple]:
    """(meter, window_start, dims) -> (value, events) from the analysts' view."""
    _, rows = query_rows(
        client,
        "SELECT meter, window_start, dimensions, value, events FROM usage_windows_streamed"
        " WHERE window = {w:String} AND customer_id = {c:String}",
        {"w": window, "c": customer},
    )
    return {(m, ws, json.dumps(d, sort_keys=True)): (v, n) for m, ws, d, v, n in rows}


def base_rows(client: SharedClient, table: str = "usage_minute") -> int:
    """Physical rows, without FINAL: what dedup tokens (not merges) kept out."""
    return client.query(f"SELECT count() FROM {table}").result_rows[0][0]


# ---- client ------------------------------------------------------------------------------


def test_connect_is_shared_per_dsn_and_directory(ch: SharedClient, chdb_dsn: str) -> None:
    assert connect(chdb_dsn) is ch
    # Another spelling of the same directory is the same engine, hence the same client.
    assert connect(chdb_dsn + "/") is ch
    assert chdb_path(chdb_dsn) == str(Path(chdb_dsn[len("chdb://") :]).resolve())
    other_lane = connect(chdb_dsn, lane="api")
    try:
        assert other_lane is not ch
        assert other_lane.query("SELECT count() FROM usage_minute").result_rows == [(0,)]
    finally:
        other_lane.close()


def test_second_chdb_directory_in_one_process_is_refused(ch: SharedClient, tmp_path: Path) -> None:
    with pytest.raises(ProgrammingError, match="one data directory per process"):
        connect(f"chdb://{tmp_path / 'elsewhere'}")
    # The refusal left the open store untouched.
    assert ch.query("SELECT 1").result_rows == [(1,)]


def test_shared_client_is_thread_safe(ch: SharedClient) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                ch.insert(
                    "usage_minute",
                    [minute(f"thread-{n}", T0 + timedelta(minutes=i), "1")],
                    column_names=MINUTE_COLUMNS,
                )
                ch.query("SELECT sum(value) FROM usage_windows_streamed WHERE window = 'hour'")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ch.query("SELECT count() FROM usage_minute FINAL").result_rows == [(80,)]


def test_unsupported_dsn_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported ClickHouse DSN"):
        connect("postgres://localhost/db")


# ---- migrations ---------------------------------------------------------------------------


def test_migrations_apply_once_and_are_idempotent(ch: SharedClient) -> None:
    reset_schema(ch)
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[0] == 1
    assert migrate(ch) == versions
    assert migrate(ch) == []
    assert migrate(ch) == []
    recorded = ch.query("SELECT version FROM schema_migrations FINAL ORDER BY version")
    assert [r[0] for r in recorded.result_rows] == versions
    tables = {
        r[0]
        for r in ch.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    assert {"usage_minute", "usage_windows", "dlq", "schema_migrations"} <= tables


def test_a_new_migration_file_is_applied_alone_in_order(ch: SharedClient, tmp_path: Path) -> None:
    reset_schema(ch)
    (tmp_path / "001_first.sql").write_text(
        "-- two statements in one file\n"
        "CREATE TABLE IF NOT EXISTS m_a (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
        "INSERT INTO m_a SELECT 1 WHERE (SELECT count() FROM m_a) = 0;\n"
    )
    (tmp_path / "README.txt").write_text("not a migration")
    assert migrate(ch, tmp_path) == [1]
    (tmp_path / "002_second.sql").write_text(
        "ALTER TABLE m_a ADD COLUMN IF NOT EXISTS y String DEFAULT 'a;b';\n"
        "CREATE OR REPLACE VIEW m_v AS SELECT x, y FROM m_a\n;\n"
    )
    assert migrate(ch, tmp_path) == [2]
    assert migrate(ch, tmp_path) == []
    assert ch.query("SELECT x, y FROM m_v").result_rows == [(1, "a;b")]


def test_split_statements_ignores_comment_only_pieces() -> None:
    sql = "-- header\nSELECT 1;\n\n-- trailing comment\n;\nSELECT ';'\n;"
    assert split_statements(sql) == ["-- header\nSELECT 1", "SELECT ';'"]


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


# ---- dead letters -------------------------------------------------------------------------


def test_dlq_stores_a_redelivered_dead_letter_once_with_raw_bytes(ch: SharedClient) -> None:
    payload = b"\x00\xff\xfe not utf-8 \x80"
    at = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    writer = ClickHouseWriter(ch)
    writer.add(
        "dlq",
        [
            ["meterline.usage", 3, 1041, "bad magic byte", at, b"cust-1", payload],
            ["meterline.usage", 3, 1042, "missing event_id", at, "", b"{}"],
        ],
        DLQ_COLUMNS,
    )
    writer.flush()
    # The same record rejected again after a restart: new time, new wording, same position.
    writer.add(
        "dlq",
        [
            [
                "meterline.usage",
                3,
                1041,
                "bad magic byte (retry)",
                at + timedelta(minutes=5),
                b"cust-1",
                payload,
            ],
        ],
        DLQ_COLUMNS,
    )
    writer.flush()
    assert base_rows(ch, "dlq") == 3  # unmerged: readers use FINAL
    got = ch.query(
        "SELECT partition, offset, key, payload FROM dlq FINAL ORDER BY offset",
        column_formats={"payload": "bytes", "key": "bytes"},
    ).result_rows
    assert got == [(3, 1041, b"cust-1", payload), (3, 1042, b"", b"{}")]


# ---- exact decimals -----------------------------------------------------------------------


def test_decimals_are_exact_over_many_rows(ch: SharedClient) -> None:
    tiny = Decimal("0.000000000001")
    n = 100_000
    rows = [
        minute("tiny", T0 + timedelta(minutes=i % 1000), tiny, part=f"late:{i}") for i in range(n)
    ]
    writer = ClickHouseWriter(ch)
    writer.add("usage_minute", rows, MINUTE_COLUMNS)
    writer.flush()
    for size in ("minute", "hour", "day", "month"):
        _, total = query_rows(
            ch,
            "SELECT sum(value), sum(events) FROM usage_windows_streamed"
            " WHERE window = {w:String} AND customer_id = 'tiny'",
            {"w": size},
        )
        assert total == [(tiny * n, n)], size
    big = Decimal("99999999999999999999999999.999999999999")
    # copy_negate, not -big: unary minus rounds to the default 28-digit context.
    negative = big.copy_negate()
    writer.add(
        "usage_minute",
        [minute("big", T0, big), minute("big", T0, negative, part="late:n")],
        MINUTE_COLUMNS,
    )
    writer.flush()
    _, parts = query_rows(
        ch, "SELECT value FROM usage_minute FINAL WHERE customer_id = 'big' ORDER BY part"
    )
    assert parts == [(big,), (negative,)]
    assert to_json(["v"], [(tiny * n,)]) == '{"columns": ["v"], "rows": [["0.0000001"]]}'


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("value", Decimal("0.0000000000001"), "does not fit Decimal"),
        ("value", Decimal("100000000000000000000000000"), "does not fit Decimal"),
        ("value", 0.1, "float"),
        ("value", Decimal("NaN"), "does not fit Decimal"),
        ("window_start", datetime(2024, 1, 1), "naive datetime"),
        ("events", "3", "str"),
        ("dimensions", {"region": 1}, "int"),
    ],
)
def test_writer_refuses_values_it_cannot_store_exactly(
    ch: SharedClient, column: str, value: Any, message: str
) -> None:
    row = minute("bad", T0, "1")
    row[MINUTE_COLUMNS.index(column)] = value
    writer = ClickHouseWriter(ch)
    with pytest.raises(RowError, match=message):
        writer.add("usage_minute", [minute("bad", T0, "1"), row], MINUTE_COLUMNS)
    assert writer.pending == 0
    with pytest.raises(RowError, match="no column"):
        writer.add("usage_minute", [["x"]], ["nope"])


def test_mixed_str_and_bytes_in_a_string_column(ch: SharedClient) -> None:
    at = datetime(2024, 5, 1, tzinfo=UTC)
    writer = ClickHouseWriter(ch)
    writer.add("dlq", [["t", 0, 1, "r", at, "text-key", b"\xff"]], DLQ_COLUMNS)
    writer.add("dlq", [["t", 0, 2, "r", at, b"\xfe", "text payload"]], DLQ_COLUMNS)
    writer.flush()
    got = ch.query(
        "SELECT key, payload FROM dlq FINAL ORDER BY offset",
        column_formats={"key": "bytes", "payload": "bytes"},
    ).result_rows
    assert got == [(b"text-key", b"\xff"), (b"\xfe", b"text payload")]


# ---- availability -------------------------------------------------------------------------


def _make_flaky(ch: SharedClient) -> None:
    """A table that refuses inserts like an overloaded server (TOO_MANY_PARTS, code 252)
    until healed: a real, transient ClickHouse failure, no mock."""
    ch.command(
        "CREATE TABLE flaky (k UInt64, v Decimal(38, 12)) ENGINE = MergeTree ORDER BY k"
        " SETTINGS parts_to_throw_insert = 1, parts_to_delay_insert = 1,"
        " non_replicated_deduplication_window = 100"
    )
    ch.command("SYSTEM STOP MERGES flaky")
    ch.insert("flaky", [[0, Decimal(0)]], column_names=["k", "v"])


def _heal(ch: SharedClient) -> None:
    ch.command(
        "ALTER TABLE flaky MODIFY SETTING"
        " parts_to_throw_insert = 3000, parts_to_delay_insert = 1000"
    )


def test_flush_blocks_and_retries_until_clickhouse_accepts(ch: SharedClient) -> None:
    _make_flaky(ch)
    writer = ClickHouseWriter(ch, initial_backoff=0.02, max_backoff=0.1)
    writer.add("flaky", [[i, Decimal(i) / 1000] for i in range(1, 101)], ["k", "v"])
    timer = threading.Timer(0.6, _heal, args=(ch,))
    timer.start()
    started = time.monotonic()
    try:
        assert writer.flush() == 100
    finally:
        timer.join()
    assert time.monotonic() - started >= 0.5  # it waited (back-pressure), it did not drop
    assert writer.stats.retries >= 3
    assert writer.pending == 0
    assert ch.query("SELECT count(), sum(v) FROM flaky").result_rows == [(101, Decimal("5.05"))]


def test_flush_deadline_raises_and_keeps_rows_pending(ch: SharedClient) -> None:
    _make_flaky(ch)
    writer = ClickHouseWriter(ch, deadline=0.3, initial_backoff=0.02, max_backoff=0.05)
    writer.add("flaky", [[1, Decimal("1.5")], [2, Decimal("2.5")]], ["k", "v"])
    with pytest.raises(SinkUnavailableError, match="stay pending"):
        writer.flush()
    assert writer.pending == 2
    writer.add("flaky", [[3, Decimal("3")]], ["k", "v"])
    assert writer.pending == 3
    _heal(ch)
    # The failed batch goes first, with its original token, then the newer rows.
    assert writer.flush() == 3
    assert writer.pending == 0
    assert ch.query("SELECT count(), sum(v) FROM flaky").result_rows == [(4, Decimal(7))]


def test_non_retryable_errors_raise_at_once_and_keep_rows(ch: SharedClient) -> None:
    writer = ClickHouseWriter(ch, validate=False, deadline=30)
    writer.add("no_such_table", [[1]], ["k"])
    started = time.monotonic()
    with pytest.raises(Exception, match=r"UNKNOWN_TABLE|does not exist"):
        writer.flush()
    assert time.monotonic() - started < 5
    assert writer.pending == 1


def test_aflush_runs_off_the_event_loop(ch: SharedClient) -> None:
    writer = ClickHouseWriter(ch)

    async def main() -> tuple[int, int]:
        writer.add("usage_minute", [minute("async", T0, "1.25")], MINUTE_COLUMNS)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        inserted = await writer.aflush()
        ticker.cancel()
        return inserted, ticks

    inserted, ticks = asyncio.run(main())
    assert inserted == 1 and ticks > 0
    assert windows(ch, "day", "async")


# ---- query helpers ------------------------------------------------------------------------


def test_query_helpers_format_exact_values(ch: SharedClient) -> None:
    cols, rows = query_rows(
        ch,
        "SELECT toDecimal128('-0.000000000001', 12) AS d, toDecimal128('12.5', 12) AS e,"
        " toDateTime64('2024-02-29 23:59:00.5', 3, 'UTC') AS t, map('k', 'v') AS m,"
        " NULL AS n, 'a\tb' AS s, {p:String} AS p",
        {"p": "π"},
    )
    assert cols == ["d", "e", "t", "m", "n", "s", "p"]
    assert json.loads(to_json(cols, rows)) == {
        "columns": cols,
        "rows": [
            ["-0.000000000001", "12.5", "2024-02-29T23:59:00.500Z", {"k": "v"}, None, "a\tb", "π"]
        ],
    }
    assert to_tsv(cols, rows) == (
        "d\te\tt\tm\tn\ts\tp\n"
        '-0.000000000001\t12.5\t2024-02-29T23:59:00.500Z\t{"k":"v"}\t\\N\ta\\tb\tπ'
    )
