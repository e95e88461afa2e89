"""The sink writer against a real embedded ClickHouse (chDB): dead letters, exact decimals,
retry and back-pressure, query helpers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sinks.client import SharedClient
from sinks.query import query_rows, to_json, to_tsv
from sinks.writer import (
    ClickHouseWriter,
    RowError,
    SinkUnavailableError,
)
from tests.integration.clickhouse_fixtures import *  # noqa: F403
from tests.integration.clickhouse_rows import (
    DLQ_COLUMNS,
    MINUTE_COLUMNS,
    T0,
    base_rows,
    minute,
    windows,
)

pytestmark = pytest.mark.integration


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
