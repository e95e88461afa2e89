"""Make Faust deliver every fetched record of an input partition exactly in offset order.

Why this exists (faust-streaming 0.15.3; measured here after a worker SIGKILL):

1. When table recovery completes, Faust resumes the stream partitions *before* it seeks them
   to their committed offsets (``Recovery.on_recovery_completed``: ``resume_partitions``,
   then ``await perform_seek()``, then ``flow_control.resume()``). The fetcher runs all the
   while, so a batch fetched from the old position is delivered into the stream queues during
   the seek, and ``flow_control.resume()`` then empties those queues. The seek resets the read
   offsets to the committed ones, but the rest of the old batch keeps flowing, so the next
   record looks like an offset jump: ``_drain_messages`` records a gap, and re-fetched records
   below the stale read offset are dropped as already read. The commit passes the gap: records
   that were queued, then cleared, are never processed and never re-read (seen: offsets
   1311..2187 of a partition, about 900 events, silently gone).
2. ``Consumer.getmany`` stops walking a fetched batch when flow control stops or the consumer
   generation changes, and skips records of partitions that are not active at that moment,
   although aiokafka's fetch position has already moved past the whole batch.
3. That seek does not move a partition with no committed offset (aiokafka seeks only to a
   committed offset > 0), so on a fresh group with a backlog, or for a partition that never
   committed before a crash, the queued-then-cleared records of point 1 are lost outright.
4. Faust awaits the seek through ``Service._wait``, so other tasks run between the seek's end
   and ``flow_control.resume()``: the fetcher can queue records read after the seek, which the
   resume then clears. Read offsets have moved on and no gap is recorded; the records are
   just gone (seen once in six runs of a first start on a backlog, three tests at a time,
   with the fix for 1-3 in place).

The fix, per consumer:
- a fence serialises ``perform_seek`` with the delivery of each record (the record's
  hand-off, its callback and Faust's read-offset update), and a batch fetched before a seek
  is not delivered after it, so after a seek delivery restarts with consistent read offsets;
- the seek sends input partitions with nothing committed back to their beginning
  (``consumer_auto_offset_reset`` is earliest);
- clearing the flow-control queues throws records away, so it counts as a seek: the batch in
  hand stops, and before the next fetch the consumer seeks to the committed offsets again;
- a batch abandoned for any reason is re-fetched from its first undelivered record; that seek
  only ever moves a position backwards, so it cannot undo a seek to the committed offset.

Records delivered twice are harmless here (each customer's state records the last input offset
it applied); records never delivered are not. This is a Faust bug, not a broker quirk, so every
app gets the fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import faust
from aiokafka.structs import TopicPartition

from streams.runtime.batch_delivery import batch_delivery_of
from streams.runtime.consumer_hooks import on_consumer_created

logger = logging.getLogger(__name__)

_MARK = "_meterline_faust_delivery_fix"

# The seek runs on the consumer's own thread; if that is wedged the worker has bigger
# problems than this batch.
SEEK_TIMEOUT_SECONDS = 30.0


def undelivered_starts(
    fetched: Mapping[Any, Sequence[Any]], delivered: Mapping[Any, int]
) -> dict[Any, int]:
    """First offset per partition of the fetched records that were not delivered.

    ``fetched`` maps a partition to its records (anything with ``.offset``); ``delivered``
    maps a partition to the last offset handed on. Records are delivered in offset order
    within a partition, so everything after the last delivered one is undelivered."""
    starts: dict[Any, int] = {}
    for tp, records in fetched.items():
        last = delivered.get(tp)
        # Runs after every batch: the usual whole-batch-delivered case costs one comparison.
        if not records or (last is not None and records[-1].offset <= last):
            continue
        starts[tp] = next(r.offset for r in records if last is None or r.offset > last)
    return starts


async def _seek_back(aio_consumer: Any, starts: Mapping[Any, int]) -> dict[Any, tuple[int, int]]:
    # Runs on the consumer thread's loop, where aiokafka's fetcher lives, so the position
    # check and the seek cannot interleave with a fetch.
    subscription = aio_consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    moved: dict[Any, tuple[int, int]] = {}
    if assignment is None or not assignment.active:
        return moved
    for tp, offset in starts.items():
        state = assignment.state_value(tp)
        if state is None or not state.has_valid_position or state.position <= offset:
            continue
        moved[tp] = (state.position, offset)
        aio_consumer.seek(tp, offset)
    return moved


async def _seek_to_start(aio_consumer: Any, partitions: list[TopicPartition]) -> None:
    # A concrete offset, not aiokafka's seek_to_beginning: that leaves the position unset
    # until a reset completes, and Faust's livelock check asserts on an unset position.
    starts = await aio_consumer.beginning_offsets(partitions)
    assigned = aio_consumer.assignment()
    for tp, offset in starts.items():
        if tp in assigned:
            aio_consumer.seek(tp, offset)


class _DeliveryFix:
    """The per-consumer state of the fix; its methods shadow the consumer's own."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.fence = asyncio.Lock()
        self.seeks = 0
        self.reseek_pending = False
        self.fetched: Mapping[Any, Sequence[Any]] = {}
        self._wait_next_records = consumer._wait_next_records
        self._getmany = consumer.getmany
        self._perform_seek = consumer.perform_seek
        self._seek_to_committed = consumer.seek_to_committed
        self._add_gap = consumer._add_gap
        # The pipeline's input topics bypass Faust's stream (batch_delivery.py).
        self.batches = batch_delivery_of(consumer.app)

    def install(self) -> None:
        # Instance attributes shadow the methods for this one consumer only;
        # _drain_messages binds self.getmany when the consumer starts, after this runs.
        self.consumer._wait_next_records = self.wait_next_records
        self.consumer.getmany = self.getmany
        self.consumer.perform_seek = self.perform_seek
        self.consumer.seek_to_committed = self.seek_to_committed
        self.consumer._add_gap = self.add_gap
        flow_control = self.consumer.app.flow_control
        self._clear_queues = flow_control.clear
        flow_control.clear = self.clear_queues
        if self.batches is not None:
            self.batches.on_discard = self.discard

    def clear_queues(self) -> None:
        # The stream queues hold delivered, unprocessed records: they must be read again.
        self.discard()
        if self.batches is not None:
            self.batches.clear()
        self._clear_queues()

    def discard(self) -> None:
        # Delivered records were thrown away unprocessed: re-read from the committed offsets.
        self.seeks += 1
        self.reseek_pending = True

    async def wait_next_records(self, timeout: float) -> Any:
        records, active = await self._wait_next_records(timeout)
        self.fetched = records or {}
        return records, active

    async def perform_seek(self) -> None:
        async with self.fence:
            self.seeks += 1
            self.reseek_pending = False
            await self._perform_seek()

    async def seek_to_committed(self) -> Mapping[Any, int | None]:
        committed = await self._seek_to_committed()
        # Changelogs are left to table recovery, which positions them itself.
        fresh = [
            TopicPartition(tp.topic, tp.partition)
            for tp, offset in committed.items()
            if not offset and not self.consumer._is_changelog_tp(tp)
        ]
        if fresh:
            thread = self.consumer._thread
            try:
                await thread.call_thread(_seek_to_start, thread._ensure_consumer(), fresh)
            except Exception:
                logger.exception("could not send uncommitted partitions to their start: %s", fresh)
        return committed

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        if self.reseek_pending and self.consumer.flow_active:
            try:
                await self.perform_seek()
            except Exception:
                # Typically nothing assigned yet; the next fetch tries again.
                logger.warning("could not seek to committed offsets after a clear", exc_info=True)
        self.fetched = {}
        seeks = self.seeks
        delivered: dict[Any, int] = {}
        batches, consumer = self.batches, self.consumer

        def current() -> bool:
            return self.seeks == seeks

        async with aclosing(self._getmany(timeout)) as batch:
            async for tp, message in batch:
                if batches is not None and batches.diverts(tp.topic):
                    # Without awaiting, nothing can seek between the check and the put: the
                    # fence is only needed when it is held, or when the put must wait.
                    accepted = None
                    if self.seeks == seeks and not self.fence.locked():
                        accepted = batches.put_nowait(consumer, tp, message)
                    if accepted is None:
                        async with self.fence:
                            if self.seeks != seeks:
                                logger.info("dropping the rest of a batch fetched before a seek")
                                break
                            accepted = await batches.put(consumer, tp, message, current)
                    if not accepted:
                        break
                    delivered[tp] = message.offset
                    continue
                # Held while the caller hands the record on and updates its read offset, so
                # a seek never lands between the two.
                async with self.fence:
                    if self.seeks != seeks:
                        logger.info("dropping the rest of a batch fetched before a seek")
                        break
                    delivered[tp] = message.offset
                    yield tp, message
        await self._refetch(undelivered_starts(self.fetched, delivered))

    async def _refetch(self, starts: Mapping[Any, int]) -> None:
        if not starts:
            return
        try:
            thread = self.consumer._thread
            moved = await asyncio.wait_for(
                thread.call_thread(_seek_back, thread._ensure_consumer(), starts),
                SEEK_TIMEOUT_SECONDS,
            )
        except Exception:
            logger.exception("could not re-fetch undelivered records %s", starts)
            return
        for tp, (position, offset) in moved.items():
            logger.info(
                "re-fetching %s/%s from %s: fetched to %s but Faust stopped delivering",
                tp.topic,
                tp.partition,
                offset,
                position,
            )

    async def add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # With the fence this should not happen on our input topics (no compaction, no
        # transactions); if it does, Faust's commit will pass these offsets, so say so.
        logger.warning(
            "offsets %s..%s of %s/%s never arrived; Faust's commit will pass them",
            offset_from,
            offset_to,
            tp.topic,
            tp.partition,
        )
        await self._add_gap(tp, offset_from, offset_to)


def apply_faust_delivery_fix(app: faust.App) -> None:
    """Install the fix on this app's consumer (now, or when Faust creates it)."""
    on_consumer_created(app, _MARK, lambda consumer: _DeliveryFix(consumer).install())
