"""``usage_minute`` (shown as ``usage_windows_streamed``): snapshots of the streamed one-minute
windows, a ReplacingMergeTree whose version is the customer state's version, so the newest
snapshot of a window wins and a replay rewrites identical rows (DDL: 001_initial.sql)."""

from __future__ import annotations

from typing import Any

from meterline.metering.usage_state import WindowSnapshot
from sinks.tables import Table, utc

USAGE_MINUTE = Table(
    "usage_minute",
    (
        "customer_id",
        "meter",
        "dims_key",
        "dimensions",
        "window_start",
        "part",
        "value",
        "events",
        "version",
        "aggregation",
    ),
)


def snapshot_row(s: WindowSnapshot) -> list[Any]:
    return [
        s.customer_id,
        s.meter,
        s.dims_key,
        s.dimensions,
        utc(s.window_start),
        s.part,
        s.agg.result(s.aggregation),
        s.agg.count,
        s.version,
        str(s.aggregation),
    ]
