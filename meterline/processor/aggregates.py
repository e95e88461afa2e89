"""Records of ``meterline.aggregates``: a closed one-minute window is revision 0; each late
event past grace is a correction with its own id and a higher revision, to merge by the
meter's aggregation (add for sum and count, min/max for those, newest timestamp wins for
latest). Ids are deterministic, so a re-publication after a crash repeats the same fact."""

from __future__ import annotations

import json
from typing import Any

from meterline.metering.aggregation import Aggregation
from meterline.metering.usage_state import UsageState


def aggregate_records(
    state: UsageState, closed: list[tuple[tuple[str, str, int], Any]]
) -> list[dict[str, Any]]:
    out = []
    for (meter, dims, start), agg in closed:
        aggregation = state.aggregations.get(meter, Aggregation.SUM)
        out.append(_aggregate(state.customer_id, meter, dims, start, "", aggregation, agg, 0))
    for c in state.corrections:
        out.append(
            _aggregate(
                state.customer_id,
                c.meter,
                c.dims_key,
                c.window_start,
                f"late:{c.event_id}",
                c.aggregation,
                c.agg,
                c.revision,
            )
        )
    return out


def _aggregate(
    customer: str,
    meter: str,
    dims: str,
    start: int,
    part: str,
    aggregation: Any,
    agg: Any,
    revision: int,
) -> dict[str, Any]:
    return {
        "id": f"{customer}|{meter}|{dims}|{start}|{part}",
        "kind": "correction" if part else "window",
        "customer_id": customer,
        "meter": meter,
        "dimensions": json.loads(dims),
        "window": "minute",
        "window_start": start,
        "window_end": start + 60_000,
        "aggregation": str(aggregation),
        "value": str(agg.result(aggregation)),
        "events": agg.count,
        "revision": revision,
    }
