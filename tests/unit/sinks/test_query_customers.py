"""sinks.queries.customers: the /customers SQL, table-driven."""

from __future__ import annotations

import pytest

from sinks.queries import CustomersQuery, customers_sql
from tests.unit.sinks.sqlcheck import HOSTILE, Case, check_bound, check_case

COMMON = (
    "FROM usage_events FINAL",
    "FROM token_events FINAL",
    "WHERE startsWith(customer_id, {prefix:String})",
    "ORDER BY customer_id\nLIMIT {limit:UInt32}",
)

CASES = [
    Case("everyone", CustomersQuery(), contains=COMMON, params={"prefix": "", "limit": 1001}),
    Case(
        "prefix and limit",
        CustomersQuery(prefix="glo", limit=10),
        contains=COMMON,
        params={"prefix": "glo", "limit": 11},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_customers_sql(case: Case) -> None:
    check_case(case, customers_sql(case.query))


def test_request_values_are_only_bound() -> None:
    check_bound(customers_sql(CustomersQuery(prefix=HOSTILE)), [HOSTILE])
