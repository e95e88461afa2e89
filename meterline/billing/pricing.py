"""Rate-card price models: what a quantity used in one billing period costs.

Conventions shared by every model:

* A quantity of zero costs nothing (no tier is entered, so no flat fee is due).
* Tier bounds ``up_to`` are inclusive cumulative quantities (Stripe's convention); the last tier
  has ``up_to=None`` (unbounded). Quantities may be fractional: a graduated tier covers the
  half-open interval (previous bound, up_to].
* ``marginal_cost(model, before, added) = price(before + added) - price(before)`` for every
  model. Summing the marginal costs of a period's events therefore gives exactly the period's
  price, whatever the event sizes. For per-unit, graduated and package pricing it is never
  negative. For volume pricing it can be negative: crossing into a cheaper tier re-prices every
  unit already used, so the event that crosses it lowers the period's total. The account turns a
  negative marginal cost into a rebate (see ``account.py``) instead of ignoring it, so the credits
  burned over a period always equal what the period's usage costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from meterline.billing.money import ZERO, exact, opt_decimal, opt_str, to_decimal


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO

    def to_dict(self) -> dict[str, Any]:
        return {
            "up_to": opt_str(self.up_to),
            "unit_price": str(self.unit_price),
            "flat_fee": str(self.flat_fee),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tier:
        return cls(
            opt_decimal(data.get("up_to"), "up_to"),
            to_decimal(data["unit_price"], "unit_price"),
            to_decimal(data.get("flat_fee", 0), "flat_fee"),
        )


def _check_tiers(tiers: tuple[Tier, ...]) -> None:
    if not tiers:
        raise ValueError("a tiered price needs at least one tier")
    if tiers[-1].up_to is not None:
        raise ValueError("the last tier must be unbounded (up_to=None)")
    previous = ZERO
    for tier in tiers[:-1]:
        if tier.up_to is None or tier.up_to <= previous:
            raise ValueError("tier bounds must be positive and strictly increasing")
        previous = tier.up_to
    for tier in tiers:
        if tier.unit_price < 0 or tier.flat_fee < 0:
            raise ValueError("tier prices must not be negative")


@dataclass(frozen=True, slots=True)
class PerUnit:
    unit_price: Decimal

    def __post_init__(self) -> None:
        if self.unit_price < 0:
            raise ValueError("unit price must not be negative")


@dataclass(frozen=True, slots=True)
class Graduated:
    """Each tier's units at that tier's price, plus the flat fee of every tier entered."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        _check_tiers(self.tiers)


@dataclass(frozen=True, slots=True)
class Volume:
    """The whole quantity at the price of the tier the total lands in, plus its flat fee."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        _check_tiers(self.tiers)


@dataclass(frozen=True, slots=True)
class Package:
    """ceil(quantity / package_size) packages at package_price each."""

    package_size: Decimal
    package_price: Decimal

    def __post_init__(self) -> None:
        if self.package_size <= 0 or self.package_price < 0:
            raise ValueError("package size must be positive and its price not negative")


PriceModel = PerUnit | Graduated | Volume | Package


@exact
def price(model: PriceModel, quantity: Decimal) -> Decimal:
    """Exact cost of ``quantity`` used in one period."""
    if quantity < 0:
        raise ValueError("quantity must not be negative")
    if quantity == 0:
        return ZERO
    match model:
        case PerUnit(unit_price=p):
            return quantity * p
        case Graduated(tiers=tiers):
            total, lower = ZERO, ZERO
            for tier in tiers:
                if quantity <= lower:
                    break
                upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
                total += (upper - lower) * tier.unit_price + tier.flat_fee
                if tier.up_to is None:
                    break
                lower = tier.up_to
            return total
        case Volume(tiers=tiers):
            tier = next(t for t in tiers if t.up_to is None or quantity <= t.up_to)
            return quantity * tier.unit_price + tier.flat_fee
        case Package(package_size=size, package_price=p):
            # Integer division and remainder are exact; a true division could round.
            whole, rest = divmod(quantity, size)
            return (whole + (1 if rest else 0)) * p
    raise TypeError(f"unknown price model {model!r}")


@exact
def marginal_cost(model: PriceModel, before_qty: Decimal, added_qty: Decimal) -> Decimal:
    """Cost of ``added_qty`` given ``before_qty`` already used this period (may be negative for
    volume pricing; see the module doc)."""
    if added_qty < 0:
        raise ValueError("added quantity must not be negative")
    return price(model, before_qty + added_qty) - price(model, before_qty)


def display_unit_price(model: PriceModel) -> Decimal | None:
    """The model's own unit price when it has a single one (per-unit); None otherwise, and the
    invoice shows amount / quantity instead."""
    return model.unit_price if isinstance(model, PerUnit) else None


def model_to_dict(model: PriceModel) -> dict[str, Any]:
    match model:
        case PerUnit(unit_price=p):
            return {"type": "per_unit", "unit_price": str(p)}
        case Graduated(tiers=tiers):
            return {"type": "graduated", "tiers": [t.to_dict() for t in tiers]}
        case Volume(tiers=tiers):
            return {"type": "volume", "tiers": [t.to_dict() for t in tiers]}
        case Package(package_size=size, package_price=p):
            return {"type": "package", "package_size": str(size), "package_price": str(p)}
    raise TypeError(f"unknown price model {model!r}")


def model_from_dict(data: Mapping[str, Any]) -> PriceModel:
    kind = data.get("type")
    if kind == "per_unit":
        return PerUnit(to_decimal(data["unit_price"], "unit_price"))
    if kind in ("graduated", "volume"):
        tiers = tuple(Tier.from_dict(t) for t in data["tiers"])
        return Graduated(tiers) if kind == "graduated" else Volume(tiers)
    if kind == "package":
        return Package(
            to_decimal(data["package_size"], "package_size"),
            to_decimal(data["package_price"], "package_price"),
        )
    raise ValueError(f"unknown price model type {kind!r}")
