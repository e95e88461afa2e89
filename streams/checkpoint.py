"""The durability order, in one place. Every exactness rule of the pipeline is a numbered step
below; nothing else in the tree writes state, rows or records out of this order.

Without Kafka transactions (the embedded broker has none), a crash at any instant must leave
storage and topics *behind* the recoverable state, never ahead of it, and every effect must be
idempotent, so a replay from the committed offsets repeats exactly what was lost:

* a batch's raw events and dedup chunks are durable (on Kafka) before any state that counts
  them, and stay there until they are stored in ClickHouse;
* a state is durable before Faust commits the offsets it has applied;
* rows and records derived from a state (snapshots, ledger, invoices, top-ups, aggregates)
  are written only once that state is durable, carry deterministic ids, and land in tables
  that collapse repeats.

After quixstreams' ``checkpointing/checkpoint.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from meterline.processor.aggregates import aggregate_records
from meterline.processor.customer import CustomerState
from meterline.processor.inputs import Forward, Reject
from meterline.processor.raw_batch import RawBatch
from meterline.processor.step import Step
from meterline.processor.triage import Triage
from sinks.tables.billing import outbox_rows
from sinks.tables.raw_events import TOKEN_EVENTS, USAGE_EVENTS, token_rows, usage_rows
from sinks.tables.usage_minute import USAGE_MINUTE, snapshot_row
from streams.customer_store import CustomerStore


class RowSink(Protocol):
    """A batching ClickHouse writer (sinks.writer.ClickHouseWriter): ``aflush`` returns once
    every buffered row is stored."""

    def add(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None: ...
    async def aflush(self) -> int: ...
    @property
    def pending(self) -> int: ...


class Outputs(Protocol):
    """Records the pipeline sends, on the producer whose flush makes them durable."""

    async def dead_letter(self, reject: Reject) -> None: ...
    async def forward(self, forward: Forward) -> None: ...
    async def aggregate(self, customer: str, record: dict[str, Any]) -> None: ...
    async def outbound(self, kind: str, customer: str, record: dict[str, Any]) -> None: ...
    async def flush(self) -> None: ...


@dataclass(slots=True)
class PublishTimes:
    """Seconds spent in each step of :meth:`Checkpoint.publish`, summed over the worker's life:
    what grows when event→queryable latency does."""

    producer_flush: float = 0.0
    raw: float = 0.0
    accounts: float = 0.0
    windows: float = 0.0


@dataclass(slots=True)
class Processed:
    state: CustomerState
    step: Step


class Checkpoint:
    def __init__(
        self,
        store: CustomerStore,
        outputs: Outputs,
        writer: RowSink,
        raw_writer: RowSink,
        grace_ms: int,
    ) -> None:
        self.store = store
        self.outputs = outputs
        self.writer = writer
        self.raw_writer = raw_writer
        self.grace_ms = grace_ms
        # Customers whose windows changed, and accounts with effects, since their last publish.
        self.pending_usage: set[str] = set()
        self.pending_accounts: set[str] = set()
        # Raw events durable on Kafka and not yet stored in ClickHouse, by chunk key.
        self.pending_raw: dict[str, RawBatch] = {}
        self.rejected = 0
        self.publish_times = PublishTimes()

    async def commit_batch(self, triage: Triage, processed: Sequence[Processed]) -> None:
        """Makes one batch's effects durable before Faust may commit its offsets."""
        # 1. Dead letters and forwarded records go to the producer (durable with step 3).
        rejects = [*triage.rejects, *(r for p in processed for r in p.step.rejects)]
        for reject in rejects:
            await self.outputs.dead_letter(reject)
        self.rejected += len(rejects)
        for forward in triage.forwards:
            await self.outputs.forward(forward)
        # 2. Dedup chunks and the raw events they count go to their changelogs, under one key.
        for p in processed:
            step = p.step
            for part in step.parts:
                self.store.put_chunk(part.chunk)
                self.store.put_raw(part.chunk.key, part.raw)
                self.pending_raw[part.chunk.key] = part.raw
            for key in step.expired_chunks:
                self.store.drop_chunk(key)
        # 3. The producer is flushed: no state can be durable without the chunk that keeps its
        #    ids (a state without its chunk would let a later duplicate through) or the raw
        #    events it counts (a replay skips what the state holds, so they would be lost).
        await self.outputs.flush()
        # 4. The states go to their changelogs. The batch's records are acked once this
        #    returns (streams/app.py); Faust commits only acked offsets and flushes its
        #    producer before every commit, so (5.) offsets never pass a state that is not
        #    durable.
        for p in processed:
            if p.step.usage_changed:
                self.store.put_usage(p.state.usage)
                self.pending_usage.add(p.step.customer_id)
            if p.step.account is not None:
                self.store.put_account(p.step.account)
                self.pending_accounts.add(p.step.customer_id)

    @property
    def has_pending(self) -> bool:
        return bool(self.pending_usage or self.pending_accounts or self.pending_raw)

    async def publish(self) -> int:
        """Writes what durable states show (timer). Returns the rows written."""
        if not self.has_pending:
            return 0
        # 1. The producer is flushed: every state the rows below come from is durable, so
        #    storage never runs ahead of what a restart recovers.
        times = self.publish_times
        started = time.perf_counter()
        await self.outputs.flush()
        times.producer_flush += (at := time.perf_counter()) - started
        written = await self._publish_raw()
        times.raw += (now := time.perf_counter()) - at
        written += await self._publish_accounts()
        times.accounts += (at := time.perf_counter()) - now
        written += await self._publish_windows()
        times.windows += time.perf_counter() - at
        return written

    async def _publish_raw(self) -> int:
        if not self.pending_raw:
            return 0
        # 2. Pending raw events go to ClickHouse in one insert (their sort key is their
        #    identity: a repeat after a crash collapses); only once stored are they dropped
        #    from the changelog.
        ingested = datetime.now(tz=UTC)
        usage = [r for b in self.pending_raw.values() for r in b.usage]
        tokens = [r for b in self.pending_raw.values() for r in b.tokens]
        if usage:
            self.raw_writer.add(
                USAGE_EVENTS.name, usage_rows(usage, ingested), USAGE_EVENTS.columns
            )
        if tokens:
            self.raw_writer.add(
                TOKEN_EVENTS.name, token_rows(tokens, ingested), TOKEN_EVENTS.columns
            )
        await self.raw_writer.aflush()
        for key in self.pending_raw:
            self.store.drop_raw(key)
        self.pending_raw.clear()
        return len(usage) + len(tokens)

    async def _publish_accounts(self) -> int:
        flushed = []
        written = 0
        for customer in list(self.pending_accounts):
            account = self.store.account(customer)
            if account is None or not account.has_outbox:
                continue
            # 3. Outboxes go to ClickHouse: ledger, invoices, payments, top-ups, alerts,
            #    balances (deterministic ids; the tables collapse a repeat).
            for table, rows in outbox_rows(account).items():
                self.writer.add(table.name, rows, table.columns)
                written += len(rows)
            flushed.append(account)
        if self.writer.pending:
            await self.writer.aflush()
        for account in flushed:
            # 4. Then the outbound topics (top-up requests, alerts, invoices): a crash here
            #    re-publishes the same records with the same ids. Only then is the outbox
            #    cleared, in a new version of the state.
            for kind, record in account.outbound_records():
                await self.outputs.outbound(kind, account.customer_id, record)
            account.clear_outbox()
            self.store.put_account(account)
        self.pending_accounts.clear()
        return written

    async def _publish_windows(self) -> int:
        customers = list(self.pending_usage)
        plans = []
        rows: list[list[Any]] = []
        for customer in customers:
            state = self.store.usage(customer)
            if state is None:
                continue
            target = state.close_target(self.grace_ms)
            state.dirty |= {k for k in state.windows if k[2] < target}
            rows.extend(snapshot_row(s) for s in state.snapshots())
            plans.append((state, target))
        # 5. Snapshots of changed windows go to usage_minute (newest state version wins), and
        #    windows past grace are written once more before they are evicted.
        if rows:
            self.writer.add(USAGE_MINUTE.name, rows, USAGE_MINUTE.columns)
            await self.writer.aflush()
        for state, target in plans:
            # 6. Closed windows and late corrections go to meterline.aggregates before the
            #    state forgets them: a crash here re-publishes the same records (same ids).
            #    Then they are evicted and the marks cleared, in a new version of the state.
            closed = state.evict_closed(target)
            for record in aggregate_records(state, closed):
                await self.outputs.aggregate(state.customer_id, record)
            if closed or state.corrections or state.dirty:
                state.corrections.clear()
                state.dirty.clear()
                self.store.put_usage(state)
        self.pending_usage.difference_update(customers)
        return len(rows)

    def recovered(self) -> None:
        """After (re)assignment: the tables hold the recovered truth, and the marks of what was
        already written may be wrong. Every window its state marks as possibly unpublished
        is snapshotted again (writes are idempotent), windows past grace are closed, and every
        outbox that survived, and every raw batch not yet stored, is published."""
        self.store.rebuild_dedup()
        # The marks say which snapshots may be missing (dirty, corrections) and whether
        # windows past grace still wait for their close; the rest is already published.
        self.pending_usage = {c for c, m in self.store.usage_marks() if m.pending(self.grace_ms)}
        self.pending_accounts = self.store.recover_accounts()
        self.pending_raw = self.store.owned_raw()
