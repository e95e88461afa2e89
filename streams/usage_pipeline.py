"""The usage path: decode → validate → route home → dedup → window → snapshot to ClickHouse.

Runs inside the usage agent, one batch (``take_events``) at a time, under one lock shared with
the flush timer so state is never read half-updated. See docs/ARCHITECTURE.md (Exactness).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from meterline.billing.account import Account
from meterline.metering.aggregation import Aggregation
from meterline.metering.dedup import Chunk, DedupIndex, chunk_key
from meterline.metering.meters import MeterCatalog, MeterDef, MeterValueError, dims_key
from meterline.metering.pricebook import PriceBook
from meterline.metering.usage_state import UsageState, WindowSnapshot
from meterline.metering.windows import EventTimeLimits
from meterline.settings import Settings
from schemas.codec import Codec, DecodeError
from sinks.writer import ClickHouseWriter
from streams.billing import AccountState, BillingAdapter, outbound_records, outbox_rows, to_json
from streams.dead_letters import DeadLetters
from streams.partitioning import home_partition
from streams.topics import (
    ACCOUNTS,
    ACCOUNTS_REHOME,
    AGGREGATES,
    ALERTS,
    INVOICES,
    PAYMENTS,
    PAYMENTS_REHOME,
    TOKENS,
    TOKENS_REHOME,
    TOPUPS,
    USAGE,
    USAGE_REHOME,
)

USAGE_EVENT = "meterline.UsageEvent"
TOKEN_EVENT = "meterline.TokenEvent"
KIND = {
    USAGE: "usage",
    USAGE_REHOME: "usage",
    TOKENS: "tokens",
    TOKENS_REHOME: "tokens",
    ACCOUNTS: "accounts",
    ACCOUNTS_REHOME: "accounts",
    PAYMENTS: "payments",
    PAYMENTS_REHOME: "payments",
}
REHOME = {
    "usage": USAGE_REHOME,
    "tokens": TOKENS_REHOME,
    "accounts": ACCOUNTS_REHOME,
    "payments": PAYMENTS_REHOME,
}
REHOMED = frozenset(REHOME.values())
# (message, source "topic/partition", ref "source@offset.index", kind, record)
Item = tuple[Any, str, str, str, dict]
SCHEMA = {"usage": USAGE_EVENT, "tokens": TOKEN_EVENT}
# Token counts also flow through the streamed minute windows, as sums per model.
TOKEN_METERS = {
    "input_tokens": MeterDef.default("llm_input_tokens"),
    "output_tokens": MeterDef.default("llm_output_tokens"),
    "cached_input_tokens": MeterDef.default("llm_cached_input_tokens"),
}
USAGE_RAW_COLUMNS = [
    "customer_id",
    "event_id",
    "meter",
    "value",
    "timestamp",
    "dimensions",
    "ingested_at",
]
TOKEN_RAW_COLUMNS = [
    "customer_id",
    "event_id",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "timestamp",
    "dimensions",
    "ingested_at",
]
MINUTE_COLUMNS = [
    "customer_id",
    "meter",
    "dims_key",
    "dimensions",
    "window_start",
    "part",
    "value",
    "events",
    "version",
    "aggregation",
]


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
    # Wall-clock seconds of the first and the latest batch: the benchmark's timing source.
    first_batch_at: float = 0.0
    last_batch_at: float = 0.0


def _what(kind: str, record: dict) -> str:
    if kind in ("usage", "tokens"):
        return f"event {record['event_id']!r}"
    return f"{kind} record"


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _usage_row(r: dict, ingested: datetime) -> list[Any]:
    return [
        r["customer_id"],
        r["event_id"],
        r["meter"],
        r["value"],
        _ts(r["timestamp"]),
        r["dimensions"],
        ingested,
    ]


def _token_row(r: dict, ingested: datetime) -> list[Any]:
    return [
        r["customer_id"],
        r["event_id"],
        r["model"],
        r["provider"],
        r["input_tokens"],
        r["output_tokens"],
        r["cached_input_tokens"],
        _ts(r["timestamp"]),
        r["dimensions"],
        ingested,
    ]


def aggregate_records(
    state: UsageState, closed: list[tuple[tuple[str, str, int], Any]]
) -> list[dict[str, Any]]:
    """meterline.aggregates: a closed window is revision 0; each late event past grace is a
    correction with its own id and a higher revision, to merge by the meter's aggregation
    (add for sum and count, min/max for those, newest timestamp wins for latest)."""
    out = []
    for (meter, dims, start), agg in closed:
        aggregation = state.aggregations.get(meter, Aggregation.SUM)
        out.append(_aggregate(state.customer_id, meter, dims, start, "", aggregation, agg, 0))
    for c in state.corrections:
        out.append(
            _aggregate(
                state.customer_id,
                c.meter,
                c.dims_key,
                c.window_start,
                f"late:{c.event_id}",
                c.aggregation,
                c.agg,
                state.version,
            )
        )
    return out


def _aggregate(
    customer: str,
    meter: str,
    dims: str,
    start: int,
    part: str,
    aggregation: Any,
    agg: Any,
    revision: int,
) -> dict[str, Any]:
    return {
        "id": f"{customer}|{meter}|{dims}|{start}|{part}",
        "kind": "correction" if part else "window",
        "customer_id": customer,
        "meter": meter,
        "dimensions": json.loads(dims),
        "window": "minute",
        "window_start": start,
        "window_end": start + 60_000,
        "aggregation": str(aggregation),
        "value": str(agg.result(aggregation)),
        "events": agg.count,
        "revision": revision,
    }


def snapshot_row(s: WindowSnapshot) -> list[Any]:
    return [
        s.customer_id,
        s.meter,
        s.dims_key,
        s.dimensions,
        datetime.fromtimestamp(s.window_start / 1000, tz=UTC),
        s.part,
        s.agg.result(s.aggregation),
        s.agg.count,
        s.version,
        str(s.aggregation),
    ]


class UsagePipeline:
    def __init__(
        self,
        app: Any,
        settings: Settings,
        codec: Codec,
        meters: MeterCatalog,
        prices: PriceBook,
        states: Any,
        chunks: Any,
        accounts: Any,
        billing: BillingAdapter,
        writer: ClickHouseWriter,
        dead_letters: DeadLetters,
    ) -> None:
        self.app = app
        self.settings = settings
        self.codec = codec
        self.meters = meters
        self.prices = prices
        self.states = states
        self.chunks = chunks
        self.accounts = accounts
        self.billing = billing
        self.writer = writer
        # Raw events' sort key is their identity, so no content hash is needed to dedup them.
        self.raw_writer = ClickHouseWriter(writer.client, dedup_tokens=False)
        self.dlq = dead_letters
        self.partitions = settings.partitions
        self.grace_ms = settings.grace_seconds * 1000
        self.limits = EventTimeLimits(
            max_future_ms=settings.max_future_seconds * 1000,
            max_past_ms=settings.max_past_days * 86_400_000,
        )
        self.index = DedupIndex(horizon_ms=settings.dedup_horizon_days * 86_400_000)
        self.lock = asyncio.Lock()
        self.lock_since = 0.0  # monotonic time the lock was taken (0: free)
        self.stats = PipelineStats()
        self._aggregates = app.topic(AGGREGATES, key_serializer="raw", value_serializer="raw")
        self._rehome = {
            kind: app.topic(name, key_serializer="raw", value_serializer="raw")
            for kind, name in REHOME.items()
        }
        self._decoders = {
            "usage": codec.usage_events_lenient,
            "tokens": codec.token_events_lenient,
        }
        self._dirty: set[str] = set()
        self._dirty_accounts: set[str] = set()
        self._outbound = {
            kind: app.topic(name, key_serializer="raw", value_serializer="raw")
            for kind, name in (("topups", TOPUPS), ("alerts", ALERTS), ("invoices", INVOICES))
        }
        self._needs_rebuild = True

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

    # -- recovery ---------------------------------------------------------------------------
    def on_recovered(self) -> None:
        self._needs_rebuild = True

    def _rebuild(self) -> None:
        """After (re)assignment the table holds the recovered truth; indexes and the
        'already written' marks in memory may not. Re-derive them, and re-snapshot every
        open window: writes are idempotent, and a snapshot may have been lost in the crash."""
        self.index.clear()
        chunks = sorted(
            (Chunk.from_dict(k, v) for k, v in self.chunks.items() if v is not None),
            key=lambda c: (c.customer_id, int(c.key.rsplit("#", 1)[1])),
        )
        for chunk in chunks:
            self.index.add(chunk)
        # Faust's memory store may still hold customers of partitions another worker now owns;
        # writing them would make a second writer, so only owned customers are touched.
        owned = self.owned_partitions()
        self._dirty.clear()
        for customer, state in self.states.items():
            if home_partition(customer, self.partitions) in owned:
                state.dirty = set(state.windows)
                self._dirty.add(customer)
        self._dirty_accounts = {
            c
            for c, a in self.accounts.items()
            if a.has_outbox and home_partition(c, self.partitions) in owned
        }
        self._needs_rebuild = False

    def owned_partitions(self) -> set[int]:
        consumer = getattr(self.app, "consumer", None)
        if consumer is None:
            return set(range(self.partitions))
        return {tp.partition for tp in consumer.assignment() if tp.topic == USAGE}

    # -- the hot path -----------------------------------------------------------------------
    async def handle_batch(self, events: list[Any]) -> None:
        if not self.stats.first_batch_at:
            self.stats.first_batch_at = time.time()
        if self._needs_rebuild:
            self._rebuild()
        now_ms = int(time.time() * 1000)
        by_customer: dict[str, list[Item]] = {}
        for event in events:
            message = event.message
            kind = KIND[message.topic]
            try:
                records, bad = self._decode(kind, message.value)
            except DecodeError as exc:
                await self._reject(message, str(exc))
                continue
            source = f"{message.topic}/{message.partition}"
            problems = [f"event #{b.index}: {b.reason}" for b in bad]
            self.stats.events_in += len(records) + len(bad)
            for i, record in enumerate(records):
                reason = self._check(kind, record, now_ms)
                if reason is not None:
                    problems.append(f"{_what(kind, record)}: {reason}")
                    continue
                customer = record["customer_id"]
                home = home_partition(customer, self.partitions)
                if home != message.partition and message.topic not in REHOMED:
                    await self._forward(kind, customer, home, record, message.value)
                    continue
                ref = f"{source}@{message.offset}.{i}"
                by_customer.setdefault(customer, []).append((message, source, ref, kind, record))
            if problems:
                await self._reject(message, "; ".join(problems))
        if not by_customer:
            self.stats.last_batch_at = time.time()
            return
        touched: list[UsageState] = []
        touched_accounts: list[AccountState] = []
        for customer, items in by_customer.items():
            state = self._state(customer)
            account = self.accounts.get(customer)
            changed, account, rejected = self._apply(state, account, items)
            if changed:
                touched.append(state)
            if account is not None:
                touched_accounts.append(account)
            for message, reason in rejected:
                await self._reject(message, reason)
        # Before any state that counts them is written: raw rows are stored (a replay then
        # re-inserts rows ClickHouse collapses by key, and never skips a missing one), and
        # dedup chunks are durable (a state without its chunk would let a later duplicate
        # through). The two are independent, so they overlap.
        await asyncio.gather(self.raw_writer.aflush(), self.app.producer.flush())
        for state in touched:
            state.version += 1
            self.states[state.customer_id] = state
            self._dirty.add(state.customer_id)
        for account in touched_accounts:
            account.version += 1
            self.accounts[account.customer_id] = account
            self._dirty_accounts.add(account.customer_id)
        self.stats.last_batch_at = time.time()

    def _decode(self, kind: str, value: bytes) -> tuple[list[dict], list[Any]]:
        if kind in ("usage", "tokens"):
            return self._decoders[kind](value)
        name, decoded = self.codec.decode(value)
        if not isinstance(decoded, dict) or not isinstance(decoded.get("customer_id"), str):
            raise DecodeError(f"{kind} record without a customer_id")
        return [{"customer_id": decoded["customer_id"], "name": name, "value": decoded}], []

    def _state(self, customer: str) -> UsageState:
        state = self.states.get(customer)
        if state is None:
            state = UsageState(customer_id=customer)
        return state

    def _apply(
        self, state: UsageState, account: AccountState | None, items: list[Item]
    ) -> tuple[bool, AccountState | None, list[tuple[Any, str]]]:
        """Applies one customer's share of a batch to its usage state and its account, each
        skipping what it already holds. Returns (usage changed, account touched, rejects)."""
        customer = state.customer_id
        # Judge "already applied" against the states as recovered, not as this batch moves
        # them: one message (a batch envelope) holds several events at the same offset.
        applied_before = dict(state.applied)
        account_before = dict(account.applied) if account is not None else {}
        account_touched = False
        new_ids: dict[str, str] = {}
        rejected: list[tuple[Any, str]] = []
        max_ts = -1
        changed = False
        horizon_cutoff = state.watermark - self.index.horizon_ms
        usage_rows: list[list[Any]] = []
        token_rows: list[list[Any]] = []
        ingested = datetime.now(tz=UTC)
        for message, source, ref, kind, record in items:
            offset = message.offset
            if kind in ("accounts", "payments"):
                if account is None and kind == "accounts":
                    account = AccountState(customer, Account(customer))
                if account is None:
                    rejected.append((message, f"payment for unknown customer {customer!r}"))
                    continue
                if offset <= account_before.get(source, -1):
                    continue
                account.applied[source] = offset
                account_touched = True
                errors = self._billing_input(account, kind, record)
                if errors:
                    rejected.append((message, "; ".join(errors)))
                continue
            usage_holds = offset <= applied_before.get(source, -1)
            account_holds = account is None or offset <= account_before.get(source, -1)
            if usage_holds and account_holds:
                self.stats.replayed += 1
                continue
            if not usage_holds:
                state.mark_applied(source, offset)
                changed = True
            if not account_holds:
                assert account is not None
                account.applied[source] = offset
                account_touched = True
            # Usage and token events are separate id spaces.
            event_id = record["event_id"] if kind == "usage" else f"tokens:{record['event_id']}"
            seen = self.index.lookup(customer, event_id)
            if (seen is not None and seen != ref) or (
                event_id in new_ids and new_ids[event_id] != ref
            ):
                self.stats.duplicates += 1
                continue
            ts = record["timestamp"]
            if ts < horizon_cutoff:
                # Older than what dedup remembers: counting it could count it twice.
                rejected.append((message, f"event {event_id!r}: older than the dedup horizon"))
                continue
            if not usage_holds:
                if kind == "usage":
                    meter = self.meters.get(record["meter"])
                    try:
                        self._count(state, meter, record)
                    except MeterValueError as exc:
                        rejected.append((message, f"event {event_id!r}: {exc}"))
                        continue
                    usage_rows.append(_usage_row(record, ingested))
                else:
                    self._count_tokens(state, record)
                    token_rows.append(_token_row(record, ingested))
                new_ids[event_id] = ref
                max_ts = max(max_ts, ts)
            if not account_holds:
                assert account is not None
                try:
                    errors = self.billing.usage(account, kind, record)
                except ArithmeticError as exc:
                    # Not representable exactly (the domain refuses to round): the event is
                    # metered, its charge goes to the DLQ for a person to look at.
                    errors = [f"event {event_id!r} could not be rated exactly: {exc!r}"]
                if errors:
                    rejected.append((message, "; ".join(errors)))
        if new_ids:
            chunk = Chunk(chunk_key(customer, state.chunk_seq), customer, new_ids, max_ts)
            state.chunk_seq += 1
            self.chunks[chunk.key] = chunk.to_dict()
            self.index.add(chunk)
        for gone in self.index.expire(customer, state.watermark):
            self.chunks.pop(gone, None)
        if usage_rows:
            self.raw_writer.add("usage_events", usage_rows, USAGE_RAW_COLUMNS)
        if token_rows:
            self.raw_writer.add("token_events", token_rows, TOKEN_RAW_COLUMNS)
        return changed, account if account_touched else None, rejected

    def _billing_input(self, account: AccountState, kind: str, record: dict) -> list[str]:
        try:
            if kind == "accounts":
                return self.billing.command(account, record["name"], record["value"])
            return self.billing.payment(account, record["name"], record["value"])
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            return [f"malformed {kind} record: {exc!r}"]

    def _count(self, state: UsageState, meter: MeterDef, record: dict) -> None:
        value, unique_value = meter.extract(record)
        late = state.add(
            meter,
            dims_key(meter.group_dims(record["dimensions"])),
            value,
            unique_value,
            record["timestamp"],
            record["event_id"],
        )
        self.stats.counted += 1
        if late:
            self.stats.late += 1

    def _count_tokens(self, state: UsageState, record: dict) -> None:
        key = dims_key({"model": record["model"]})
        for field, meter in TOKEN_METERS.items():
            state.add(
                meter, key, Decimal(record[field]), None, record["timestamp"], record["event_id"]
            )
        self.stats.counted += 1

    def _check(self, kind: str, record: dict, now_ms: int) -> str | None:
        if kind not in SCHEMA:
            return None
        reason = self.limits.check(record["timestamp"], now_ms)
        # Billing an unpriced model at zero would be silent revenue loss.
        if (
            reason is None
            and kind == "tokens"
            and self.prices.price_at(record["model"], record["timestamp"]) is None
        ):
            reason = f"model {record['model']!r} has no price in force at that time"
        return reason

    async def _forward(
        self, kind: str, customer: str, home: int, record: dict, original: bytes
    ) -> None:
        self.stats.forwarded += 1
        # An envelope may hold several customers: usage and token events are re-encoded one
        # by one; account commands and payments are single records, forwarded as they came.
        value = self.codec.encode(SCHEMA[kind], record) if kind in SCHEMA else original
        await self._rehome[kind].send(key=customer.encode(), value=value, partition=home)

    async def _reject(self, message: Any, reason: str) -> None:
        self.stats.rejected += 1
        await self.dlq.reject(message, reason)

    # -- the sink ---------------------------------------------------------------------------
    async def flush(self) -> int:
        """Writes snapshots of changed windows, then finalises windows past grace. Rows are
        written only once the states they show are durable, so storage never runs ahead of
        what a restart recovers."""
        if self._needs_rebuild:
            self._rebuild()
        if not self._dirty and not self._dirty_accounts:
            return 0
        await self.app.producer.flush()
        written = await self._flush_accounts()
        customers = list(self._dirty)
        plans: list[tuple[UsageState, int]] = []
        rows: list[list[Any]] = []
        for customer in customers:
            state = self.states.get(customer)
            if state is None:
                continue
            target = state.close_target(self.grace_ms)
            closing = {k for k in state.windows if k[2] < target}
            state.dirty |= closing
            rows.extend(snapshot_row(s) for s in state.snapshots())
            plans.append((state, target))
        if rows:
            self.writer.add("usage_minute", rows, MINUTE_COLUMNS)
            await self.writer.aflush()
        for state, target in plans:
            closed = state.evict_closed(target)
            had_corrections = bool(state.corrections)
            # Published before the state forgets them: a crash here re-publishes the same
            # records (same ids), which consumers treat as the same fact.
            for record in aggregate_records(state, closed):
                await self._aggregates.send(
                    key=state.customer_id.encode(), value=json.dumps(record).encode()
                )
            state.corrections.clear()
            state.dirty.clear()
            if closed or had_corrections:
                state.version += 1
                self.states[state.customer_id] = state
        self._dirty.difference_update(customers)
        self.stats.rows_written += len(rows) + written
        self.stats.last_flush_ms = int(time.time() * 1000)
        return len(rows) + written

    def tick_accounts(self, now_ms: int, owned: set[int]) -> int:
        """Lets time pass for accounts of the partitions this worker owns (a revoked
        partition's account may linger in memory; writing it would make a second writer)."""
        ticked = 0
        for customer, account in list(self.accounts.items()):
            if account is None or home_partition(customer, self.partitions) not in owned:
                continue
            fx = account.account.tick(now_ms)
            if fx.entries or fx.topups or fx.alerts or fx.invoices or fx.payments:
                account.record(fx)
                account.version += 1
                self.accounts[customer] = account
                self._dirty_accounts.add(customer)
                ticked += 1
        return ticked

    async def _flush_accounts(self) -> int:
        """Stores and publishes account effects waiting in outboxes (their states are durable:
        the caller flushed the producer), then clears the outboxes."""
        flushed: list[AccountState] = []
        written = 0
        for customer in list(self._dirty_accounts):
            account = self.accounts.get(customer)
            if account is None or not account.has_outbox:
                continue
            for table, (columns, rows) in outbox_rows(account).items():
                self.writer.add(table, rows, columns)
                written += len(rows)
            flushed.append(account)
        if self.writer.pending:
            await self.writer.aflush()
        for account in flushed:
            for kind, record in outbound_records(account):
                await self._outbound[kind].send(
                    key=account.customer_id.encode(), value=to_json(record)
                )
            account.clear_outbox()
            account.version += 1
            self.accounts[account.customer_id] = account
        self._dirty_accounts.clear()
        return written
