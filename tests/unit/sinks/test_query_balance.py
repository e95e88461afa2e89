"""sinks.queries.balance: the /balance SQL, table-driven."""

from __future__ import annotations

import pytest

from sinks.queries import BalanceQuery, TableInfo, balance_sql
from tests.unit.sinks.sqlcheck import HOSTILE, Case, check_bound, check_case

VIEW = TableInfo("balances", "View", {"customer_id": "String", "balance": "Decimal", "at": "DT"})
NO_AT = TableInfo("balances", "ReplacingMergeTree", {"customer_id": "String", "balance": "D"})

CASES = [
    Case(
        "the newest row by at",
        BalanceQuery(VIEW, "acme"),
        contains=(
            "SELECT * FROM balances WHERE customer_id = {customer:String} ORDER BY at DESC LIMIT 1",
        ),
        params={"customer": "acme"},
    ),
    Case(
        "no at column: any one row, FINAL for a ReplacingMergeTree",
        BalanceQuery(NO_AT, "acme"),
        contains=("FROM balances FINAL WHERE customer_id = {customer:String}", "LIMIT 1"),
        excludes=("ORDER BY",),
        params={"customer": "acme"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_balance_sql(case: Case) -> None:
    check_case(case, balance_sql(case.query))


def test_request_values_are_only_bound() -> None:
    check_bound(balance_sql(BalanceQuery(VIEW, HOSTILE)), [HOSTILE])
