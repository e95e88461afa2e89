"""The usage agent's adapter: Kafka records in (streams/runtime/batch_delivery.py), decoded
and triaged, each customer's share handed to the pure processor (meterline/processor), the
steps made durable by the checkpoint.

decode (schemas) → triage → process per customer → checkpoint.commit_batch; a timer runs
checkpoint.publish. One lock, shared with the timers, so state is never read half-updated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from meterline.metering.meters import MeterCatalog
from meterline.metering.pricebook import PriceBook
from meterline.metering.windows import EventTimeLimits
from meterline.processor.billing_rules import BillingRules
from meterline.processor.customer import CustomerProcessor
from meterline.processor.inputs import BillingInput, InputKind, Origin
from meterline.processor.triage import Gate, Triage
from meterline.settings import Settings
from schemas.codec import Codec, DecodeError
from sinks.writer import ClickHouseWriter
from streams.checkpoint import Checkpoint, Processed
from streams.customer_store import CustomerStore
from streams.dead_letters import DeadLetters
from streams.outputs import FaustOutputs
from streams.partitioning import home_partition
from streams.runtime.dedup_store import dedup_index
from streams.runtime.faust_app import owned_partitions
from streams.topics import KIND_OF, REHOMED, USAGE


@dataclass(slots=True)
class PipelineStats:
    events_in: int = 0
    counted: int = 0
    duplicates: int = 0
    replayed: int = 0
    late: int = 0
    forwarded: int = 0
    rejected: int = 0
    rows_written: int = 0
    last_flush_ms: int = 0
    # Wall-clock seconds of the first and the latest batch, and of the first batch that counted
    # an event (after account commands, say): the benchmark's timing source.
    first_batch_at: float = 0.0
    first_counted_at: float = 0.0
    last_batch_at: float = 0.0
    # Where batch time goes: decoding, triage and the processor; then the checkpoint, most
    # of which is waiting for ClickHouse and the producer.
    process_seconds: float = 0.0
    checkpoint_seconds: float = 0.0
    # The flush timer's writes (ClickHouse inserts, outboxes): their sum over their count is
    # the part of event→queryable latency that is not waiting for the timer.
    publishes: int = 0
    publish_seconds: float = 0.0
    # Of which, by step (Checkpoint.publish): flat numbers, as /health's schema promises.
    publish_producer_flush_seconds: float = 0.0
    publish_raw_seconds: float = 0.0
    publish_accounts_seconds: float = 0.0
    publish_windows_seconds: float = 0.0


class UsagePipeline:
    def __init__(
        self,
        app: Any,
        settings: Settings,
        codec: Codec,
        meters: MeterCatalog,
        prices: PriceBook,
        tables: tuple[Any, Any, Any, Any],
        rules: BillingRules,
        writer: ClickHouseWriter,
        dead_letters: DeadLetters,
    ) -> None:
        self.app = app
        self.codec = codec
        self.partitions = settings.partitions
        self.dlq = dead_letters
        self.index = dedup_index(settings)
        self.gate = Gate(
            EventTimeLimits(
                max_future_ms=settings.max_future_seconds * 1000,
                max_past_ms=settings.max_past_days * 86_400_000,
            ),
            prices,
            self.home,
        )
        states, chunks, accounts, raw = tables
        self.accounts = accounts
        self.store = CustomerStore(
            states, chunks, accounts, raw, self.index, self.home, self.owned_partitions
        )
        self.retention_ms = settings.payment_retention_days * 86_400_000
        self.rules = rules
        self.processor = CustomerProcessor(meters, rules, self.index, self.retention_ms)
        self.outputs = FaustOutputs(app, codec, dead_letters)
        self.checkpoint = Checkpoint(
            self.store,
            self.outputs,
            writer,
            # Raw events' sort key is their identity: no content hash is needed to dedup them.
            # Nor a check of every value: they are the decoded records, which schemas/validate
            # already held to these columns' types and Decimal(38, 12) bounds.
            ClickHouseWriter(writer.client, dedup_tokens=False, validate=False),
            settings.grace_seconds * 1000,
        )
        self.lock = asyncio.Lock()
        self.lock_since = 0.0  # monotonic time the lock was taken (0: free)
        self.stats = PipelineStats()
        self._needs_rebuild = True

    def home(self, customer: str) -> int:
        return home_partition(customer, self.partitions)

    def owned_partitions(self) -> set[int]:
        return owned_partitions(self.app, USAGE, self.partitions)

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """The pipeline lock, remembering since when it is held so a watchdog can tell a
        stuck await from a busy one."""
        async with self.lock:
            self.lock_since = time.monotonic()
            try:
                yield
            finally:
                self.lock_since = 0.0

    def on_recovered(self) -> None:
        self._needs_rebuild = True

    def _rebuild_if_needed(self) -> None:
        if self._needs_rebuild:
            self.checkpoint.recovered()
            self._needs_rebuild = False

    async def handle_batch(self, messages: Sequence[Any]) -> None:
        batch_started = time.time()
        if not self.stats.first_batch_at:
            self.stats.first_batch_at = batch_started
        self._rebuild_if_needed()
        triage = self._triage(messages, int(time.time() * 1000))
        processed = []
        for customer, items in triage.by_customer.items():
            state = self.store.load(customer)
            processed.append(Processed(state, self.processor.process(state, items)))
        processed_at = time.time()
        await self.checkpoint.commit_batch(triage, processed)
        stats = self.stats
        stats.process_seconds += processed_at - batch_started
        stats.checkpoint_seconds += time.time() - processed_at
        stats.events_in += triage.events_in
        stats.forwarded = self.outputs.forwarded
        stats.rejected = self.checkpoint.rejected
        for p in processed:
            s = p.step.stats
            stats.counted += s.counted
            stats.duplicates += s.duplicates
            stats.replayed += s.replayed
            stats.late += s.late
        stats.last_batch_at = time.time()
        if stats.counted and not stats.first_counted_at:
            stats.first_counted_at = batch_started

    def _triage(self, messages: Sequence[Any], now_ms: int) -> Triage:
        triage = Triage()
        for m in messages:
            origin = Origin(m.topic, m.partition, m.offset, m.key, m.value)
            kind = InputKind(KIND_OF[m.topic])
            try:
                records, bad = self._decode(kind, m.value)
            except DecodeError as exc:
                triage.reject(origin, str(exc))
                continue
            triage.add_message(
                self.gate, kind, origin, records, bad, now_ms, rehomed=m.topic in REHOMED
            )
        return triage

    def _decode(self, kind: InputKind, value: bytes) -> tuple[list[Any], list[tuple[int, str]]]:
        if kind is InputKind.USAGE:
            records, bad = self.codec.usage_events_lenient(value)
        elif kind is InputKind.TOKENS:
            records, bad = self.codec.token_events_lenient(value)
        else:
            name, decoded = self.codec.decode(value)
            if not isinstance(decoded, dict) or not isinstance(decoded.get("customer_id"), str):
                raise DecodeError(f"{kind} record without a customer_id")
            return [BillingInput(decoded["customer_id"], name, decoded)], []
        return records, [(b.index, b.reason) for b in bad]

    async def flush(self) -> int:
        self._rebuild_if_needed()
        if not self.checkpoint.has_pending:
            return 0
        started = time.perf_counter()
        written = await self.checkpoint.publish()
        self.stats.publishes += 1
        self.stats.publish_seconds += time.perf_counter() - started
        steps = self.checkpoint.publish_times
        self.stats.publish_producer_flush_seconds = steps.producer_flush
        self.stats.publish_raw_seconds = steps.raw
        self.stats.publish_accounts_seconds = steps.accounts
        self.stats.publish_windows_seconds = steps.windows
        self.stats.rows_written += written
        self.stats.last_flush_ms = int(time.time() * 1000)
        return written

    def tick_accounts(self, now_ms: int) -> int:
        """Lets wall-clock time pass for the accounts this worker owns: period close, expiry,
        due top-up retries."""
        self._rebuild_if_needed()
        ticked = 0
        for account in self.store.due_accounts(now_ms):
            account.account.payment_retention_ms = self.retention_ms
            fx = self.rules.account(account).tick(now_ms)
            if fx.entries or fx.topups or fx.alerts or fx.invoices or fx.payments:
                account.record(fx)
                self.store.put_account(account)
                self.checkpoint.pending_accounts.add(account.customer_id)
                ticked += 1
        return ticked
