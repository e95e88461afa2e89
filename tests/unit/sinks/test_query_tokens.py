"""sinks.queries.tokens: the /tokens SQL, table-driven."""

from __future__ import annotations

import pytest

from sinks.queries import TOKENS_COLUMNS, TimeRange, TokensQuery, tokens_sql
from tests.unit.sinks.sqlcheck import HOSTILE, Case, check_bound, check_case

BASE = {"customer": "acme", "window": "hour", "tz": "UTC", "limit": 10_001}

CASES = [
    Case(
        "defaults",
        TokensQuery("acme"),
        contains=(
            "SELECT " + ", ".join(TOKENS_COLUMNS),
            "FROM token_usage_tz(tz = {tz:String})",
            "WHERE customer_id = {customer:String} AND window = {window:String}\n",
            "ORDER BY model, window_start",
            "LIMIT {limit:UInt32}",
        ),
        excludes=("has(", "window_start >="),
        params=BASE,
    ),
    Case(
        "range, zone and limit",
        TokensQuery("acme", window="month", tz="Asia/Kolkata", time=TimeRange(None, 9), limit=1),
        contains=("window_start < fromUnixTimestamp64Milli({end:Int64}, 'UTC')",),
        excludes=("window_start >=",),
        params={**BASE, "window": "month", "tz": "Asia/Kolkata", "end": 9, "limit": 2},
    ),
    Case(
        "models are alternatives",
        TokensQuery("acme", models=("claude-sonnet", "gpt-4o")),
        contains=("has({models:Array(String)}, model)",),
        params={**BASE, "models": ["claude-sonnet", "gpt-4o"]},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_tokens_sql(case: Case) -> None:
    check_case(case, tokens_sql(case.query))


def test_request_values_are_only_bound() -> None:
    built = tokens_sql(TokensQuery(HOSTILE, tz=HOSTILE + "tz", models=(HOSTILE + "m",)))
    check_bound(built, [HOSTILE])
