"""``GET /tokens/{customer}``: one customer's priced LLM token usage windows in a time zone."""

from __future__ import annotations

from dataclasses import dataclass

from sinks.queries.common import ALL_TIME, SqlQuery, TimeRange, Where

__all__ = ["TOKENS_COLUMNS", "TokensQuery", "tokens_sql"]

# Spelled out for the same reason as USAGE_COLUMNS: an empty chDB result names no columns.
TOKENS_COLUMNS = (
    "customer_id",
    "model",
    "window",
    "window_start",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost",
    "markup",
    "billed",
    "events",
    # Migration 010's columns, last as in the view: input_tokens includes cached ones
    # (token_usage_tz normalises older producers), reasoning tokens are part of output.
    "cache_write_tokens",
    "reasoning_tokens",
)


@dataclass(frozen=True)
class TokensQuery:
    customer: str
    window: str = "hour"
    tz: str = "UTC"
    time: TimeRange = ALL_TIME
    limit: int = 10_000
    models: tuple[str, ...] = ()  # any of them; empty: every model


def tokens_sql(q: TokensQuery) -> SqlQuery:
    """One row per (model, window) whose window starts in [from, to), at most ``limit + 1``
    (the extra row says the answer was cut)."""
    where = Where()
    where.add("customer_id = {customer:String}", customer=q.customer)
    where.add("window = {window:String}", window=q.window)
    where.time_range("window_start", q.time)
    if q.models:
        where.add("has({models:Array(String)}, model)", models=list(q.models))
    sql = f"""
SELECT {", ".join(TOKENS_COLUMNS)}
FROM token_usage_tz(tz = {{tz:String}})
WHERE {where.sql()}
ORDER BY model, window_start
LIMIT {{limit:UInt32}}
"""
    return SqlQuery(sql, {**where.params, "tz": q.tz, "limit": q.limit + 1})
