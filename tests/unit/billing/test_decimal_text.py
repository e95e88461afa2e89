"""Decimals as outputs print them (issue 9, item 5): plain notation, no exponent, no trailing
zeros, money with its currency's minor-unit digits, and always the exact value."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.billing.invoice import MeterCharge, build_invoice
from meterline.billing.money import MINOR_UNITS, money_text, plain
from meterline.billing.periods import Period

D = Decimal
PERIOD = Period(1000, 2000, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0E-12", "0"),
        ("-0E-12", "0"),
        ("120.000000000000", "120"),
        ("1.2E+2", "120"),
        ("0.000000000001", "0.000000000001"),
        ("1E-12", "0.000000000001"),
        ("0.40", "0.4"),
        ("-6.50", "-6.5"),
        ("-0.50", "-0.5"),
        ("1E+3", "1000"),
        ("100", "100"),
    ],
)
def test_plain(value: str, expected: str) -> None:
    assert plain(D(value)) == expected


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("6", "USD", "6.00"),
        ("6.000000000000", "USD", "6.00"),
        ("0E-12", "EUR", "0.00"),
        ("-6.5", "USD", "-6.50"),
        ("0.125", "USD", "0.125"),  # more digits than the minor unit: shown, never rounded
        ("600", "JPY", "600"),
        ("600.00", "JPY", "600"),
        ("1.5", "KWD", "1.500"),
        ("6", "KWD", "6.000"),
        ("6E+2", "JPY", "600"),
    ],
)
def test_money_text(value: str, currency: str, expected: str) -> None:
    assert money_text(D(value), currency) == expected


finite = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**26), max_value=10**26)


@given(finite, st.sampled_from(sorted(MINOR_UNITS)))
def test_texts_are_exact_and_plain(value: Decimal, currency: str) -> None:
    for text in (plain(value), money_text(value, currency)):
        assert D(text) == value and "E" not in text.upper()
    p = plain(value)
    assert "." not in p or not p.endswith("0")
    digits = len(money_text(value, currency).partition(".")[2])
    assert digits >= MINOR_UNITS[currency]


def test_invoice_records_print_plain_decimals() -> None:
    # A Decimal(38, 12) quantity (as Avro decodes it) and a zero-priced meter.
    q = D("120.000000000000")
    inv = build_invoice(
        "c",
        "USD",
        PERIOD,
        2000,
        fee=D("49"),
        charges=[
            MeterCharge("free", q, D("0E-12"), D(0)),
            MeterCharge("seats", q, D("6.000000000000"), D("1.5")),
        ],
    )
    lines = {(x["kind"], x["meter"]): x for x in inv.to_dict()["lines"]}
    assert lines["usage", "free"]["quantity"] == "120"
    assert lines["usage", "free"]["unit_price"] == "0"
    assert lines["usage", "free"]["amount"] == "0.00"
    assert lines["usage", "seats"]["unit_price"] == "0.05"
    assert lines["usage", "seats"]["amount"] == "6.00"
    assert lines["fee", ""]["unit_price"] == "49" and lines["fee", ""]["amount"] == "49.00"
    record = inv.to_dict()
    assert (record["amount_due"], record["amount_paid"], record["remaining"]) == (
        "53.50",
        "0.00",
        "53.50",
    )
    # The values are untouched: only their printing changed.
    assert inv.line("usage", "seats").quantity == q


def test_amounts_keep_the_invoice_currency_digits() -> None:
    for currency, due in (("JPY", "600"), ("KWD", "600.000"), ("EUR", "600.00")):
        inv = build_invoice("c", currency, PERIOD, 2000, fee=D("600"))
        assert inv.to_dict()["amount_due"] == due
        assert inv.to_dict()["lines"][0]["amount"] == due
