"""sinks.queries.usage: the /usage SQL, table-driven."""

from __future__ import annotations

import pytest

from sinks.queries import USAGE_COLUMNS, DimensionFilter, TimeRange, UsageQuery, usage_sql
from tests.unit.sinks.sqlcheck import HOSTILE, Case, check_bound, check_case

BASE = {"customer": "acme", "window": "hour", "tz": "UTC", "limit": 10_001}

CASES = [
    Case(
        "defaults: customer and window only",
        UsageQuery("acme"),
        contains=(
            "FROM usage_windows_tz(tz = {tz:String})",
            "WHERE customer_id = {customer:String} AND window = {window:String}\n",
            "ORDER BY meter, toString(dimensions), window_start",
            "LIMIT {limit:UInt32}",
            "SELECT " + ", ".join(USAGE_COLUMNS),
        ),
        excludes=("window_start >=", "window_start <", "has("),
        params=BASE,
    ),
    Case(
        "limit fetches one row more",
        UsageQuery("acme", limit=5),
        params={**BASE, "limit": 6},
    ),
    Case(
        "window and zone are bound",
        UsageQuery("acme", window="day", tz="Europe/Berlin"),
        params={**BASE, "window": "day", "tz": "Europe/Berlin"},
    ),
    Case(
        "from only",
        UsageQuery("acme", time=TimeRange(start_ms=1_000)),
        contains=("window_start >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')",),
        excludes=("window_start <",),
        params={**BASE, "start": 1_000},
    ),
    Case(
        "half-open range",
        UsageQuery("acme", time=TimeRange(1_000, 2_000)),
        contains=(
            "window_start >= fromUnixTimestamp64Milli({start:Int64}, 'UTC') AND "
            "window_start < fromUnixTimestamp64Milli({end:Int64}, 'UTC')",
        ),
        params={**BASE, "start": 1_000, "end": 2_000},
    ),
    Case(
        "meters are alternatives",
        UsageQuery("acme", meters=("api_calls", "images")),
        contains=("has({meters:Array(String)}, meter)",),
        params={**BASE, "meters": ["api_calls", "images"]},
    ),
    Case(
        "dimension keys ANDed, values ORed",
        UsageQuery(
            "acme",
            dimensions=(
                DimensionFilter("model", ("flux", "sd")),
                DimensionFilter("region", ("eu",)),
            ),
        ),
        contains=(
            "has({dv0:Array(String)}, dimensions[{dk0:String}]) AND "
            "has({dv1:Array(String)}, dimensions[{dk1:String}])",
        ),
        params={**BASE, "dk0": "model", "dv0": ["flux", "sd"], "dk1": "region", "dv1": ["eu"]},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_usage_sql(case: Case) -> None:
    check_case(case, usage_sql(case.query))


def test_request_values_are_only_bound() -> None:
    built = usage_sql(
        UsageQuery(
            HOSTILE,
            window=HOSTILE + "w",
            tz=HOSTILE + "tz",
            meters=(HOSTILE + "m",),
            dimensions=(DimensionFilter(HOSTILE + "k", (HOSTILE + "v",)),),
        )
    )
    check_bound(built, [HOSTILE])
    assert built.parameters["customer"] == HOSTILE
