"""``dlq``: every rejected record with its reason and coordinates (DDL: 001_initial.sql). The
raw key and payload are kept as the bytes they came in: a String column holds any bytes."""

from __future__ import annotations

from typing import Any

from sinks.tables import Table, utc

DLQ = Table("dlq", ("topic", "partition", "offset", "reason", "at", "key", "payload"))


def dead_letter_row(record: dict[str, Any]) -> list[Any]:
    """A decoded ``meterline.DeadLetter`` record as a row."""
    return [
        record["topic"],
        record["partition"],
        record["offset"],
        record["reason"],
        utc(record["at"]),
        record.get("key") or b"",
        record["payload"],
    ]
