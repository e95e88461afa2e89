"""The catalog mirrored into ClickHouse, where the usage and token views read the meters,
prices and markups in force (DDL: 002_raw_events_and_catalog.sql). Rows are idempotent, so
every worker writing them is harmless."""

from __future__ import annotations

from typing import Any

from meterline.metering.meters import MeterDef
from meterline.metering.pricebook import Markup, ModelPrice
from sinks.tables import Table, utc

METERS = Table("meters", ("code", "aggregation", "value_field", "group_by", "version", "deleted"))
MODEL_PRICES = Table(
    "model_prices",
    (
        "model",
        "provider",
        "effective_from",
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
        "cache_write_per_million",
    ),
)
MARKUPS = Table("markups", ("k", "effective_from", "rate"))


def meter_row(meter: MeterDef, version: int) -> list[Any]:
    return [meter.code, str(meter.aggregation), meter.value_field, list(meter.group_by), version, 0]


def price_row(price: ModelPrice) -> list[Any]:
    return [
        price.model,
        price.provider,
        utc(price.effective_from),
        price.input_per_million,
        price.output_per_million,
        price.cached_input_per_million,
        # Stored resolved (the input price when the entry gives none), as the worker rates.
        price.cache_write_price,
    ]


def markup_row(markup: Markup) -> list[Any]:
    # One global markup series: k is the constant the ASOF join matches on.
    return [0, utc(markup.effective_from), markup.rate]
