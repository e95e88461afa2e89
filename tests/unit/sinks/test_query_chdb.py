"""Every query builder run against a real embedded ClickHouse (chDB) with the migrated schema:
the SQL parses, binds, and filters as the unit tables say."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from sinks.client import SharedClient
from sinks.queries import (
    BalanceQuery,
    ColumnFilter,
    CustomerRowsQuery,
    CustomersQuery,
    DimensionFilter,
    SqlQuery,
    TableInfo,
    TimeRange,
    TokensQuery,
    UsageQuery,
    balance_sql,
    customer_rows_sql,
    customers_sql,
    table_columns_sql,
    table_engine_sql,
    tokens_sql,
    usage_sql,
)
from sinks.query import query_rows
from tests.integration.clickhouse_fixtures import *  # noqa: F403  (fixtures ch, ch_store, chdb_dsn)

pytestmark = pytest.mark.integration

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MINUTE = 60_000
HOUR = 3_600_000
LEDGER_COLUMNS = (
    "entry_id",
    "seq",
    "customer_id",
    "at",
    "kind",
    "amount",
    "balance_after",
    "grant_id",
    "ref",
)


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def seed(ch: SharedClient) -> None:
    ch.insert(
        "meters",
        [["images", "sum", "value", ["model"], 1, 0]],
        ["code", "aggregation", "value_field", "group_by", "version", "deleted"],
    )
    usage = [
        ("acme", "a1", "api_calls", "1", T0 + MINUTE, {}),
        ("acme", "a2", "api_calls", "1", T0 + 2 * MINUTE, {}),
        ("acme", "i1", "images", "2", T0 + 5 * MINUTE, {"model": "sd"}),
        ("acme", "i2", "images", "3", T0 + 5 * MINUTE, {"model": "flux"}),
        ("globex", "g1", "api_calls", "1", T0 + HOUR, {}),
    ]
    ch.insert(
        "usage_events",
        [[c, e, m, Decimal(v), at(ts), d, at(ts)] for c, e, m, v, ts, d in usage],
        ["customer_id", "event_id", "meter", "value", "timestamp", "dimensions", "ingested_at"],
    )
    ch.insert(
        "model_prices",
        [["gpt-4o", "openai", at(0), Decimal("2.5"), Decimal("10"), Decimal("1.25")]],
        [
            "model",
            "provider",
            "effective_from",
            "input_per_million",
            "output_per_million",
            "cached_input_per_million",
        ],
    )
    ch.insert(
        "token_events",
        [["initech", "t1", "gpt-4o", "openai", 1_000_000, 100_000, 0, at(T0), {}, at(T0)]],
        [
            "customer_id",
            "event_id",
            "model",
            "provider",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "timestamp",
            "dimensions",
            "ingested_at",
        ],
    )
    ledger = [
        ("e1", 1, "grant", "10", "10", "welcome", T0),
        ("e2", 2, "usage", "-1", "9", "welcome", T0 + MINUTE),
        ("e3", 3, "usage", "-2", "7", "welcome", T0 + MINUTE),
    ]
    ch.insert(
        "credit_ledger",
        [
            [e, s, "acme", at(ts), k, Decimal(a), Decimal(b), g, ""]
            for e, s, k, a, b, g, ts in ledger
        ],
        LEDGER_COLUMNS,
    )
    ch.insert(
        "balance_history",
        [["acme", Decimal("9"), at(T0 + MINUTE), 2], ["acme", Decimal("7"), at(T0 + HOUR), 3]],
        ["customer_id", "balance", "at", "version"],
    )


def table(ch: SharedClient, name: str) -> TableInfo:
    _, engines = query_rows(ch, *table_engine_sql(name))
    _, columns = query_rows(ch, *table_columns_sql(name))
    return TableInfo(name, str(engines[0][0]), {str(n): str(t) for n, t in columns})


@dataclass(frozen=True)
class Run:
    name: str
    build: Callable[[SharedClient], SqlQuery]
    columns: tuple[str, ...]  # projected from each result row, for the comparison
    expected: list[tuple[Any, ...]]


def ledger_rows(**kwargs: Any) -> Callable[[SharedClient], SqlQuery]:
    def build(ch: SharedClient) -> SqlQuery:
        q = CustomerRowsQuery(table(ch, "credit_ledger"), "acme", "at", **kwargs)
        return customer_rows_sql(q)

    return build


RUNS = [
    Run(
        "usage by minute, one meter",
        lambda ch: usage_sql(UsageQuery("acme", window="minute", meters=("api_calls",))),
        ("window_start", "value", "events"),
        [(at(T0 + MINUTE), Decimal(1), 1), (at(T0 + 2 * MINUTE), Decimal(1), 1)],
    ),
    Run(
        "usage, a dimension filter",
        lambda ch: usage_sql(
            UsageQuery("acme", window="day", dimensions=(DimensionFilter("model", ("sd",)),))
        ),
        ("meter", "value"),
        [("images", Decimal(2))],
    ),
    Run(
        "usage, half-open range, in Kolkata's hours",
        lambda ch: usage_sql(
            UsageQuery("acme", tz="Asia/Kolkata", time=TimeRange(T0 - HOUR, T0 + HOUR))
        ),
        ("meter", "window_start", "value"),
        [
            ("api_calls", at(T0 - 30 * MINUTE), Decimal(2)),
            ("images", at(T0 - 30 * MINUTE), Decimal(3)),
            ("images", at(T0 - 30 * MINUTE), Decimal(2)),
        ],
    ),
    Run(
        "usage, limit fetches one more",
        lambda ch: usage_sql(UsageQuery("acme", window="minute", limit=1)),
        ("meter",),
        [("api_calls",), ("api_calls",)],
    ),
    Run(
        "tokens priced",
        lambda ch: tokens_sql(TokensQuery("initech", window="day", models=("gpt-4o",))),
        ("model", "input_tokens", "cost"),
        [("gpt-4o", 1_000_000, Decimal("3.5"))],
    ),
    Run(
        "customers by prefix",
        lambda ch: customers_sql(CustomersQuery(prefix="ac")),
        ("customer_id", "events", "meter_codes"),
        [("acme", 4, ["api_calls", "images"])],
    ),
    Run(
        "customers with token events only",
        lambda ch: customers_sql(CustomersQuery(prefix="ini")),
        ("customer_id", "events", "token_events", "models"),
        [("initech", 0, 1, ["gpt-4o"])],
    ),
    Run(
        "ledger newest first, seq within one millisecond",
        ledger_rows(order=("at DESC", "seq DESC")),
        ("entry_id",),
        [("e3",), ("e2",), ("e1",)],
    ),
    Run(
        "ledger filtered by kind, from",
        ledger_rows(
            time=TimeRange(T0 + 1, None),
            filters=(ColumnFilter("kind", ("usage",)),),
            order=("seq",),
        ),
        ("entry_id",),
        [("e2",), ("e3",)],
    ),
    Run(
        "latest balance",
        lambda ch: balance_sql(BalanceQuery(table(ch, "balances"), "acme")),
        ("balance",),
        [(Decimal(7),)],
    ),
]


@pytest.mark.parametrize("run", RUNS, ids=lambda r: r.name)
def test_runs_on_chdb(ch: SharedClient, run: Run) -> None:
    seed(ch)
    columns, rows = query_rows(ch, *run.build(ch))
    index = [columns.index(c) for c in run.columns]
    got = [tuple(row[i] for i in index) for row in rows]
    assert got == run.expected
