"""``invoice_lines_text`` and ``invoices_text`` (009_invoice_text.sql) print decimals exactly as
the meterline.invoices records do (money.plain, money.money_text), on a real embedded ClickHouse
(chDB) with the migrated schema."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline.billing.money import MINOR_UNITS, money_text, plain
from sinks.client import SharedClient
from tests.integration.clickhouse_fixtures import *  # noqa: F403  (fixtures ch, ch_store, chdb_dsn)

pytestmark = pytest.mark.integration

T = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal
# Named here, not taken from sinks/tables/billing.py: later migrations add columns these rows
# leave at their defaults.
INVOICE_COLUMNS = (
    "invoice_id",
    "customer_id",
    "currency",
    "kind",
    "period_start",
    "period_end",
    "issued_at",
    "amount_due",
    "amount_paid",
    "remaining",
    "status",
    "version",
)
LINE_COLUMNS = (
    "invoice_id",
    "customer_id",
    "period_start",
    "period_end",
    "line_no",
    "kind",
    "meter",
    "quantity",
    "unit_price",
    "amount",
)


@dataclass(frozen=True)
class Line:
    name: str
    currency: str
    quantity: str | None
    unit_price: str | None
    amount: str


CASES = [
    Line("Decimal(38, 12) quantity, zero price", "USD", "120.000000000000", "0E-12", "0"),
    Line("whole amount gets its cents", "USD", "1", "6", "6"),
    Line("negative credits line", "EUR", None, None, "-6.5"),
    Line("more digits than the minor unit: shown", "USD", "3", "0.041666666667", "0.125"),
    Line("JPY has no minor unit", "JPY", "1", "600", "600"),
    Line("KWD has three", "KWD", "2", "0.25", "0.5"),
    Line("sub-cent unit price", "USD", "1000000", "0.000002", "2"),
]


def _insert(ch: SharedClient, rows: list[tuple[str, Line]]) -> None:
    ch.insert(
        "invoices",
        [
            [inv, "c", ln.currency, "period", T, T, T, D(ln.amount), D(0), D(ln.amount), "open", 1]
            for inv, ln in rows
        ],
        list(INVOICE_COLUMNS),
    )
    ch.insert(
        "invoice_lines",
        [
            [
                inv,
                "c",
                T,
                T,
                1,
                "usage",
                "m",
                None if ln.quantity is None else D(ln.quantity),
                None if ln.unit_price is None else D(ln.unit_price),
                D(ln.amount),
            ]
            for inv, ln in rows
        ],
        list(LINE_COLUMNS),
    )


def _opt_plain(raw: str | None) -> str | None:
    return None if raw is None else plain(D(raw))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_invoice_lines_text(ch: SharedClient, case: Line) -> None:
    _insert(ch, [("inv:1", case)])
    rows = ch.query(
        "SELECT currency, quantity, unit_price, amount FROM invoice_lines_text"
    ).result_rows
    assert rows == [
        (
            case.currency,
            _opt_plain(case.quantity),
            _opt_plain(case.unit_price),
            money_text(D(case.amount), case.currency),
        )
    ]
    due = ch.query("SELECT amount_due, amount_paid, remaining FROM invoices_text").result_rows
    text = money_text(D(case.amount), case.currency)
    assert due == [(text, money_text(D(0), case.currency), text)]


def test_every_currency_of_the_table_has_its_digits(ch: SharedClient) -> None:
    """The view's transform() arrays and money.MINOR_UNITS say the same."""
    rows = [(f"inv:{code}", Line(code, code, "1", "7", "7")) for code in sorted(MINOR_UNITS)]
    _insert(ch, rows)
    got = dict(ch.query("SELECT currency, amount FROM invoice_lines_text").result_rows)
    assert got == {code: money_text(D(7), code) for code in MINOR_UNITS}


def test_a_line_without_its_invoice_is_shown_plain(ch: SharedClient) -> None:
    ch.insert(
        "invoice_lines",
        [["inv:x", "c", T, T, 1, "fee", "", D(1), D("6.00"), D("6.00")]],
        list(LINE_COLUMNS),
    )
    rows = ch.query("SELECT currency, amount FROM invoice_lines_text").result_rows
    assert rows == [("", "6")]
