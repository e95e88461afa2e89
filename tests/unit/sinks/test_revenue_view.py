"""The ``revenue`` view (006_revenue.sql): payments by month, processor, status and currency,
on a real embedded ClickHouse (chDB) with the migrated schema, table-driven."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from sinks.client import SharedClient
from tests.integration.clickhouse_fixtures import *  # noqa: F403  (fixtures ch, ch_store, chdb_dsn)

pytestmark = pytest.mark.integration

D = Decimal
COLUMNS = ("payment_id", "customer_id", "processor", "status", "amount", "currency")
COLUMNS += ("pays_kind", "pays", "failure_code", "at")
JAN = datetime(2026, 1, 31, 23, 59, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)

PAYMENTS = [
    ("p1", "a", "stripe", "succeeded", "25.00", "USD", JAN),
    ("p1", "a", "stripe", "succeeded", "25.00", "USD", JAN),  # re-delivered: one row
    ("p2", "b", "stripe", "succeeded", "10.50", "USD", JAN),
    ("p3", "c", "adyen", "succeeded", "9.00", "EUR", JAN),
    ("p3", "c", "adyen", "refunded", "4.00", "EUR", FEB),
    ("p4", "d", "adyen", "failed", "9.00", "EUR", FEB),
    ("p5", "e", "braintree", "succeeded", "1200", "JPY", FEB),
]


@dataclass(frozen=True)
class Case:
    name: str
    where: str
    expected: list[tuple[date, str, str, str, int, Decimal]]


CASES = [
    Case(
        "one row per month, processor, status and currency",
        "1",
        [
            (date(2026, 1, 1), "adyen", "succeeded", "EUR", 1, D("9")),
            (date(2026, 1, 1), "stripe", "succeeded", "USD", 2, D("35.5")),
            (date(2026, 2, 1), "adyen", "failed", "EUR", 1, D("9")),
            (date(2026, 2, 1), "adyen", "refunded", "EUR", 1, D("4")),
            (date(2026, 2, 1), "braintree", "succeeded", "JPY", 1, D("1200")),
        ],
    ),
    Case(
        "a status", "status = 'refunded'", [(date(2026, 2, 1), "adyen", "refunded", "EUR", 1, D(4))]
    ),
    Case(
        "a currency",
        "currency = 'JPY'",
        [(date(2026, 2, 1), "braintree", "succeeded", "JPY", 1, D(1200))],
    ),
    Case(
        "a month, the boundary in UTC",
        "period = '2026-01-01'",
        [
            (date(2026, 1, 1), "adyen", "succeeded", "EUR", 1, D("9")),
            (date(2026, 1, 1), "stripe", "succeeded", "USD", 2, D("35.5")),
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_revenue_view(ch: SharedClient, case: Case) -> None:
    ch.insert(
        "payments",
        [
            [p, c, proc, st, D(a), cur, "invoice", f"inv:{c}", "", at]
            for p, c, proc, st, a, cur, at in PAYMENTS
        ],
        list(COLUMNS),
    )
    rows = ch.query(
        "SELECT period, processor, status, currency, payments, amount FROM revenue"
        f" WHERE {case.where} ORDER BY period, processor, status, currency"
    ).result_rows
    assert [tuple(r) for r in rows] == case.expected
