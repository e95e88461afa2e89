"""Tier math against a naive unit-by-unit reference, and marginal costs against totals."""

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.billing.pricing import (
    Graduated,
    Package,
    PerUnit,
    PriceModel,
    Tier,
    Volume,
    marginal_cost,
    model_from_dict,
    model_to_dict,
    price,
)

D = Decimal
money = st.decimals(min_value=0, max_value=50, places=4)


@st.composite
def tiers(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(1, 60), max_size=4)))
    uppers: list[int | None] = [*bounds, None]
    return tuple(Tier(None if u is None else D(u), draw(money), draw(money)) for u in uppers)


models: st.SearchStrategy[PriceModel] = st.one_of(
    st.builds(PerUnit, money),
    st.builds(Graduated, tiers()),
    st.builds(Volume, tiers()),
    st.builds(Package, st.integers(1, 20).map(D), money),
)


def _tier_of(ts: tuple[Tier, ...], unit: int) -> int:
    return next(i for i, t in enumerate(ts) if t.up_to is None or unit <= t.up_to)


def naive_price(model: PriceModel, quantity: int) -> Decimal:
    """The reference: walk the units one by one."""
    total = D(0)
    if isinstance(model, PerUnit):
        for _ in range(quantity):
            total += model.unit_price
    elif isinstance(model, Graduated):
        entered: set[int] = set()
        for unit in range(1, quantity + 1):
            i = _tier_of(model.tiers, unit)
            if i not in entered:
                entered.add(i)
                total += model.tiers[i].flat_fee
            total += model.tiers[i].unit_price
    elif isinstance(model, Volume):
        if quantity:
            tier = model.tiers[_tier_of(model.tiers, quantity)]
            for _ in range(quantity):
                total += tier.unit_price
            total += tier.flat_fee
    else:
        for unit in range(1, quantity + 1):
            if (unit - 1) % int(model.package_size) == 0:
                total += model.package_price
    return total


@given(models, st.integers(0, 150))
def test_price_matches_unit_by_unit_reference(model: PriceModel, quantity: int) -> None:
    assert price(model, D(quantity)) == naive_price(model, quantity)


@given(models, st.lists(st.decimals(min_value=0, max_value=40, places=3), max_size=12))
def test_marginal_costs_sum_to_the_total(model: PriceModel, parts: list[Decimal]) -> None:
    used, total = D(0), D(0)
    for part in parts:
        cost = marginal_cost(model, used, part)
        if not isinstance(model, Volume):
            assert cost >= 0
        total += cost
        used += part
    assert total == price(model, used)


@given(models)
def test_model_dict_round_trip(model: PriceModel) -> None:
    assert model_from_dict(model_to_dict(model)) == model


def test_examples() -> None:
    grad = Graduated((Tier(D(10), D("0.10"), D(1)), Tier(None, D("0.05"))))
    assert price(grad, D(0)) == 0  # no tier entered, no flat fee
    assert price(grad, D(4)) == D("1.40")
    assert price(grad, D(12)) == D("2.10")
    assert price(grad, D("10.5")) == D("2.025")  # fractional units straddle the bound
    vol = Volume((Tier(D(100), D("0.05")), Tier(None, D("0.01"), D(2))))
    assert price(vol, D(100)) == D("5.00")
    assert price(vol, D(101)) == D("3.01")
    # Crossing into the cheaper tier lowers the period total: a negative marginal cost.
    assert marginal_cost(vol, D(100), D(1)) == D("-1.99")
    pkg = Package(D(1000), D("2.00"))
    assert price(pkg, D(1500)) == D("4.00")
    assert marginal_cost(pkg, D(1500), D(700)) == D("2.00")
    assert price(PerUnit(D("0.000002")), D(1234567)) == D("2.469134")


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Graduated(()),
        lambda: Graduated((Tier(D(5), D(1)),)),  # last tier bounded
        lambda: Volume((Tier(D(5), D(1)), Tier(D(5), D(1)), Tier(None, D(1)))),
        lambda: Package(D(0), D(1)),
        lambda: PerUnit(D(-1)),
    ],
)
def test_invalid_models(bad: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        bad()


def test_negative_quantities_are_refused() -> None:
    with pytest.raises(ValueError):
        price(PerUnit(D(1)), D(-1))
    with pytest.raises(ValueError):
        marginal_cost(PerUnit(D(1)), D(1), D(-1))
