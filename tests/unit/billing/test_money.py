from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.billing.money import (
    UnknownCurrency,
    minor_units,
    round_minor,
    to_decimal,
    unit_price,
)

D = Decimal


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.125", "USD", "0.12"),  # half to even: down
        ("0.135", "USD", "0.14"),  # half to even: up
        ("-0.125", "EUR", "-0.12"),
        ("6.995", "USD", "7.00"),
        ("22.005", "USD", "22.00"),
        ("1234.5", "JPY", "1234"),
        ("1235.5", "JPY", "1236"),
        ("1.0005", "KWD", "1.000"),
        ("7", "USD", "7.00"),
    ],
)
def test_round_minor(amount: str, currency: str, expected: str) -> None:
    result = round_minor(D(amount), currency)
    assert result == D(expected)
    assert str(result) == expected  # the scale is the currency's, not the input's


def test_unknown_currency_is_an_error_not_a_guess() -> None:
    with pytest.raises(UnknownCurrency):
        round_minor(D(1), "XYZ")
    assert minor_units("jpy") == 0


def test_floats_are_refused() -> None:
    with pytest.raises(ValueError):
        to_decimal(0.1)
    with pytest.raises(ValueError):
        to_decimal(True)
    with pytest.raises(ValueError):
        to_decimal("NaN")
    assert to_decimal("0.1") == D("0.1")
    assert to_decimal(3) == D(3)


def test_unit_price_keeps_twelve_places() -> None:
    assert unit_price(D("1.15"), D(13)) == D("0.088461538462")
    assert unit_price(D("5"), D(0)) == 0


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=6))
def test_rounding_moves_at_most_half_a_minor_unit(amount: Decimal) -> None:
    assert abs(round_minor(amount, "USD") - amount) <= D("0.005")
