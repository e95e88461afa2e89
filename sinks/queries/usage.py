"""``GET /usage/{customer}``: one customer's usage windows in a time zone."""

from __future__ import annotations

from dataclasses import dataclass

from sinks.queries.common import ALL_TIME, SqlQuery, TimeRange, Where

__all__ = ["USAGE_COLUMNS", "DimensionFilter", "UsageQuery", "usage_sql"]

# Spelled out because an empty result from chDB carries no column names, and a client should
# see the same shape with or without rows. The first seven are the pre-existing /usage shape.
USAGE_COLUMNS = (
    "customer_id",
    "meter",
    "dimensions",
    "window",
    "window_start",
    "value",
    "events",
    "aggregation",
)


@dataclass(frozen=True)
class DimensionFilter:
    """Rows whose dimension ``key`` holds one of ``values``."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class UsageQuery:
    customer: str
    window: str = "hour"
    tz: str = "UTC"
    time: TimeRange = ALL_TIME
    limit: int = 10_000
    meters: tuple[str, ...] = ()  # any of them; empty: every meter
    dimensions: tuple[DimensionFilter, ...] = ()  # all of them


def usage_sql(q: UsageQuery) -> SqlQuery:
    """One row per (meter, dimension set, window) whose window starts in [from, to), at most
    ``limit + 1`` of them: one row more than asked tells the caller that the answer was cut.

    Dimension filters match the dimensions usage_windows reports, i.e. the meter's group-by
    keys: a key the meter does not group by is not in the row and matches only ''."""
    where = Where()
    where.add("customer_id = {customer:String}", customer=q.customer)
    where.add("window = {window:String}", window=q.window)
    where.time_range("window_start", q.time)
    if q.meters:
        where.add("has({meters:Array(String)}, meter)", meters=list(q.meters))
    for i, dim in enumerate(q.dimensions):
        where.add(
            f"has({{dv{i}:Array(String)}}, dimensions[{{dk{i}:String}}])",
            **{f"dk{i}": dim.key, f"dv{i}": list(dim.values)},
        )
    sql = f"""
SELECT {", ".join(USAGE_COLUMNS)}
FROM usage_windows_tz(tz = {{tz:String}})
WHERE {where.sql()}
ORDER BY meter, toString(dimensions), window_start
LIMIT {{limit:UInt32}}
"""
    return SqlQuery(sql, {**where.params, "tz": q.tz, "limit": q.limit + 1})
