"""sinks.queries.customer_rows: the billing listings' SQL, table-driven."""

from __future__ import annotations

import pytest

from sinks.queries import ColumnFilter, CustomerRowsQuery, TableInfo, TimeRange, customer_rows_sql
from tests.unit.sinks.sqlcheck import HOSTILE, Case, check_bound, check_case

DT = "DateTime64(3, 'UTC')"
LEDGER = TableInfo(
    "credit_ledger",
    "ReplacingMergeTree",
    {"entry_id": "String", "seq": "UInt64", "customer_id": "String", "at": DT, "kind": "String"},
)
EPOCH_LEDGER = TableInfo("credit_ledger", "MergeTree", {"customer_id": "String", "at": "Int64"})
ORDER = ("at DESC", "seq DESC")

CASES = [
    Case(
        "customer only, newest first, FINAL",
        CustomerRowsQuery(LEDGER, "acme", "at", order=ORDER),
        contains=(
            "SELECT * FROM credit_ledger FINAL WHERE customer_id = {customer:String} "
            "ORDER BY at DESC, seq DESC LIMIT {limit:UInt32}",
        ),
        params={"customer": "acme", "limit": 101},
    ),
    Case(
        "range on a DateTime64 column",
        CustomerRowsQuery(LEDGER, "acme", "at", TimeRange(1, 2), limit=3),
        contains=(
            "at >= fromUnixTimestamp64Milli({start:Int64}, 'UTC') AND "
            "at < fromUnixTimestamp64Milli({end:Int64}, 'UTC')",
        ),
        params={"customer": "acme", "start": 1, "end": 2, "limit": 4},
    ),
    Case(
        "range on an epoch-ms column compares integers",
        CustomerRowsQuery(EPOCH_LEDGER, "acme", "at", TimeRange(1, None)),
        contains=("FROM credit_ledger WHERE", "at >= {start:Int64}"),
        excludes=("FINAL", "fromUnixTimestamp64Milli"),
        params={"customer": "acme", "start": 1, "limit": 101},
    ),
    Case(
        "no time column: no range",
        CustomerRowsQuery(LEDGER, "acme", "period_start", TimeRange(1, 2)),
        excludes=("period_start", "{start"),
        params={"customer": "acme", "limit": 101},
    ),
    Case(
        "filters on columns, as text, each repeatable",
        CustomerRowsQuery(
            LEDGER,
            "acme",
            "at",
            filters=(ColumnFilter("kind", ("grant", "usage")), ColumnFilter("entry_id", ("e1",))),
        ),
        contains=(
            "has({f0:Array(String)}, toString(kind)) AND has({f1:Array(String)}, "
            "toString(entry_id))",
        ),
        params={"customer": "acme", "f0": ["grant", "usage"], "f1": ["e1"], "limit": 101},
    ),
    Case(
        "an empty filter or one on a missing column is skipped",
        CustomerRowsQuery(
            LEDGER,
            "acme",
            "at",
            filters=(ColumnFilter("kind", ()), ColumnFilter("grant_id", ("welcome",))),
        ),
        excludes=("has(", "grant_id"),
        params={"customer": "acme", "limit": 101},
    ),
    Case(
        "order terms on missing columns are skipped",
        CustomerRowsQuery(EPOCH_LEDGER, "acme", "at", order=ORDER),
        contains=("ORDER BY at DESC LIMIT",),
        excludes=("seq",),
        params={"customer": "acme", "limit": 101},
    ),
    Case(
        "no usable order: none",
        CustomerRowsQuery(EPOCH_LEDGER, "acme", "at", order=("seq DESC",)),
        excludes=("ORDER BY",),
        params={"customer": "acme", "limit": 101},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_customer_rows_sql(case: Case) -> None:
    check_case(case, customer_rows_sql(case.query))


def test_request_values_are_only_bound() -> None:
    built = customer_rows_sql(
        CustomerRowsQuery(LEDGER, HOSTILE, "at", filters=(ColumnFilter("kind", (HOSTILE,)),))
    )
    check_bound(built, [HOSTILE])


@pytest.mark.parametrize("order", ["at DESC; DROP TABLE dlq", "at SIDEWAYS", "at DESC NULLS"])
def test_an_odd_order_term_is_refused(order: str) -> None:
    with pytest.raises(ValueError):
        customer_rows_sql(CustomerRowsQuery(LEDGER, "acme", "at", order=(order,)))
