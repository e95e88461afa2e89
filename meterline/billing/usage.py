"""One meter's usage in the open billing period, as the account rates it event by event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from meterline.billing.money import ZERO, to_decimal


@dataclass(slots=True)
class MeterPeriod:
    quantity: Decimal = ZERO
    amount: Decimal = ZERO  # exact rated cost: the sum of the events' marginal costs
    credits: Decimal = ZERO  # credits net of rebates that paid for it
    # Credits per grant, so a volume-tier rebate can go back to the grants that paid.
    by_grant: dict[str, Decimal] = field(default_factory=dict)

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantity": str(self.quantity),
            "amount": str(self.amount),
            "credits": str(self.credits),
            "by_grant": {k: str(v) for k, v in self.by_grant.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeterPeriod:
        return cls(
            to_decimal(data["quantity"]),
            to_decimal(data["amount"]),
            to_decimal(data["credits"]),
            {k: to_decimal(v) for k, v in data.get("by_grant", {}).items()},
        )
