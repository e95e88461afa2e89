"""``usage_events`` and ``token_events``: every counted event once, the source of truth the
usage and token views aggregate at query time (DDL: 002_raw_events_and_catalog.sql). Their sort
key is the event's identity, so a re-insert after a crash collapses (ReplacingMergeTree).

Every counted event passes through here, so times are DateTime64(3)'s own ticks (epoch
milliseconds, the records' unit) rather than a datetime built per row and taken apart again
by the driver."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from meterline.metering.windows import to_epoch_ms
from meterline.processor.inputs import TokenRecord, UsageRecord
from sinks.tables import Table

USAGE_EVENTS = Table(
    "usage_events",
    ("customer_id", "event_id", "meter", "value", "timestamp", "dimensions", "ingested_at"),
)
TOKEN_EVENTS = Table(
    "token_events",
    (
        "customer_id",
        "event_id",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "timestamp",
        "dimensions",
        "ingested_at",
        "cache_write_tokens",
        "reasoning_tokens",
        "input_includes_cached",
    ),
)


def usage_rows(records: Iterable[UsageRecord], ingested: datetime) -> list[list[Any]]:
    ingested_ms = to_epoch_ms(ingested)
    return [
        [
            r["customer_id"],
            r["event_id"],
            r["meter"],
            r["value"],
            int(r["timestamp"]),
            r["dimensions"],
            ingested_ms,
        ]
        for r in records
    ]


def token_rows(records: Iterable[TokenRecord], ingested: datetime) -> list[list[Any]]:
    ingested_ms = to_epoch_ms(ingested)
    return [
        [
            r["customer_id"],
            r["event_id"],
            r["model"],
            r["provider"],
            r["input_tokens"],
            r["output_tokens"],
            r["cached_input_tokens"],
            int(r["timestamp"]),
            r["dimensions"],
            ingested_ms,
            r["cache_write_tokens"],
            r["reasoning_tokens"],
            # Every record reaches here in TokenEvent's current semantics (the codec adds
            # the cached tokens into input_tokens of records written under schema id 3);
            # rows stored before 010_token_types.sql read 0 (sinks/ddl/010).
            1,
        ]
        for r in records
    ]
