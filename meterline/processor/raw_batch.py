"""The raw events one step counted for one customer, kept durable (in the changelog, beside
the dedup chunk of the same step) until they are stored in ClickHouse.

Storing them there on the batch's critical path cost more than all the processing (a chDB
insert of a thousand rows costs ~18 µs a row, ten thousand ~6 µs), so the checkpoint makes
them durable on Kafka with the batch and inserts everything pending once per publish."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from meterline.processor.inputs import TokenRecord, UsageRecord


@dataclass(slots=True)
class RawBatch:
    usage: list[UsageRecord] = field(default_factory=list)
    tokens: list[TokenRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.usage or self.tokens)

    def to_dict(self) -> dict[str, Any]:
        # Decimal as text: exact, and what Decimal() reads back unchanged.
        return {
            "u": [{**r, "value": str(r["value"])} for r in self.usage],
            "t": list(self.tokens),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RawBatch:
        usage: list[UsageRecord] = [{**r, "value": Decimal(r["value"])} for r in data["u"]]
        return cls(usage, list(data["t"]))
