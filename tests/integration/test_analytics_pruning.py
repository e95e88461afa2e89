"""Issue 8 item 7: the usage and token views of 004 read only the time range asked for, and
answer exactly what the 002 views answered over the same raw events.

The reference is the 002 view definitions themselves, re-created under ``legacy_`` names and
reading the raw tables as they did. Compared, as a table of queries: every window size, UTC
and Europe/Berlin (and a zone 45 minutes off the hour), all customers and one, open, closed
and single-instant time ranges, on both sides of the month start where 004 switches from the
raw table to its time-sorted copy. The events include late arrivals, replayed inserts, DST
changes and month ends, a meter declared after its events arrived, a meter redefined, and a
price and a markup change effective in the past. Also: a store that already held events when
004 arrived, 004 run twice (a crash mid-file), and scans that must stay small."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from meterline.benchmark_analytics import LEGACY_PREFIX, legacy_view_statements
from sinks.client import SharedClient
from sinks.migrate import load_migrations, migrate
from tests.integration.clickhouse_fixtures import *  # noqa: F403
from tests.integration.clickhouse_fixtures import reset_schema

pytestmark = pytest.mark.integration

USAGE_COLUMNS = ["customer_id", "event_id", "meter", "value", "timestamp", "dimensions"]
TOKEN_COLUMNS = [
    *["customer_id", "event_id", "model", "provider", "input_tokens", "output_tokens"],
    *["cached_input_tokens", "timestamp", "dimensions"],
]
PRICE_COLUMNS = [
    *["model", "provider", "effective_from", "input_per_million", "output_per_million"],
    "cached_input_per_million",
]
METER_COLUMNS = ["code", "aggregation", "value_field", "group_by", "version", "deleted"]
CUSTOMERS = [f"c-{i}" for i in range(5)]
MODELS = ["gpt-4o", "claude-sonnet", "llama-70b", "unpriced-model"]
# gpu_seconds and raw_meter are not declared at first; gpu_seconds is declared later.
METERS = ["api_calls", "image_generations", "active_users", "storage_gb", "latency_ms"]
ALL_METERS = [*METERS, "gpu_seconds", "raw_meter"]

NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
# Where 004 switches from the raw table to the copy: the start of the previous month (UTC).
SWITCH = (TODAY.replace(day=1) - timedelta(days=1)).replace(day=1)
SWITCH_SQL = "toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')"
# Fixed spans with a month end and Europe/Berlin's DST start (29 March) and end (25 October
# 2026), and the recent weeks across the switch up to now.
SPANS = [
    (datetime(2026, 3, 26, tzinfo=UTC), datetime(2026, 4, 3, tzinfo=UTC)),
    (datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),
    (SWITCH - timedelta(days=12), NOW),
]
EDGES = [
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 in Berlin, just after the DST jump
    datetime(2026, 3, 31, 22, 0, tzinfo=UTC),  # midnight of 1 April in Berlin
    datetime(2026, 10, 25, 0, 59, 59, 999000, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # Berlin falls back
    datetime(2026, 10, 31, 23, 59, 59, 999000, tzinfo=UTC),
    SWITCH - timedelta(milliseconds=1),
    SWITCH,
    TODAY,
]
WINDOWS = ["minute", "hour", "day", "month"]
# (name, WHERE on window_start): open, half-open, closed and single-instant ranges.
RANGES = [
    ("all time", ""),
    ("from a DST day", "window_start >= toDateTime64('2026-03-29 00:00:00', 3, 'UTC')"),
    (
        "a closed range",
        "window_start >= toDateTime('2026-03-31 22:00:00', 'UTC')"
        " AND window_start < toDateTime('2026-10-25 03:30:00', 'UTC')",
    ),
    ("one instant", "window_start = toDateTime64('2026-10-25 00:00:00', 3, 'UTC')"),
    (
        "across the switch",
        f"window_start >= {SWITCH_SQL} - INTERVAL 3 DAY"
        f" AND window_start < {SWITCH_SQL} + INTERVAL 30 HOUR",
    ),
    ("today", "window_start >= today()"),
]


def _catalog(ch: SharedClient, *, later: bool) -> None:
    meters = [
        ["api_calls", "count", "value", [], 1, 0],
        ["image_generations", "sum", "value", ["model"], 1, 0],
        ["active_users", "unique_count", "user_id", [], 1, 0],
        ["storage_gb", "latest", "value", [], 1, 0],
        ["latency_ms", "min", "latency", ["region"], 1, 0],
    ]
    since = datetime(2025, 1, 1, tzinfo=UTC)
    prices = [
        ["gpt-4o", "openai", since, "2.5", "10", "1.25"],
        ["claude-sonnet", "anthropic", since, "3", "15", "0.3"],
        ["llama-70b", "together", since, "0.88", "0.88", "0.88"],
    ]
    markups = [[0, since, Decimal("0.2")]]
    if later:
        # Declared after its events were stored; latency_ms changes kind; a price and the
        # markup change from times in the past, in the middle of the stored events.
        meters = [
            ["gpu_seconds", "max", "value", ["region"], 1, 0],
            ["latency_ms", "max", "latency", ["region", "model"], 2, 0],
        ]
        prices = [["gpt-4o", "openai", datetime(2026, 3, 30, 12, 0, 0, 1000, tzinfo=UTC)]]
        prices[0] += ["1.75", "7.5", "0.5"]
        markups = [[0, SWITCH + timedelta(days=2, hours=5), Decimal("0.125")]]
    ch.insert("meters", meters, column_names=METER_COLUMNS)
    rows = [[m, p, at, *map(Decimal, rest)] for m, p, at, *rest in prices]
    ch.insert("model_prices", rows, column_names=PRICE_COLUMNS)
    ch.insert("markups", markups, column_names=["k", "effective_from", "rate"])


def _events(seed: int, n: int) -> tuple[list[list[Any]], list[list[Any]]]:
    """Usage and token rows, some of them on the edges (midnights, DST, month ends)."""
    r = random.Random(seed)
    usage, tokens = [], []
    for i in range(n):
        start, end = SPANS[i % len(SPANS)]
        if i % 17 == 0:
            ts = EDGES[i % len(EDGES)]
        else:
            seconds = r.randrange(int((end - start).total_seconds()))
            ts = start + timedelta(seconds=seconds, milliseconds=r.randrange(1000))
        customer = r.choice(CUSTOMERS)
        dims = {"region": r.choice(["eu", "us"]), "model": r.choice(["sdxl", "flux"])}
        if r.random() < 0.8:
            dims["user_id"] = f"u{r.randrange(12)}"
        if r.random() < 0.9:
            dims["latency"] = str(Decimal(r.randrange(-500, 50_000)) / 100)
        value = Decimal(r.randrange(-1000, 10**7)) / Decimal(10 ** r.randrange(0, 13))
        usage.append([customer, f"u-{seed}-{i}", r.choice(ALL_METERS), value, ts, dims])
        if i % 3 == 0:
            counts = [r.randrange(5000), r.randrange(2000), r.randrange(500)]
            tokens.append([customer, f"t-{seed}-{i}", r.choice(MODELS), "p", *counts, ts, {}])
    # Ties for `latest`: one meter, one millisecond, several event ids.
    for tie in (datetime(2026, 3, 30, 10, 0, 0, 5000, tzinfo=UTC), SWITCH + timedelta(hours=1)):
        for j, value in enumerate(["7", "3", "11"]):
            event = ["c-0", f"tie-{seed}-{tie:%m}-{j}", "storage_gb", Decimal(value), tie, {}]
            usage.append(event)
    return usage, tokens


def _load(ch: SharedClient) -> None:
    usage, tokens = _events(1, 1800)
    ch.insert("usage_events", usage, column_names=USAGE_COLUMNS)
    ch.insert("token_events", tokens, column_names=TOKEN_COLUMNS)
    # Late events: arrive after the rest, into windows that already have data.
    late_usage, late_tokens = _events(2, 360)
    ch.insert("usage_events", late_usage, column_names=USAGE_COLUMNS)
    ch.insert("token_events", late_tokens, column_names=TOKEN_COLUMNS)
    # A replay after a crash re-inserts rows already stored, batched differently.
    ch.insert("usage_events", usage[::7], column_names=USAGE_COLUMNS)
    ch.insert("token_events", tokens[::5], column_names=TOKEN_COLUMNS)
    # A retried identical block: the raw table drops it as a duplicate, its copy must not.
    ch.insert("usage_events", late_usage[:50], column_names=USAGE_COLUMNS)
    ch.insert("usage_events", late_usage[:50], column_names=USAGE_COLUMNS)


# 010_token_types.sql changed what token_usage says, not what it reads: input_tokens counts
# the cached tokens too (rows stored the old way, as these are, get them added) and two counts
# follow the old columns. The 002 reference is read in those terms.
_LEGACY_IN_010_TERMS = (
    (
        "    t.input_tokens AS input_tokens,",
        "    t.input_tokens + t.cached_input_tokens AS input_tokens,",
    ),
    (
        "       count() AS events\n",
        "       count() AS events,\n       sum(toUInt64(0)) AS cache_write_tokens,\n"
        "       sum(toUInt64(0)) AS reasoning_tokens\n",
    ),
)


def _legacy_views(ch: SharedClient) -> None:
    for statement in legacy_view_statements():
        if "VIEW legacy_token_priced " in statement or "VIEW legacy_token_usage_tz " in statement:
            for old, new in _LEGACY_IN_010_TERMS:
                statement = statement.replace(old, new)
        ch.command(statement)


# 2026-03-29 00:00 UTC, the day Berlin moves its clocks forward.
PARAMS = {"tz": "Europe/Berlin", "start": 1_774_742_400_000}


def _rows(ch: SharedClient, sql: str) -> list[tuple]:
    params = PARAMS if "{tz:String}" in sql else None
    out = []
    for row in ch.query(sql, params).result_rows:
        out.append(tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in row))
    return sorted(out, key=repr)


def _queries(full: bool = True) -> Iterator[tuple[str, str]]:
    """(label, SQL with {p} for the view prefix): the table of queries compared; without
    ``full``, all customers in UTC and Berlin over three of the ranges."""
    for window, zone, (name, where), customer, surface in itertools.product(
        WINDOWS,
        ["UTC", "Europe/Berlin"],
        RANGES,
        [None, "c-3"],
        ["usage_windows_tz", "token_usage_tz"],
    ):
        if not full and (customer or name not in ("all time", "across the switch", "today")):
            continue
        conds = [f"window = '{window}'", *([where] if where else [])]
        conds += [f"customer_id = '{customer}'"] if customer else []
        sql = f"SELECT * FROM {{p}}{surface}(tz = '{zone}') WHERE {' AND '.join(conds)}"
        yield f"{surface} {window} {zone} {name} {customer or 'all customers'}", sql
    for window, surface in itertools.product(WINDOWS, ["usage_windows_tz", "token_usage_tz"]):
        sql = f"SELECT * FROM {{p}}{surface}(tz = 'Asia/Kathmandu') WHERE window = '{window}'"
        yield f"{surface} {window} Asia/Kathmandu", sql
    # The plain UTC views, and a time range given as bound parameters, as the HTTP API does.
    yield "usage_windows", "SELECT * FROM {p}usage_windows WHERE window_start < today()"
    yield "token_usage", "SELECT * FROM {p}token_usage WHERE window IN ('hour', 'month')"
    yield (
        "usage, bound parameters",
        "SELECT * FROM {p}usage_windows_tz(tz = {tz:String}) WHERE window = 'day'"
        " AND window_start >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')",
    )


def _assert_views_equal(ch: SharedClient, *, full: bool = True) -> int:
    """Asserts that every query of the table answers alike; returns how many had rows."""
    answered = 0
    for label, template in _queries(full):
        new = _rows(ch, template.replace("{p}", ""))
        assert new == _rows(ch, template.replace("{p}", LEGACY_PREFIX)), label
        answered += bool(new)
    return answered


@pytest.fixture
def loaded(ch: SharedClient) -> SharedClient:
    _catalog(ch, later=False)
    _load(ch)
    _legacy_views(ch)
    return ch


def test_views_keep_their_columns_and_types(loaded: SharedClient) -> None:
    for view in ("usage_windows", "usage_windows_tz", "token_usage", "token_usage_tz"):
        args = "(tz = 'UTC')" if view.endswith("_tz") else ""
        new = loaded.query(f"DESCRIBE {view}{args}").result_rows
        old = loaded.query(f"DESCRIBE {LEGACY_PREFIX}{view}{args}").result_rows
        assert [r[:2] for r in new] == [r[:2] for r in old], view


def test_every_query_equals_the_002_views(loaded: SharedClient) -> None:
    # Before the catalog changes, then after: a meter declared and one redefined later, and a
    # price and markup effective in the past, re-aggregate and re-price the stored events.
    assert _assert_views_equal(loaded, full=False) > 30
    before = _rows(loaded, "SELECT * FROM usage_windows WHERE meter = 'gpu_seconds'")
    _catalog(loaded, later=True)
    assert _assert_views_equal(loaded) > 150
    after = _rows(loaded, "SELECT * FROM usage_windows WHERE meter = 'gpu_seconds'")
    assert before != after and {r[-1] for r in after} == {"max"}


def test_replays_count_once(loaded: SharedClient) -> None:
    usage, _ = _events(1, 1800)
    late, _ = _events(2, 360)
    expected = len({(row[0], row[1]) for row in usage + late})
    (events,) = loaded.query(
        "SELECT sum(events) FROM usage_windows WHERE window = 'month'"
    ).result_rows[0]
    assert events == expected
    recent = [row for row in usage + late if row[4] >= SWITCH]
    (stored,) = loaded.query(
        f"SELECT count() FROM usage_events_by_time WHERE timestamp >= {SWITCH_SQL}"
    ).result_rows[0]
    assert stored > len(recent)  # the copy holds the replays too; FINAL collapses them


def test_a_store_with_history_migrates_and_a_rerun_is_harmless(
    ch: SharedClient, tmp_path: Path
) -> None:
    reset_schema(ch)
    for m in load_migrations():
        if m.version < 4:
            (tmp_path / m.name).write_text(m.sql, encoding="utf-8")
    assert migrate(ch, tmp_path) == [1, 2, 3]
    _catalog(ch, later=False)
    _load(ch)
    (v4,) = [m for m in load_migrations() if m.version == 4]
    (tmp_path / v4.name).write_text(v4.sql, encoding="utf-8")
    assert migrate(ch, tmp_path) == [4]
    # A crash before the version was recorded runs the whole file again: back-fill twice.
    # (Before the files after it: those change the tables 004 fills by position.)
    for statement in v4.statements:
        ch.command(statement)
    assert 10 in migrate(ch)
    _legacy_views(ch)
    assert _assert_views_equal(ch, full=False) > 30
    # 010 run twice (a crash before it was recorded) is harmless too.
    (v10,) = [m for m in load_migrations() if m.version == 10]
    for statement in v10.statements:
        ch.command(statement)
    assert _assert_views_equal(ch, full=False) > 30


def test_time_filters_prune_the_scan(ch: SharedClient) -> None:
    """A day of hours out of 100 days reads a small part of the events; the 002 views read
    them all. A regression that loses pruning (say, a window_start that ClickHouse cannot see
    as monotonic in the event time) fails here instead of only getting slow."""
    _catalog(ch, later=False)
    events = 200_000  # one every 43 s for the 100 days before today: ~2,000 a day
    start = int((TODAY - timedelta(days=100)).timestamp())
    ts = f"toDateTime64({start}, 3, 'UTC') + toIntervalSecond(number * 43)"
    ch.command(
        "INSERT INTO usage_events (customer_id, event_id, meter, value, timestamp, dimensions)"
        " SELECT concat('p-', toString(number % 300)), concat('e-', toString(number)),"
        f" ['api_calls', 'storage_gb'][1 + number % 2], number % 1000, {ts}, map('region', 'eu')"
        f" FROM numbers({events})"
    )
    ch.command(
        "INSERT INTO token_events (customer_id, event_id, model, provider, input_tokens,"
        " output_tokens, cached_input_tokens, timestamp, dimensions)"
        " SELECT concat('p-', toString(number % 300)), concat('t-', toString(number)), 'gpt-4o',"
        f" 'openai', number % 5000, number % 700, number % 90, {ts}, map() FROM numbers({events})"
    )
    _legacy_views(ch)
    # A recent day comes from the copy (granules of it), one 90 days back from the raw table
    # (its month's partition): both far below the 002 views, which read every event.
    for days_back, share in ((2, 4), (90, 2)):
        day = (
            f"window = 'hour' AND window_start >= today() - {days_back}"
            f" AND window_start < today() - {days_back - 1}"
        )
        limited = {"max_rows_to_read": events // share, "read_overflow_mode": "throw"}
        for sql in (
            "SELECT * FROM {p}usage_windows WHERE " + day,
            "SELECT * FROM {p}usage_windows_tz(tz = 'Asia/Kathmandu') WHERE " + day,
            "SELECT * FROM {p}token_usage WHERE " + day,
            "SELECT * FROM {p}token_usage_tz(tz = 'Europe/Berlin') WHERE " + day,
        ):
            rows = ch.query(sql.replace("{p}", ""), settings=limited).result_rows
            assert len(rows) >= 24, sql
            with pytest.raises(DatabaseError, match="TOO_MANY_ROWS"):
                ch.query(sql.replace("{p}", LEGACY_PREFIX), settings=limited)
    # One customer's whole history reads that customer's rows, not the day's of everyone.
    one = "SELECT * FROM usage_windows WHERE customer_id = 'p-7' AND window = 'month'"
    assert ch.query(one, settings={"max_rows_to_read": events // 2}).result_rows
