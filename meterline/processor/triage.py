"""Before any customer's state is touched: which decoded records are accepted, which go to
their customer's home partition, and which are rejected with a reason.

A record is judged where it first arrives, so a bad record is dead-lettered with the
coordinates the producer wrote it at, not those of a forwarded copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meterline.metering.pricebook import PriceBook
from meterline.metering.windows import EventTimeLimits
from meterline.processor.inputs import (
    BillingInput,
    Forward,
    InputKind,
    InputRecord,
    Origin,
    Reject,
)


@dataclass(frozen=True, slots=True)
class Gate:
    limits: EventTimeLimits
    prices: PriceBook
    # The customer's home partition (murmur2, as Java clients compute it): a port, so the
    # domain does not import a Kafka client for one hash function.
    home: Callable[[str], int]

    def check(self, kind: InputKind, record: dict[str, Any], now_ms: int) -> str | None:
        if not kind.is_event:
            return None
        reason = self.limits.check(record["timestamp"], now_ms)
        # Billing an unpriced model at zero would be silent revenue loss.
        if (
            reason is None
            and kind is InputKind.TOKENS
            and self.prices.price_at(record["model"], record["timestamp"]) is None
        ):
            reason = f"model {record['model']!r} has no price in force at that time"
        return reason


@dataclass(slots=True)
class Triage:
    """A batch sorted out: per customer, in input order."""

    by_customer: dict[str, list[InputRecord]] = field(default_factory=dict)
    forwards: list[Forward] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    events_in: int = 0

    def add_message(
        self,
        gate: Gate,
        kind: InputKind,
        origin: Origin,
        records: Sequence[Any],
        bad: Sequence[tuple[int, str]],
        now_ms: int,
        *,
        rehomed: bool,
    ) -> None:
        """One Kafka message's decoded content. ``records`` are event dicts, or one
        ``BillingInput``; ``bad`` are (index, reason) of events the decoder refused. Every
        problem of one message goes into one dead letter, so an envelope keeps its good
        events and the DLQ has one row per bad message."""
        problems = [f"event #{index}: {reason}" for index, reason in bad]
        self.events_in += len(records) + len(bad)
        for i, record in enumerate(records):
            if isinstance(record, BillingInput):
                customer = record.customer_id
            else:
                reason = gate.check(kind, record, now_ms)
                if reason is not None:
                    problems.append(f"event {record['event_id']!r}: {reason}")
                    continue
                customer = record["customer_id"]
            home = gate.home(customer)
            if home != origin.partition and not rehomed:
                event = None if isinstance(record, BillingInput) else record
                self.forwards.append(Forward(kind, customer, home, event, origin))
                continue
            self.by_customer.setdefault(customer, []).append(InputRecord(kind, origin, i, record))
        if problems:
            self.rejects.append(Reject(origin, "; ".join(problems)))

    def reject(self, origin: Origin, reason: str) -> None:
        self.rejects.append(Reject(origin, reason))
