"""Token price book: price in force at the event time, exact cost and markup."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.metering.pricebook import (
    Markup,
    ModelPrice,
    PriceBook,
    PriceBookError,
    PricingError,
    TokenCost,
    UnknownModelError,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000


def gpt(input_pm: str, output_pm: str, cached_pm: str, effective_from: int) -> ModelPrice:
    return ModelPrice("gpt-4o", "openai", input_pm, output_pm, cached_pm, effective_from)  # type: ignore[arg-type]


def test_price_change_applies_from_its_effective_time_even_to_late_events() -> None:
    book = PriceBook([gpt("2.50", "10.00", "1.25", T0)], [Markup("0.2", T0)])  # type: ignore[arg-type]
    change_at = T0 + 10 * HOUR
    before = book.cost("gpt-4o", 1_000_000, 0, 0, change_at - 1)
    assert before == TokenCost(Decimal("2.50"), Decimal("0.2"), Decimal("3.00"))

    # The new price arrives mid-stream...
    book.add_price(gpt("2.00", "8.00", "1.00", change_at))
    assert book.cost("gpt-4o", 1_000_000, 0, 0, change_at).cost == Decimal("2.00")
    assert book.cost("gpt-4o", 1_000_000, 0, 0, change_at + HOUR).billed == Decimal("2.40")
    # ...and a late event stamped before the change still pays the old price.
    late = book.cost("gpt-4o", 1_000_000, 0, 0, change_at - 1)
    assert late == before
    assert book.price_at("gpt-4o", change_at - 1).input_per_million == Decimal("2.50")  # type: ignore[union-attr]


def test_markup_in_force_at_event_time() -> None:
    book = PriceBook([gpt("1", "1", "1", T0)])
    assert book.cost("gpt-4o", 1_000_000, 0, 0, T0).markup_rate == 0
    assert book.cost("gpt-4o", 1_000_000, 0, 0, T0).billed == Decimal(1)
    book.add_markup(Markup(Decimal("0.2"), T0 + HOUR))
    book.add_markup(Markup(Decimal("0.35"), T0 + 2 * HOUR))
    assert book.cost("gpt-4o", 1_000_000, 0, 0, T0 + HOUR - 1).billed == Decimal(1)
    assert book.cost("gpt-4o", 1_000_000, 0, 0, T0 + HOUR).billed == Decimal("1.2")
    assert book.cost("gpt-4o", 1_000_000, 0, 0, T0 + 5 * HOUR).billed == Decimal("1.35")


def test_cost_sums_input_output_and_cached_tokens() -> None:
    book = PriceBook([gpt("2.50", "10.00", "1.25", T0)], [Markup(Decimal("0.2"), T0)])
    cost = book.cost("gpt-4o", 1000, 500, 200, T0)
    # The 200 cached tokens are part of the 1000 input tokens (TokenEvent semantics):
    # 800 × 2.50 + 500 × 10.00 + 200 × 1.25 = 7250 per million tokens
    assert cost.cost == Decimal("0.00725")
    assert cost.billed == Decimal("0.0087")


@given(
    st.lists(
        st.tuples(st.integers(0, 1000), st.decimals(0, 100, places=4)),
        min_size=1,
        max_size=8,
        unique_by=lambda t: t[0],
    ),
    st.integers(-10, 1010),
)
def test_price_at_is_latest_effective_from_at_or_before(
    timeline: list[tuple[int, Decimal]], ts: int
) -> None:
    book = PriceBook()
    for offset, price in timeline:  # insertion order is arbitrary
        book.add_price(gpt(str(price), "0", "0", T0 + offset))
    in_force = [(o, p) for o, p in timeline if T0 + o <= T0 + ts]
    found = book.price_at("gpt-4o", T0 + ts)
    if not in_force:
        assert found is None
        with pytest.raises(UnknownModelError, match="no price in force"):
            book.cost("gpt-4o", 1, 1, 1, T0 + ts)
    else:
        assert found is not None
        assert found.input_per_million == max(in_force)[1]


prices = st.decimals(0, 1000, places=6)
tokens = st.integers(0, 10**9)


@given(prices, prices, prices, tokens, tokens, tokens, st.decimals(0, 5, places=4))
def test_cost_and_markup_math_is_exact(
    pin: Decimal,
    pout: Decimal,
    pcached: Decimal,
    tuncached: int,
    tout: int,
    tcached: int,
    rate: Decimal,
) -> None:
    book = PriceBook([gpt(str(pin), str(pout), str(pcached), T0)], [Markup(rate, T0)])
    # input_tokens counts the cached ones too.
    result = book.cost("gpt-4o", tuncached + tcached, tout, tcached, T0)
    # Rational arithmetic is the reference: no rounding anywhere.
    expected = (Fraction(tuncached) * Fraction(pin) + Fraction(tout) * Fraction(pout)) + Fraction(
        tcached
    ) * Fraction(pcached)
    expected /= 1_000_000
    assert Fraction(result.cost) == expected
    assert result.markup_rate == rate
    assert Fraction(result.billed) == expected * (1 + Fraction(rate))


def test_unknown_model_is_a_pricing_error_with_a_reason() -> None:
    book = PriceBook([gpt("1", "1", "1", T0 + HOUR)])
    with pytest.raises(UnknownModelError, match="'mystery' has no price in the price book"):
        book.cost("mystery", 1, 1, 1, T0)
    with pytest.raises(PricingError, match=r"first price is effective from 2026-01-01T01:00"):
        book.cost("gpt-4o", 1, 1, 1, T0)


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True, None])
def test_token_counts_must_be_non_negative_integers(bad: object) -> None:
    book = PriceBook([gpt("1", "1", "1", T0)])
    with pytest.raises(PricingError, match="output_tokens"):
        book.cost("gpt-4o", 1, bad, 0, T0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        {
            "model": "m",
            "input_per_million": "-1",
            "output_per_million": "1",
            "cached_input_per_million": "1",
            "effective_from": 0,
        },
        {
            "model": "m",
            "input_per_million": 1.5,
            "output_per_million": "1",
            "cached_input_per_million": "1",
            "effective_from": 0,
        },
        {
            "model": "m",
            "input_per_million": "1",
            "output_per_million": "1",
            "cached_input_per_million": "1",
            "effective_from": "2026-01-01",
        },
        {"model": "m", "input_per_million": "1", "effective_from": 0},
    ],
)
def test_bad_prices_are_refused(data: dict) -> None:
    with pytest.raises(PriceBookError):
        ModelPrice.from_dict(data)


def test_same_effective_from_replaces_so_replays_are_idempotent() -> None:
    book = PriceBook()
    book.add_price(gpt("1", "1", "1", T0))
    book.add_price(gpt("1", "1", "1", T0))
    book.add_price(gpt("3", "1", "1", T0))
    assert len(book.prices("gpt-4o")) == 1
    assert book.price_at("gpt-4o", T0).input_per_million == 3  # type: ignore[union-attr]
    book.add_markup(Markup(Decimal("0.1"), T0))
    book.add_markup(Markup(Decimal("0.2"), T0))
    assert book.markups() == [Markup(Decimal("0.2"), T0)]


def test_dict_round_trip() -> None:
    book = PriceBook(
        [
            gpt("2.50", "10.00", "1.25", T0),
            gpt("2.00", "8.00", "1.00", T0 + HOUR),
            ModelPrice("claude-sonnet", "anthropic", Decimal(3), Decimal(15), Decimal("0.3"), T0),
        ],
        [Markup(Decimal("0.2"), T0)],
    )
    again = PriceBook.from_dict(json.loads(json.dumps(book.to_dict())))
    assert again.to_dict() == book.to_dict()
    assert again.models() == ["claude-sonnet", "gpt-4o"]
    assert (
        ModelPrice.from_dict(
            {
                "model": "x",
                "input_per_million": "1",
                "output_per_million": "2",
                "cached_input_per_million": "0.5",
                "effective_from": "2026-01-01T00:00:00Z",
            }
        ).effective_from
        == T0
    )
