"""`meterline benchmark-analytics`: analytics latency as raw history grows.

Per size, a child process (chDB allows one data directory per process) builds a store in a
temporary directory the way a long-running one looks: the schema before 004 with N raw usage
events and N/4 token events (2,000 customers, six meters, a span of UTC days ending with the
whole of today), then the migrations up to date (timed: 004 back-fills its time-sorted copies),
settled history merged, and today's events inserted last in small batches as the worker would.
Then it times the dashboard's queries against the 004 views and against the 002 views,
re-created under ``legacy_`` names over the same raw tables, and checks that both give the same
answer. Engine time (``FORMAT Null``, no transfer to Python), medians over rounds, nothing
asserted. The temporary directory is removed at the end, also on failure or interrupt.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = [
    "LEGACY_PREFIX",
    "QUERIES",
    "history_days",
    "legacy_view_statements",
    "run_analytics_benchmark",
]

SIZES = (1_000_000, 10_000_000)
HISTORY_DAYS = 35
CUSTOMERS = 2_000
TOKEN_SHARE = 4
LIVE_BATCHES = 20
CUSTOMER = "cust-00042"
LEGACY_PREFIX = "legacy_"
# The 002 views as they were before 004 (002 itself is never edited: migrations are history).
_LEGACY_VIEWS = (
    "usage_metered",
    "usage_windows_tz",
    "usage_windows",
    "token_priced",
    "token_billed",
    "token_usage_tz",
    "token_usage",
)
_LEGACY_RE = re.compile(r"\b(" + "|".join(_LEGACY_VIEWS) + r")\b")
_VIEW_NAME_RE = re.compile(r"CREATE OR REPLACE VIEW (\w+)")

# (label, SQL with {p} = view prefix, {c} = the customer).
QUERIES: tuple[tuple[str, str], ...] = (
    (
        "all customers, today by hour",
        "SELECT customer_id, meter, dimensions, window_start, value, events FROM {p}usage_windows"
        " WHERE window = 'hour' AND window_start >= today()",
    ),
    (
        "one customer, every month",
        "SELECT meter, dimensions, window_start, value, events FROM {p}usage_windows"
        " WHERE customer_id = '{c}' AND window = 'month'",
    ),
    (
        "one customer, today by hour",
        "SELECT meter, dimensions, window_start, value, events FROM {p}usage_windows"
        " WHERE customer_id = '{c}' AND window = 'hour' AND window_start >= today()",
    ),
    (
        "tokens, all customers, today by hour",
        "SELECT customer_id, model, window_start, input_tokens, output_tokens, cost, billed"
        " FROM {p}token_usage WHERE window = 'hour' AND window_start >= today()",
    ),
)

_METERS = (
    ("api_calls", "count", "value", []),
    ("image_generations", "sum", "value", ["model"]),
    ("active_users", "unique_count", "user_id", []),
    ("storage_gb", "latest", "value", []),
    ("latency_ms_max", "max", "value", ["region"]),
)
# gpu_seconds is declared nowhere: it counts as a sum of its value, as undeclared meters do.
_METER_CODES = [code for code, *_ in _METERS] + ["gpu_seconds"]

_USAGE_SQL = """
INSERT INTO {table} (customer_id, event_id, meter, value, timestamp, dimensions, ingested_at)
SELECT customer_id, event_id, meter, value, ts, dimensions, now64(3)
FROM
(
    SELECT concat('cust-', leftPad(toString(cityHash64(number, 1) % {customers}), 5, '0'))
               AS customer_id,
           concat('ev-', toString(number)) AS event_id,
           {meters}[1 + cityHash64(number, 2) % {n_meters}] AS meter,
           CAST(cityHash64(number, 3) % 100000 AS Decimal(38, 12)) / 1000 AS value,
           fromUnixTimestamp64Milli(toInt64({start_ms} + cityHash64(number, 4) % {span_ms}), 'UTC')
               AS ts,
           map('region', ['eu', 'us', 'ap'][1 + cityHash64(number, 5) % 3],
               'model', ['sdxl', 'flux', 'dalle'][1 + cityHash64(number, 6) % 3],
               'user_id', concat('u', toString(cityHash64(number, 7) % 300))) AS dimensions
    FROM numbers({count})
)
WHERE {where}
SETTINGS max_partitions_per_insert_block = 0
"""

_TOKEN_SQL = """
INSERT INTO {table} (customer_id, event_id, model, provider, input_tokens, output_tokens,
                     cached_input_tokens, timestamp, dimensions, ingested_at)
SELECT customer_id, event_id, model, 'p', input_tokens, output_tokens, cached_input_tokens, ts,
       map(), now64(3)
FROM
(
    SELECT concat('cust-', leftPad(toString(cityHash64(number, 11) % {customers}), 5, '0'))
               AS customer_id,
           concat('tk-', toString(number)) AS event_id,
           ['gpt-4o', 'claude-sonnet', 'llama-70b'][1 + cityHash64(number, 12) % 3] AS model,
           cityHash64(number, 13) % 5000 AS input_tokens,
           cityHash64(number, 14) % 2000 AS output_tokens,
           cityHash64(number, 15) % 500 AS cached_input_tokens,
           fromUnixTimestamp64Milli(toInt64({start_ms} + cityHash64(number, 16) % {span_ms}), 'UTC')
               AS ts
    FROM numbers({count})
)
WHERE {where}
SETTINGS max_partitions_per_insert_block = 0
"""


def legacy_view_statements(prefix: str = LEGACY_PREFIX) -> list[str]:
    """The 002 definitions of the usage and token views, renamed ``{prefix}<name>``, reading
    the raw tables as they did before 004: the reference 004's views must equal."""
    from sinks.migrate import load_migrations

    (raw,) = [m for m in load_migrations() if m.version == 2]
    out = []
    for statement in raw.statements:
        match = _VIEW_NAME_RE.search(statement)
        if match is not None and match.group(1) in _LEGACY_VIEWS:
            out.append(_LEGACY_RE.sub(lambda m: prefix + m.group(1), statement))
    return out


# ---- child: one size, one store ---------------------------------------------------------


def _insert_raw(client: Any, events: int, days: int, today: datetime, *, live: bool) -> None:
    """History (before today) into the raw tables, or today's events into staging tables."""
    start = today - timedelta(days=days - 1)
    op = ">=" if live else "<"
    common = {
        "customers": CUSTOMERS,
        "start_ms": int(start.timestamp() * 1000),
        "span_ms": days * 86_400_000,
        "where": f"ts {op} fromUnixTimestamp64Milli({int(today.timestamp() * 1000)}, 'UTC')",
    }
    meters = "[" + ", ".join(f"'{m}'" for m in _METER_CODES) + "]"
    usage, tokens = ("live_usage", "live_tokens") if live else ("usage_events", "token_events")
    client.command(
        _USAGE_SQL.format(
            table=usage, count=events, meters=meters, n_meters=len(_METER_CODES), **common
        )
    )
    client.command(_TOKEN_SQL.format(table=tokens, count=events // TOKEN_SHARE, **common))


def _insert_live(client: Any, events: int, days: int, today: datetime) -> None:
    """Today's events as the worker writes them: small inserts through the feed, unmerged."""
    for staging, table in (("live_usage", "usage_events"), ("live_tokens", "token_events")):
        client.command(f"CREATE TABLE {staging} AS {table} ENGINE = Memory")
    _insert_raw(client, events, days, today, live=True)
    for staging, table in (("live_usage", "usage_events"), ("live_tokens", "token_events")):
        for batch in range(LIVE_BATCHES):
            client.command(
                f"INSERT INTO {table} SELECT * FROM {staging}"
                f" WHERE cityHash64(event_id) % {LIVE_BATCHES} = {batch}"
            )
        client.command(f"DROP TABLE {staging}")


def _seed_catalog(client: Any) -> None:
    client.insert(
        "meters",
        [[code, agg, field, group_by, 1, 0] for code, agg, field, group_by in _METERS],
        column_names=["code", "aggregation", "value_field", "group_by", "version", "deleted"],
    )
    client.command(
        "INSERT INTO model_prices VALUES"
        " ('gpt-4o', 'openai', '2020-01-01 00:00:00', 2.5, 10, 1.25),"
        " ('claude-sonnet', 'anthropic', '2020-01-01 00:00:00', 3, 15, 0.3),"
        " ('llama-70b', 'together', '2020-01-01 00:00:00', 0.88, 0.88, 0.88)"
    )
    client.command("INSERT INTO markups VALUES (0, '2020-01-01 00:00:00', 0.2)")


def _build(client: Any, store: Path, events: int, days: int) -> dict[str, float]:
    from sinks.migrate import load_migrations, migrate

    # An existing store from before 004: the schema up to 003, then its raw history.
    old_ddl = store / "ddl-before-004"
    old_ddl.mkdir()
    for m in load_migrations():
        if m.version < 4:
            (old_ddl / m.name).write_text(m.sql, encoding="utf-8")
    migrate(client, old_ddl)
    _seed_catalog(client)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    started = time.perf_counter()
    _insert_raw(client, events, days, today, live=False)
    loaded = time.perf_counter()
    migrate(client)
    migrated = time.perf_counter()
    for table in ("usage_events", "token_events", "usage_events_by_time", "token_events_by_time"):
        client.command(f"OPTIMIZE TABLE {table} FINAL")
    _insert_live(client, events, days, today)
    for statement in legacy_view_statements():
        client.command(statement)
    (today_events,) = client.query(
        "SELECT count() FROM usage_events WHERE timestamp >="
        f" fromUnixTimestamp64Milli({int(today.timestamp() * 1000)}, 'UTC')"
    ).result_rows[0]
    return {
        "load_s": loaded - started,
        "migrate_s": migrated - loaded,
        "today_events": float(today_events),
    }


def _fingerprint(client: Any, sql: str) -> tuple[int, int]:
    (row,) = client.query(
        f"SELECT count(), sum(cityHash64(toString(tuple(*)))) FROM ({sql})"
    ).result_rows
    return int(row[0]), int(row[1])


def _time(client: Any, sql: str) -> float:
    started = time.perf_counter()
    client.command(f"{sql} FORMAT Null")
    return (time.perf_counter() - started) * 1000


def _child(store: Path, events: int, days: int, rounds: int) -> dict[str, Any]:
    from sinks.client import connect

    client = connect(f"chdb://{store / 'chdb'}")
    try:
        build = _build(client, store, events, days)
        results = []
        for label, template in QUERIES:
            new = template.format(p="", c=CUSTOMER)
            old = template.format(p=LEGACY_PREFIX, c=CUSTOMER)
            same = _fingerprint(client, new) == _fingerprint(client, old)
            _time(client, new), _time(client, old)  # warm-up: caches, first plan
            new_ms, old_ms = [], []
            for _ in range(rounds):
                new_ms.append(_time(client, new))
                old_ms.append(_time(client, old))
            results.append(
                {
                    "label": label,
                    "new_ms": statistics.median(new_ms),
                    "old_ms": statistics.median(old_ms),
                    "same": same,
                }
            )
        return {"events": events, "days": days, **build, "queries": results}
    finally:
        client.close()


# ---- parent -----------------------------------------------------------------------------


def _run_size(events: int, days: int, rounds: int, root: Path) -> dict[str, Any]:
    store = root / f"store-{events}"
    store.mkdir()
    argv = [str(store), f"{events}", f"{days}", f"{rounds}"]
    proc = subprocess.run(
        [sys.executable, "-m", "meterline.benchmark_analytics", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child for {events:,} events failed:\n{proc.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def history_days(events: int, days: int | None) -> int:
    """``days``, or with None a history that grows with the store at 1,000,000 events per
    HISTORY_DAYS days (so today holds as many events at every size)."""
    return days if days is not None else max(1, round(HISTORY_DAYS * events / 1_000_000))


def run_analytics_benchmark(
    sizes: Sequence[int] = SIZES,
    console: Console | None = None,
    rounds: int = 5,
    days: int | None = HISTORY_DAYS,
) -> list[dict[str, Any]]:
    """Builds one store per size (in a child process each), prints a table, returns the
    per-size reports (``queries``: label, new_ms, old_ms, same).

    ``days`` of history end with the whole of today: a fixed span makes a bigger store
    denser (today grows with it); None makes it longer at a fixed rate (today stays the same
    size, only the history behind it grows)."""
    console = console or Console()
    root = Path(tempfile.mkdtemp(prefix="meterline-bench-analytics-"))
    reports: list[dict[str, Any]] = []
    try:
        for events in sizes:
            span = history_days(events, days)
            with console.status(f"{events:,} raw events over {span} days: building, querying"):
                reports.append(_run_size(events, span, rounds, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = Table(
        title=f"Analytics, engine time (median of {rounds}): 004 views vs the 002 views,"
        f" same store · {CUSTOMERS:,} customers, token events = usage events / {TOKEN_SHARE}"
    )
    table.add_column("query")
    for r in reports:
        table.add_column(f"{r['events']:,} / {r['days']} d\n004 ms", justify="right")
        table.add_column("\n002 ms", justify="right")
    table.add_column("same\nanswer", justify="center")
    for i, (label, _) in enumerate(QUERIES):
        cells = [label]
        for r in reports:
            q = r["queries"][i]
            cells += [f"{q['new_ms']:,.0f}", f"{q['old_ms']:,.0f}"]
        same = all(r["queries"][i]["same"] for r in reports)
        cells.append("yes" if same else "[red]NO[/red]")
        table.add_row(*cells)
    console.print(table)
    for r in reports:
        console.print(
            f"{r['events']:,} events over {r['days']} days, {r['today_events']:,.0f} of them"
            f" today: history loaded in {r['load_s']:.1f} s, migrated to 004 (back-fill)"
            f" in {r['migrate_s']:.1f} s"
        )
    return reports


def _main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description="one size of the analytics benchmark (child)")
    parser.add_argument("store", type=Path)
    parser.add_argument("events", type=int)
    parser.add_argument("days", type=int)
    parser.add_argument("rounds", type=int)
    args = parser.parse_args(argv)
    print(json.dumps(_child(args.store, args.events, args.days, args.rounds)))


if __name__ == "__main__":
    _main(sys.argv[1:])
