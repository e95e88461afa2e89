"""sinks.queries.tables: table lookups and how a found table is read."""

from __future__ import annotations

import pytest

from sinks.queries import TableInfo, table_columns_sql, table_engine_sql
from tests.unit.sinks.sqlcheck import HOSTILE, Case, check_bound, check_case

CASES = [
    Case(
        "engine",
        table_engine_sql("credit_ledger"),
        contains=("FROM system.tables", "name = {table:String}", "currentDatabase()"),
        params={"table": "credit_ledger"},
    ),
    Case(
        "columns in table order",
        table_columns_sql("credit_ledger"),
        contains=("FROM system.columns", "table = {table:String}", "ORDER BY position"),
        params={"table": "credit_ledger"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_lookup_sql(case: Case) -> None:
    check_case(case, case.query)


def test_lookup_values_are_only_bound() -> None:
    check_bound(table_engine_sql(HOSTILE), [HOSTILE])
    check_bound(table_columns_sql(HOSTILE), [HOSTILE])


@pytest.mark.parametrize(
    ("engine", "source"),
    [
        ("ReplacingMergeTree", "t FINAL"),
        ("ReplicatedReplacingMergeTree", "t FINAL"),
        ("SharedSummingMergeTree", "t FINAL"),
        ("CollapsingMergeTree", "t FINAL"),
        ("AggregatingMergeTree", "t FINAL"),
        ("MergeTree", "t"),
        ("View", "t"),
    ],
)
def test_source_reads_unmerged_engines_with_final(engine: str, source: str) -> None:
    assert TableInfo("t", engine, {}).source == source


@pytest.mark.parametrize(
    ("column_type", "epoch_ms"),
    [("Int64", True), ("UInt64", True), ("DateTime64(3, 'UTC')", False), (None, False)],
)
def test_is_epoch_ms(column_type: str | None, epoch_ms: bool) -> None:
    columns = {"at": column_type} if column_type else {}
    assert TableInfo("t", "MergeTree", columns).is_epoch_ms("at") is epoch_ms


def test_a_table_name_is_never_spliced_unchecked() -> None:
    with pytest.raises(ValueError, match="identifier"):
        _ = TableInfo("t; DROP TABLE dlq", "MergeTree", {}).source
