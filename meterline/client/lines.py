"""JSON lines → the producer client (what ``meterline produce`` reads)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import Decimal

from meterline.client.producer import MeterlineProducer
from streams import topics

__all__ = ["BadLine", "produce_lines"]

KIND_OF_TOPIC = {topics.USAGE: "usage", topics.TOKENS: "tokens"}
_PROGRESS_EVERY = 2000  # lines between progress callbacks


class BadLine(ValueError):
    """A line that is not a valid record; the lines before it were queued."""

    def __init__(self, number: int, why: str) -> None:
        self.number = number
        super().__init__(f"line {number}: {why}")


def produce_lines(
    client: MeterlineProducer,
    topic: str,
    lines: Iterable[bytes],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Queues every JSON line of ``lines`` (bytes, so that progress counts a file's bytes) on
    ``topic`` and returns how many records it queued (the caller flushes and reads the
    delivery report). Usage and token events are
    validated and encoded by the client (envelopes when it batches); other topics get the
    line as it is, keyed by its customer_id, named ``line N`` in the report.

    ``progress(bytes read, records queued)`` is called every few thousand lines.
    Raises ``BadLine`` at the first bad line, having sent nothing of it."""
    kind = KIND_OF_TOPIC.get(topic)
    queued = 0
    read = 0
    for number, line in enumerate(lines, start=1):
        read += len(line)
        text = line.strip()
        if not text:
            continue
        try:
            record = json.loads(text, parse_float=Decimal)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise BadLine(number, f"not JSON: {exc}") from None
        if kind is not None:
            if not isinstance(record, dict):
                raise BadLine(number, "expected one event object per line")
            try:
                client.send_record(kind, record)
            except ValueError as exc:
                raise BadLine(number, str(exc)) from None
        else:
            key = record.get("customer_id") if isinstance(record, dict) else None
            name = key if isinstance(key, str) else None
            client.send_value(topic, name, text, f"line {number}")
        queued += 1
        if progress is not None and number % _PROGRESS_EVERY == 0:
            progress(read, queued)
            client.poll(0)
    if progress is not None:
        progress(read, queued)
    return queued
