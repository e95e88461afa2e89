"""Plans and rate cards.

Credits are denominated in the plan's currency (one credit = one unit of money, as in Stripe's
billing credits), so a rate card price is at once a price and a number of credits, and a paid
top-up of 25.00 grants 25.00 credits.

Which credits may pay for what: a grant's scope is a set of names, each either a meter code or a
rate-card ``product`` (e.g. "images" covering several image meters); an empty scope covers all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, cast

from meterline.billing.money import ZERO, minor_units, to_decimal
from meterline.billing.pricing import PriceModel, model_from_dict, model_to_dict

Category = Literal["paid", "promotional"]
CATEGORIES: tuple[Category, ...] = ("paid", "promotional")


def check_category(raw: Any) -> Category:
    if raw not in CATEGORIES:
        raise ValueError(f"credit category must be paid or promotional, got {raw!r}")
    return cast(Category, raw)


@dataclass(frozen=True, slots=True)
class RecurringCredit:
    """Credits granted at the start of every period; they expire at that period's end."""

    amount: Decimal
    priority: int = 0
    scope: frozenset[str] = frozenset()
    category: Category = "promotional"

    def to_dict(self) -> dict[str, Any]:
        return {
            "amount": str(self.amount),
            "priority": self.priority,
            "scope": sorted(self.scope),
            "category": self.category,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecurringCredit:
        amount = to_decimal(data["amount"], "recurring credit amount")
        if amount <= 0:
            raise ValueError("recurring credit amount must be positive")
        return cls(
            amount,
            int(data.get("priority", 0)),
            frozenset(data.get("scope", ())),
            check_category(data.get("category", "promotional")),
        )


@dataclass(frozen=True, slots=True)
class RateCardEntry:
    """How one meter is priced. ``model`` None means the caller prices each event itself (LLM
    tokens through the price book) and passes the cost in; the entry still names the product so
    scoped credits can pay for it."""

    meter: str
    model: PriceModel | None
    product: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "model": None if self.model is None else model_to_dict(self.model),
            "product": self.product,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateCardEntry:
        model = data.get("model")
        return cls(
            data["meter"], None if model is None else model_from_dict(model), data.get("product")
        )


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: str
    currency: str
    fee: Decimal = ZERO
    recurring_credits: tuple[RecurringCredit, ...] = ()
    rate_card: Mapping[str, RateCardEntry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        minor_units(self.currency)  # unknown currencies fail here, at the catalog, not at close
        if self.fee < 0:
            raise ValueError("plan fee must not be negative")
        for meter, entry in self.rate_card.items():
            if meter != entry.meter:
                raise ValueError(f"rate card key {meter!r} names entry {entry.meter!r}")

    def entry(self, meter: str) -> RateCardEntry | None:
        return self.rate_card.get(meter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "currency": self.currency,
            "fee": str(self.fee),
            "recurring_credits": [c.to_dict() for c in self.recurring_credits],
            "rate_card": [self.rate_card[m].to_dict() for m in sorted(self.rate_card)],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        entries = [RateCardEntry.from_dict(e) for e in data.get("rate_card", ())]
        return cls(
            data["plan_id"],
            data["currency"],
            to_decimal(data.get("fee", 0), "plan fee"),
            tuple(RecurringCredit.from_dict(c) for c in data.get("recurring_credits", ())),
            {e.meter: e for e in entries},
        )
