"""One meter's usage in the open billing period, as the account rates it event by event.

Additive meters (sum, count) add each event's quantity. The others (unique_count, latest, min,
max) have no per-event quantity: the period's quantity is the meter's aggregate over the
period, kept per group-by group (``groups``) exactly as metering computes it, and each event is
charged what it changes the period's price by. The period quantity of such a meter combines its
groups the way an invoice line needs one number: distinct values and latest readings of
separate groups add up (each group is its own seats or its own storage), min and max are taken
over the groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from meterline.billing.money import ZERO, to_decimal
from meterline.metering.aggregation import Aggregation, WindowAgg

ADDITIVE: frozenset[Aggregation] = frozenset({Aggregation.SUM, Aggregation.COUNT})


@dataclass(frozen=True, slots=True)
class Reading:
    """One event of a non-additive meter, as the period aggregate takes it."""

    aggregation: Aggregation
    group: str  # canonical dims key of the meter's group-by dimensions
    value: Decimal
    timestamp: int
    unique_value: str | None = None


def combine(aggregation: Aggregation, groups: Mapping[str, WindowAgg]) -> Decimal:
    results = [g.result(aggregation) for g in groups.values() if g.count]
    if not results:
        return ZERO
    if aggregation is Aggregation.MIN:
        return min(results)
    if aggregation is Aggregation.MAX:
        return max(results)
    total = ZERO
    for r in results:
        total += r
    return total


@dataclass(slots=True)
class MeterPeriod:
    quantity: Decimal = ZERO
    amount: Decimal = ZERO  # exact rated cost: the sum of the events' marginal costs
    credits: Decimal = ZERO  # credits net of rebates that paid for it
    # Credits per grant, so a volume-tier rebate can go back to the grants that paid.
    by_grant: dict[str, Decimal] = field(default_factory=dict)
    # Non-additive meters only: the period aggregate per group-by group.
    groups: dict[str, WindowAgg] = field(default_factory=dict)

    @property
    def overage(self) -> Decimal:
        return self.amount - self.credits

    def paid(self, grant_id: str, amount: Decimal) -> None:
        self.credits += amount
        left = self.by_grant.get(grant_id, ZERO) + amount
        if left:
            self.by_grant[grant_id] = left
        else:
            self.by_grant.pop(grant_id, None)

    def quantity_with(self, event_id: str, reading: Reading) -> Decimal:
        """The period quantity ``reading`` would make, without taking it in (pricing the
        change may still fail, and then nothing may have moved)."""
        agg = self.groups.get(reading.group)
        if agg is not None and agg.uniques is not None:
            # unique_count groups add up, and copying a distinct set per event would cost
            # O(period's distinct values): a new value adds one, a known one nothing.
            return self.quantity + (0 if reading.unique_value in agg.uniques else 1)
        trial = WindowAgg.empty(reading.aggregation is Aggregation.UNIQUE_COUNT)
        if agg is not None:
            trial = agg.copy()
        trial.add(reading.value, reading.timestamp, event_id, reading.unique_value)
        return combine(reading.aggregation, {**self.groups, reading.group: trial})

    def take(self, event_id: str, reading: Reading) -> None:
        agg = self.groups.get(reading.group)
        if agg is None:
            agg = WindowAgg.empty(reading.aggregation is Aggregation.UNIQUE_COUNT)
            self.groups[reading.group] = agg
        agg.add(reading.value, reading.timestamp, event_id, reading.unique_value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "quantity": str(self.quantity),
            "amount": str(self.amount),
            "credits": str(self.credits),
            "by_grant": {k: str(v) for k, v in self.by_grant.items()},
        }
        if self.groups:
            out["groups"] = {k: g.to_dict() for k, g in sorted(self.groups.items())}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeterPeriod:
        return cls(
            to_decimal(data["quantity"]),
            to_decimal(data["amount"]),
            to_decimal(data["credits"]),
            {k: to_decimal(v) for k, v in data.get("by_grant", {}).items()},
            {k: WindowAgg.from_dict(g) for k, g in data.get("groups", {}).items()},
        )
