"""The token views after 010_token_types.sql, on a real embedded ClickHouse: rows stored before
(input_tokens without the cached ones, input_includes_cached reads 0) keep their cost, rows
written now carry cache-write and reasoning counts and are priced per token type exactly as
the worker's price book prices them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH, load_catalog
from sinks.client import SharedClient
from sinks.tables.catalog import MARKUPS, MODEL_PRICES, markup_row, price_row
from sinks.tables.raw_events import TOKEN_EVENTS, token_rows
from tests.integration.clickhouse_fixtures import *  # noqa: F403  (fixtures ch, ch_store, chdb_dsn)

pytestmark = pytest.mark.integration

SEED = load_catalog(DEFAULT_CATALOG_PATH)
BOOK = SEED.price_book()


def _now_ms() -> int:
    # Inside the current month: the views read it from token_events_by_time (the MV's copy).
    return int(datetime.now(UTC).replace(day=1, hour=1).timestamp() * 1000)


def seed(ch: SharedClient) -> None:
    ch.insert(MODEL_PRICES.name, [price_row(p) for p in SEED.model_prices], MODEL_PRICES.columns)
    ch.insert(MARKUPS.name, [markup_row(m) for m in SEED.markups], MARKUPS.columns)


def test_old_and_new_token_rows_are_priced_per_token_type(ch: SharedClient) -> None:
    seed(ch)
    ts = _now_ms()
    at = datetime.fromtimestamp(ts / 1000, tz=UTC)
    # A row stored before the migration: the old 10 columns, cached outside input.
    ch.insert(
        "token_events",
        [["c", "old", "gpt-4o", "openai", 86, 300, 1920, at, {}, at]],
        TOKEN_EVENTS.columns[:10],
    )
    new = {
        "customer_id": "c",
        "event_id": "new",
        "model": "claude-sonnet",
        "provider": "anthropic",
        "input_tokens": 3898,
        "output_tokens": 512,
        "cached_input_tokens": 1800,
        "timestamp": ts,
        "dimensions": {},
        "cache_write_tokens": 2048,
        "reasoning_tokens": 100,
    }
    ch.insert(TOKEN_EVENTS.name, token_rows([new], at), TOKEN_EVENTS.columns)
    rows = ch.query(
        "SELECT event_id, input_tokens, cached_input_tokens, cache_write_tokens, "
        "reasoning_tokens, toString(cost), toString(billed) FROM token_billed ORDER BY event_id"
    ).result_rows
    old_cost = BOOK.cost("gpt-4o", 86 + 1920, 300, 1920, ts)  # the hand-computed 0.005615
    new_cost = BOOK.cost("claude-sonnet", 3898, 512, 1800, ts, cache_write_tokens=2048)
    assert old_cost.cost == Decimal("0.005615") and new_cost.cost == Decimal("0.01605")
    assert [(r[0], r[1], r[2], r[3], r[4], Decimal(r[5]), Decimal(r[6])) for r in rows] == [
        ("new", 3898, 1800, 2048, 100, new_cost.cost, new_cost.billed),
        ("old", 2006, 1920, 0, 0, old_cost.cost, old_cost.billed),
    ]
    (day,) = ch.query(
        "SELECT sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), "
        "sum(cache_write_tokens), sum(reasoning_tokens), toString(sum(cost)), "
        "toString(sum(billed)), sum(events) FROM token_usage WHERE window = 'day'"
    ).result_rows
    assert day[:5] == (3898 + 2006, 812, 3720, 2048, 100)
    assert Decimal(day[5]) == old_cost.cost + new_cost.cost
    assert Decimal(day[6]) == old_cost.billed + new_cost.billed
    assert day[7] == 2
