"""The Faust app: topics, tables, agents and timers wired from one Settings object."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import faust
from faust.exceptions import NotReady

from meterline.billing.fx import FxRates
from meterline.metering.catalog_file import load_catalog
from meterline.metering.meters import MeterCatalog
from meterline.metering.pricebook import PriceBook
from meterline.processor.billing_rules import BillingRules
from meterline.settings import STALL_EXIT_CODE, Settings
from schemas.codec import Codec, DecodeError
from schemas.registry_choice import registry_from_settings
from sinks.client import connect
from sinks.tables.dead_letters import DLQ, dead_letter_row
from sinks.writer import ClickHouseWriter
from streams import topics
from streams.catalog_feed import CatalogFeed
from streams.dead_letters import DEAD_LETTER, DeadLetters
from streams.runtime.batch_delivery import deliver_in_batches
from streams.runtime.faust_app import faust_app
from streams.runtime.introspection import consumer_state, disable_faust_index
from streams.runtime.rocks_store import is_rocksdb, rocks_memory, rocksdb_options
from streams.runtime.tables import RecoveringCustomerTable
from streams.runtime.watchdog import stalled_partitions, stuck_report
from streams.usage_pipeline import UsagePipeline

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the HTTP API and tests need to reach inside a running worker."""

    app: faust.App
    settings: Settings
    codec: Codec
    usage: UsagePipeline
    catalog: CatalogFeed
    clickhouse: Any
    writer: ClickHouseWriter

    def consumer_state(self) -> dict[str, Any]:
        return consumer_state(self.app)

    def free_web_root(self) -> None:
        disable_faust_index(self.app)

    def state_store_bytes(self) -> int:
        """RocksDB's block cache and memtables (0 with memory://, whose tables are Python)."""
        return rocks_memory(self.settings).bytes if is_rocksdb(self.settings.state_store) else 0


def create_runtime(settings: Settings) -> Runtime:
    app = faust_app(settings)
    codec = Codec(registry_from_settings(settings.schema_registry_url))
    clickhouse = connect(settings.clickhouse_dsn)
    writer = ClickHouseWriter(clickhouse)
    meters = MeterCatalog()
    prices = PriceBook()
    plans: dict[str, dict[str, Any]] = {}
    fx_rates = FxRates()
    catalog = CatalogFeed(
        settings.broker, codec, ClickHouseWriter(clickhouse), meters, prices, plans, fx_rates
    )
    if settings.catalog_file is not None:
        catalog.seed(load_catalog(settings.catalog_file))

    metered_topic = app.topic(*topics.METERED, partitions=settings.partitions)
    holder: dict[str, UsagePipeline] = {}

    def recovered() -> None:
        if "usage" in holder:
            holder["usage"].on_recovered()

    def table(name: str, serializer: str) -> Any:
        return app.tables.add(
            RecoveringCustomerTable(
                app,
                name=name,
                beacon=app.tables.beacon,
                partitions=settings.partitions,
                key_type=str,
                key_serializer="raw",
                value_serializer=serializer,
                on_recovered=recovered,
                options=rocksdb_options(settings) if is_rocksdb(settings.state_store) else None,
            )
        )

    states = table("usage-state", "usage_state")
    chunks = table("usage-seen", "compact_json")
    accounts = table("account-state", "account_state")
    raw = table("usage-raw", "raw_batch")
    dead_letters = DeadLetters(app, codec)
    usage = UsagePipeline(
        app,
        settings,
        codec,
        meters,
        prices,
        (states, chunks, accounts, raw),
        BillingRules(meters, prices, plans, fx_rates),
        writer,
        dead_letters,
    )
    holder["usage"] = usage

    @app.task
    async def catalog_feed() -> None:
        await catalog.run()

    # The input topics are subscribed like an agent's, but their records come in batches
    # below Faust's per-message stream (streams/runtime/batch_delivery.py).
    app.topics.add(metered_topic)
    delivery = deliver_in_batches(app, metered_topic.topics, settings.stream_buffer_maxsize)

    @app.task
    async def usage_agent() -> None:
        while not app.should_stop:
            batch = await delivery.take(settings.batch_max, settings.batch_within_seconds)
            async with usage.exclusive():
                try:
                    await usage.handle_batch(batch)
                except NotReady:
                    # Shutting down (see usage_flush): unacked, the batch is read again.
                    if app.should_stop:
                        return
                    raise
            # Durable (Checkpoint.commit_batch): Faust may commit past these records now.
            delivery.ack(batch)

    @app.timer(settings.flush_interval_seconds, name="usage-flush")
    async def usage_flush() -> None:
        async with usage.exclusive():
            try:
                await usage.flush()
            except NotReady:
                # Shutting down: Faust stops the producer before this timer. Nothing is
                # lost, the commits never passed what this flush would have written.
                if not app.should_stop:
                    raise

    if settings.billing_tick_seconds > 0:

        @app.timer(settings.billing_tick_seconds, name="billing-tick")
        async def billing_tick() -> None:
            async with usage.exclusive():
                usage.tick_accounts(int(time.time() * 1000))

    inputs = set(metered_topic.topics)

    @app.timer(5.0, name="usage-watchdog")
    async def usage_watchdog() -> None:
        if settings.stall_exit_seconds > 0:
            stalled = stalled_partitions(
                app,
                inputs,
                settings.stall_exit_seconds,
                usage.stats.last_batch_at,
                busy=bool(usage.lock_since),
            )
            if stalled:
                # Crash-only recovery: a restart resumes from the committed offsets, and the
                # effectively-once design makes that exact. Seeking back in-process instead
                # fights Faust's own offset bookkeeping.
                log.critical("consumption stalled with work left, exiting to restart: %s", stalled)
                logging.shutdown()
                os._exit(STALL_EXIT_CODE)
        held = time.monotonic() - usage.lock_since if usage.lock_since else 0.0
        if (report := stuck_report(held)) is not None:
            log.error(report)

    dlq_topic = app.topic(topics.DLQ, partitions=settings.partitions)
    dlq_writer = ClickHouseWriter(clickhouse)

    @app.agent(dlq_topic, name="dlq-sink")
    async def dlq_sink(stream: Any) -> None:
        # The insert completes before this batch is acked, so the commit never passes a
        # dead letter that is not stored; a replay re-inserts rows ClickHouse dedups.
        async for events in stream.take_events(1000, within=0.5):
            rows = []
            for event in events:
                try:
                    name, record = codec.decode(event.message.value)
                except DecodeError:
                    continue
                if name == DEAD_LETTER:
                    rows.append(dead_letter_row(record))
            if rows:
                dlq_writer.add(DLQ.name, rows, DLQ.columns)
                await dlq_writer.aflush()

    return Runtime(app, settings, codec, usage, catalog, clickhouse, writer)
