"""Rows and reads shared by the ClickHouse sink tests: minute snapshots built field by field,
windows read back, the base table's row count."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from meterline.metering.meters import dims_key
from sinks.client import SharedClient
from sinks.query import query_rows
from sinks.tables.dead_letters import DLQ
from sinks.tables.usage_minute import USAGE_MINUTE

# The sink's own column list, less the meter's aggregation: these rows take its default.
MINUTE_COLUMNS = [c for c in USAGE_MINUTE.columns if c != "aggregation"]
DLQ_COLUMNS = list(DLQ.columns)
T0 = datetime(2024, 1, 31, 23, 58, tzinfo=UTC)


def minute(
    customer: str,
    start: datetime,
    value: str | Decimal,
    *,
    meter: str = "api_calls",
    events: int = 1,
    version: int = 1,
    part: str = "",
    dims: dict[str, str] | None = None,
) -> list[Any]:
    dims = dims if dims is not None else {"region": "eu"}
    return [customer, meter, dims_key(dims), dims, start, part, Decimal(value), events, version]


def windows(client: SharedClient, window: str, customer: str) -> dict[tuple, tuple]:
    """(meter, window_start, dims) -> (value, events) from the analysts' view."""
    _, rows = query_rows(
        client,
        "SELECT meter, window_start, dimensions, value, events FROM usage_windows_streamed"
        " WHERE window = {w:String} AND customer_id = {c:String}",
        {"w": window, "c": customer},
    )
    return {(m, ws, json.dumps(d, sort_keys=True)): (v, n) for m, ws, d, v, n in rows}


def base_rows(client: SharedClient, table: str = "usage_minute") -> int:
    """Physical rows, without FINAL: what dedup tokens (not merges) kept out."""
    return client.query(f"SELECT count() FROM {table}").result_rows[0][0]
