"""Delivery accounting per record, from librdkafka's delivery reports.

A record handed to ``produce`` is only queued; only its delivery report says the broker wrote
it. Every Kafka message is registered with the ids of the records it carries (one for a
single event, up to N for an envelope), and its report counts all of them at once: an
envelope is written or lost as a whole."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message

__all__ = ["DeliveryReport", "DeliveryTracker", "UndeliveredRecords"]

_SHOWN = 10  # ids named in an exception's message; all of them are on the exception


@dataclass(slots=True)
class DeliveryReport:
    """What the broker acknowledged of the records sent since the previous flush.

    Records are named by their id (a usage or token event's ``event_id``; for raw values the
    reference the caller gave). Resending an unacknowledged event is safe: the worker
    deduplicates by event id, so one that was in fact written is still counted once."""

    sent: int = 0  # records handed to the producer
    messages: int = 0  # Kafka messages they went in (fewer with envelopes)
    acknowledged: int = 0
    # (record id, librdkafka's error) for every record the broker refused or that timed out.
    failed: list[tuple[str, str]] = field(default_factory=list)
    # Records still queued or in flight when the flush timeout passed: not known to be
    # written. A report arriving later for them is not counted anywhere.
    unreported: list[str] = field(default_factory=list)

    @property
    def undelivered(self) -> int:
        return len(self.failed) + len(self.unreported)

    @property
    def undelivered_ids(self) -> list[str]:
        return [ref for ref, _ in self.failed] + self.unreported

    @property
    def ok(self) -> bool:
        return self.undelivered == 0 and self.acknowledged == self.sent

    def summary(self) -> str:
        return f"{self.acknowledged} of {self.sent} records acknowledged"


class UndeliveredRecords(Exception):
    """Some records were not acknowledged; ``event_ids`` names every one of them and
    ``report`` holds the whole account (``report.failed`` has librdkafka's error per id)."""

    def __init__(self, report: DeliveryReport) -> None:
        self.report = report
        self.event_ids = report.undelivered_ids
        shown = ", ".join(self.event_ids[:_SHOWN])
        more = f" and {len(self.event_ids) - _SHOWN} more" if len(self.event_ids) > _SHOWN else ""
        why = f"; first error: {report.failed[0][1]}" if report.failed else ""
        timed = f"; {len(report.unreported)} still unconfirmed at the flush timeout"
        super().__init__(
            f"{report.undelivered} of {report.sent} records were NOT acknowledged by the broker "
            f"({shown}{more}){why}{timed if report.unreported else ''}"
        )


class DeliveryTracker:
    """Registers messages and counts their delivery reports into the current report.

    Not thread-safe, like the producer calls it wraps: callbacks run inside ``poll``/``flush``
    on the caller's thread."""

    def __init__(self) -> None:
        self.report = DeliveryReport()
        # message number -> ids of its records; removed when the message's report arrives.
        self._pending: dict[int, Sequence[str]] = {}
        self._next = 0

    @property
    def in_flight(self) -> int:
        return sum(len(ids) for ids in self._pending.values())

    def register(self, ids: Sequence[str]) -> Callable[[KafkaError | None, Message], None]:
        """The ``on_delivery`` callback for one message carrying ``ids``."""
        number = self._next
        self._next += 1
        self._pending[number] = ids
        self.report.sent += len(ids)
        self.report.messages += 1
        report = self.report
        pending = self._pending

        def done(err: KafkaError | None, _msg: Message) -> None:
            carried = pending.pop(number, None)
            if carried is None:
                return  # given up on at an earlier flush timeout
            if err is None:
                report.acknowledged += len(carried)
            else:
                text = err.str()
                report.failed.extend((ref, text) for ref in carried)

        return done

    def close_window(self) -> DeliveryReport:
        """Ends the current report: records without a delivery report yet become
        ``unreported`` (and their late reports are ignored); a fresh report starts."""
        report = self.report
        for ids in self._pending.values():
            report.unreported.extend(ids)
        # Message numbers are never reused, so a late report finds nothing and is ignored.
        self._pending.clear()
        self.report = DeliveryReport()
        return report
