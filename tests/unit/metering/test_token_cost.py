"""Token cost per token type (TokenEvent semantics): input_tokens counts ALL input, cached and
cache-written tokens are parts of it, reasoning is part of output.

The acceptance cases of issue 10 are computed by hand from the providers' published prices
(OpenAI GPT-4o: $2.50 input, $1.25 cached input, $10.00 output per million tokens; Anthropic
Claude Sonnet: $3.00 input, $3.75 5-minute cache write, $0.30 cache read, $15.00 output) and
the catalog's markup of 20 %, and checked to the last digit with exact Decimals."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH, load_catalog
from meterline.metering.pricebook import Markup, ModelPrice, PriceBook, PricingError

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CATALOG = load_catalog(DEFAULT_CATALOG_PATH).price_book()


def test_cached_openai_request_costs_the_hand_computation() -> None:
    # An OpenAI Chat Completions usage block, as TokenEvent carries it:
    # "prompt_tokens": 2006, "completion_tokens": 300,
    # "prompt_tokens_details": {"cached_tokens": 1920},
    # "completion_tokens_details": {"reasoning_tokens": 0}
    cost = CATALOG.cost("gpt-4o", 2006, 300, 1920, T0)
    # (2006 - 1920) × 2.50 = 215; 1920 × 1.25 = 2400; 300 × 10.00 = 3000 → 5615 per million
    assert cost.cost == Decimal("0.005615")
    assert cost.markup_rate == Decimal("0.2")
    # 0.005615 × 1.2
    assert cost.billed == Decimal("0.006738")
    assert str(cost.billed.normalize()) == "0.006738"


def test_anthropic_request_with_cache_writes_costs_the_hand_computation() -> None:
    # An Anthropic Messages usage block: "input_tokens": 50, "cache_creation_input_tokens":
    # 2048, "cache_read_input_tokens": 1800, "output_tokens": 512. Anthropic's input_tokens
    # excludes the cache parts; TokenEvent's includes them: 50 + 2048 + 1800 = 3898.
    cost = CATALOG.cost("claude-sonnet", 3898, 512, 1800, T0, cache_write_tokens=2048)
    # 50 × 3.00 = 150; 1800 × 0.30 = 540; 2048 × 3.75 = 7680; 512 × 15.00 = 7680 → 16050
    assert cost.cost == Decimal("0.01605")
    # 0.01605 × 1.2
    assert cost.billed == Decimal("0.01926")


def test_the_same_requests_cost_what_genai_prices_computes() -> None:
    # genai-prices' Usage has the semantics TokenEvent adopted: an independent reference.
    from genai_prices import Usage, calc_price

    openai = calc_price(
        Usage(input_tokens=2006, cache_read_tokens=1920, output_tokens=300),
        "gpt-4o",
        provider_id="openai",
    )
    assert openai.total_price == CATALOG.cost("gpt-4o", 2006, 300, 1920, T0).cost
    anthropic = calc_price(
        Usage(
            input_tokens=3898, cache_write_tokens=2048, cache_read_tokens=1800, output_tokens=512
        ),
        "claude-sonnet-4-0",
        provider_id="anthropic",
    )
    expected = CATALOG.cost("claude-sonnet", 3898, 512, 1800, T0, cache_write_tokens=2048)
    assert anthropic.total_price == expected.cost


def test_cache_write_price_defaults_to_the_input_price() -> None:
    price = ModelPrice("m", "p", Decimal("2"), Decimal("8"), Decimal("0.5"), T0)
    assert price.cache_write_per_million is None
    assert price.cache_write_price == Decimal("2")
    book = PriceBook([price])
    # 100 input of which 40 written to cache: all 100 at the input price.
    assert book.cost("m", 100, 0, 0, T0, cache_write_tokens=40).cost == Decimal("0.0002")
    assert ModelPrice.from_dict(price.to_dict()) == price


def test_reasoning_tokens_are_output_and_need_no_price() -> None:
    # A reasoning model's 1000 output tokens of which 700 reasoning cost 1000 × output price:
    # the cost has no reasoning argument at all.
    assert CATALOG.cost("gpt-4o", 0, 1000, 0, T0).cost == Decimal("0.01")


@pytest.mark.parametrize(("cached", "written"), [(101, 0), (0, 101), (60, 41)])
def test_parts_larger_than_input_are_refused(cached: int, written: int) -> None:
    with pytest.raises(PricingError, match=r"exceed input_tokens \(100\)"):
        CATALOG.cost("claude-sonnet", 100, 0, cached, T0, cache_write_tokens=written)


prices = st.decimals(0, 1000, places=6)
counts = st.integers(0, 10**9)


@given(prices, prices, prices, prices, counts, counts, counts, counts, st.decimals(0, 5, places=4))
def test_cost_per_token_type_is_exact(
    pin: Decimal,
    pout: Decimal,
    pcached: Decimal,
    pwrite: Decimal,
    uncached: int,
    cached: int,
    written: int,
    out: int,
    rate: Decimal,
) -> None:
    book = PriceBook([ModelPrice("m", "p", pin, pout, pcached, T0, pwrite)], [Markup(rate, T0)])
    result = book.cost(
        "m", uncached + cached + written, out, cached, T0, cache_write_tokens=written
    )
    expected = (
        Fraction(uncached) * Fraction(pin)
        + Fraction(cached) * Fraction(pcached)
        + Fraction(written) * Fraction(pwrite)
        + Fraction(out) * Fraction(pout)
    ) / 1_000_000
    assert Fraction(result.cost) == expected
    assert Fraction(result.billed) == expected * (1 + Fraction(rate))
