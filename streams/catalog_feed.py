"""The global catalog: seeded from the catalog file at start, then every change on
``meterline.catalog``, applied by *every* worker.

A consumer group would split the catalog's partitions between workers, so each worker reads
all partitions itself (assigned, not subscribed, never committing). Each change is applied in
memory (meters, price book, plans) and mirrored into ClickHouse, where the usage and token
views read it; those rows are idempotent, so several workers writing them is harmless.

Change values (Avro ``meterline.CatalogChange`` or JSON)::

    {"change_id": "c1", "at": 1767225600000, "type": "meter", "code": "api_calls",
     "aggregation": "count", "value_field": "value", "group_by": []}
    {"change_id": "c2", "at": ..., "type": "model_price", "model": "gpt-4o", ...}
    {"change_id": "c3", "at": ..., "type": "markup", "rate": "0.25", "effective_from": ...}
    {"change_id": "c4", "at": ..., "type": "plan", "plan_id": "lora-pro", ...}
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from meterline.billing.catalog import Plan
from meterline.billing.fx import FxRate, FxRates
from meterline.metering.catalog_file import CatalogSeed
from meterline.metering.meters import MeterCatalog, MeterDef
from meterline.metering.pricebook import Markup, ModelPrice, PriceBook
from meterline.metering.windows import parse_instant_ms
from schemas.codec import Codec, DecodeError
from sinks.tables.catalog import MARKUPS, METERS, MODEL_PRICES, markup_row, meter_row, price_row
from sinks.writer import ClickHouseWriter
from streams.kafka_security import kafka_config
from streams.topics import CATALOG

log = logging.getLogger(__name__)

AVRO_TYPES = {
    "meterline.MeterDef": "meter",
    "meterline.PlanDef": "plan",
    "meterline.ModelPrice": "model_price",
    "meterline.Markup": "markup",
    "meterline.FxRate": "fx_rate",
}


class CatalogError(ValueError):
    pass


def normalize_change(name: str, value: Any) -> tuple[str, dict[str, Any], int]:
    """(type, body, at) of one catalog record, whichever encoding it came in."""
    if not isinstance(value, dict):
        raise CatalogError("a catalog change must be an object")
    if name == "json":
        body = {k: v for k, v in value.items() if k not in ("change_id", "at", "type")}
        kind = value.get("type")
    else:
        payload_name, body = value["payload"]
        kind = AVRO_TYPES.get(payload_name)
    if kind not in ("meter", "plan", "model_price", "markup", "fx_rate"):
        raise CatalogError(f"unknown catalog change type {kind!r}")
    return kind, dict(body), int(value.get("at", 0))


def _ms(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, tz=UTC)


class CatalogFeed:
    def __init__(
        self,
        bootstrap: str,
        codec: Codec,
        writer: ClickHouseWriter,
        meters: MeterCatalog,
        prices: PriceBook,
        plans: dict[str, dict[str, Any]],
        fx_rates: FxRates | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.codec = codec
        self.writer = writer
        self.meters = meters
        self.prices = prices
        self.plans = plans
        self.fx_rates = fx_rates if fx_rates is not None else FxRates()
        self.applied = 0
        self.errors = 0

    def seed(self, seed: CatalogSeed) -> None:
        for meter in seed.meters:
            self.apply("meter", meter.to_dict(), 0)
        for price in seed.model_prices:
            self.apply("model_price", price.to_dict(), 0)
        for markup in seed.markups:
            self.apply("markup", markup.to_dict(), 0)
        for plan in seed.plans:
            self.apply("plan", plan, 0)
        for rate in seed.fx_rates:
            self.apply("fx_rate", rate, 0)
        self.writer.flush()

    def apply(self, kind: str, body: dict[str, Any], at: int) -> None:
        if kind == "meter":
            meter = MeterDef.from_dict(body)
            self.meters.apply({"version": at, "op": "upsert", "meter": meter.to_dict()})
            self.writer.add(METERS.name, [meter_row(meter, at)], METERS.columns)
        elif kind == "model_price":
            price = ModelPrice.from_dict(body)
            self.prices.add_price(price)
            self.writer.add(MODEL_PRICES.name, [price_row(price)], MODEL_PRICES.columns)
        elif kind == "markup":
            markup = Markup.from_dict(body)
            self.prices.add_markup(markup)
            self.writer.add(MARKUPS.name, [markup_row(markup)], MARKUPS.columns)
        elif kind == "fx_rate":
            when = parse_instant_ms(body.get("effective_from"), "fx_rate effective_from")
            self.fx_rates.add(FxRate.from_dict({**body, "effective_from": when}))
        else:
            # Parsed before it is stored: the processor parses plans lazily, on an account's
            # next command, so a bad plan kept here failed every later command (the chaos
            # fuzzing, tests/unit/fuzz/test_parser_fuzz.py).
            Plan.from_dict(body)
            self.plans[str(body["plan_id"])] = body
        self.applied += 1

    def _consumer(self) -> Consumer:
        consumer = Consumer(
            kafka_config(
                self.bootstrap,
                **{
                    "group.id": f"meterline-catalog-{uuid.uuid4()}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                },
            )
        )
        meta = consumer.list_topics(CATALOG, timeout=30)
        partitions = sorted(meta.topics[CATALOG].partitions)
        consumer.assign([TopicPartition(CATALOG, p, OFFSET_BEGINNING) for p in partitions])
        return consumer

    async def run(self) -> None:
        consumer = await asyncio.to_thread(self._consumer)
        try:
            while True:
                messages = await asyncio.to_thread(consumer.consume, 500, 0.5)
                for message in messages:
                    if message.error() is None:
                        self._apply_message(message.value())
                if self.writer.pending:
                    await self.writer.aflush()
        finally:
            await asyncio.to_thread(consumer.close)

    def _apply_message(self, data: bytes) -> None:
        try:
            name, value = self.codec.decode(data)
            kind, body, at = normalize_change(name, value)
            self.apply(kind, body, at)
        except (
            DecodeError,
            CatalogError,
            ValueError,
            KeyError,
            # A field of the wrong type (a number where a list belongs) fails inside the
            # parsers as one of these; uncaught, it ended the catalog feed's task.
            TypeError,
            AttributeError,
            ArithmeticError,
        ) as exc:
            # The catalog is operator input: a bad change is logged and skipped, never fatal.
            self.errors += 1
            log.error("catalog change rejected: %s", exc)
