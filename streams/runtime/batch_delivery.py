"""The usage agent's input records, delivered in batches below Faust's per-message stream.

Why: Faust hands on every record through a race of four futures (``Service.wait_first`` in
``Consumer._drain_messages``), a lock, a channel queue, an Event and the stream's iterator,
then acks it through the stream: about 65 µs per record here, the whole of the count-only
agent's ceiling. The pipeline works in batches anyway, so for its input topics the delivery
fix's ``getmany`` (delivery_fix.py) puts records here instead of handing them to Faust's
drain loop, and the pipeline's task takes them a batch at a time.

What Faust did for those records, and this keeps (faust-streaming 0.15.3):

1. read offsets and gaps, as ``_drain_messages`` keeps them, under the delivery fix's fence,
   so a seek never lands between accepting a record and moving its read offset;
2. back-pressure: a full buffer holds the fetch loop, as a full stream queue does;
3. flow control: ``flow_control.clear()`` (a rebalance, a stop) empties the buffer as it
   empties the stream queues, and the delivery fix then re-reads from the committed offsets.
   Nothing is taken while flow is stopped; a record of an older consumer generation empties
   the buffer the same way (Faust's stream skips such records);
4. acks: a batch's records are tracked as unacked when taken, so a rebalance's
   ``wait_empty`` waits for the batch in hand, and acked only once the handler has returned,
   that is once the checkpoint made the batch's effects durable. Faust commits only acked
   offsets, and flushes its producer first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from faust.sensors.monitor import Monitor


class BatchDelivery:
    """A buffer between the consumer's fetch loop and one task that takes batches."""

    def __init__(self, app: Any, topics: Iterable[str], maxsize: int) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.maxsize = max(1, maxsize)
        self.records: list[Any] = []
        self._arrived = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        # Set by the delivery fix: asks for a re-read from the committed offsets.
        self.on_discard: Callable[[], None] = lambda: None
        self.discarded = 0

    def diverts(self, topic: str) -> bool:
        return topic in self.topics

    def put_nowait(self, consumer: Any, tp: Any, message: Any) -> bool | None:
        """:meth:`put` without awaiting, for the common case: True when the record was taken
        (or read already). None when it needs :meth:`put`: the buffer is full, or the record
        leaves a gap, which is recorded by an awaited call."""
        if len(self.records) >= self.maxsize:
            return None
        offset = message.offset
        read = consumer._read_offset[tp]
        if read is not None:
            if offset < read:
                return True
            if read and offset - read > 1:
                return None
        self.records.append(message)
        consumer._read_offset[tp] = offset
        self._arrived.set()
        return True

    async def put(self, consumer: Any, tp: Any, message: Any, current: Callable[[], bool]) -> bool:
        """One fetched record, under the delivery fix's fence. False: the buffer was full and,
        meanwhile, flow stopped or the batch went stale (``current()`` false); the record was
        not accepted and the fetched batch must stop."""
        while len(self.records) >= self.maxsize:
            self._space.clear()
            await self._space.wait()
            if not (consumer.flow_active and current()):
                return False
        # 1. As Consumer._drain_messages: a record below the read offset was read already.
        offset = message.offset
        read = consumer._read_offset[tp]
        if read is not None and offset < read:
            return True
        if read and offset - read > 1 and self.app.topics.acks_enabled_for(message.topic):
            await consumer._add_gap(tp, read + 1, offset)
        self.records.append(message)
        consumer._read_offset[tp] = offset
        self._arrived.set()
        return True

    def clear(self) -> None:
        """Flow control cleared the stream queues: the buffered records go with them."""
        self.discarded += len(self.records)
        self.records.clear()
        self._space.set()

    async def take(self, max_: int, within: float) -> list[Any]:
        """The next batch: waits for a record, then up to ``within`` seconds for ``max_``.
        Its records count as unacked until :meth:`ack`."""
        while True:
            while not self.records:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = time.monotonic() + within
            while len(self.records) < max_ and (left := deadline - time.monotonic()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
            batch = self._take_now(max_)
            if batch:
                return batch
            if self.records:  # flow stopped: a rebalance is about to clear them
                await asyncio.sleep(0.05)

    def _take_now(self, max_: int) -> list[Any]:
        app = self.app
        if not self.records or not app.flow_control.is_active():
            return []  # a rebalance: clear() empties the buffer, or already did
        generation = app.consumer_generation_id
        batch = self.records[:max_]
        if any(m.generation_id != generation for m in batch):
            self.clear()
            self.on_discard()
            return []
        del self.records[:max_]
        self._space.set()
        _track(app, batch)
        return batch

    def ack(self, batch: list[Any]) -> None:
        """The batch's effects are durable: Faust may commit past its records."""
        ack = self.app.consumer.ack
        for message in batch:
            ack(message)
        for sensor in _monitors(self.app):
            sensor.messages_active -= len(batch)


def _monitors(app: Any) -> list[Monitor]:
    sensors = getattr(app, "sensors", None)
    return [s for s in sensors or () if type(s).on_message_in is Monitor.on_message_in]


def _track(app: Any, batch: list[Any]) -> None:
    """What ``Consumer.track_message`` does per record, once per batch: the records count as
    unacked (a rebalance's ``wait_empty`` waits for them), and sensors hear of them. Faust's
    own ``Monitor`` gets its counters in one step per batch rather than four dictionary
    updates and a clock read per record (about 3 µs per record, the sensor call included);
    any other sensor is called per record as Faust would."""
    consumer = app.consumer
    for message in batch:
        message.tracked = True
    consumer._unacked_messages.update(batch)
    last: dict[Any, int] = {}
    for message in batch:
        last[message.tp] = message.offset
    # What the stream's sensor records per event: Faust's livelock check reads it, and would
    # otherwise report these partitions as fetched but never processed.
    inbound = getattr(app.monitor, "stream_inbound_time", None)
    if inbound is not None:
        inbound.update(dict.fromkeys(last, time.monotonic()))
    for sensor in getattr(app, "sensors", None) or ():
        if type(sensor).on_message_in is not Monitor.on_message_in:
            for message in batch:
                sensor.on_message_in(message.tp, message.offset, message)
            continue
        sensor.messages_received_total += len(batch)
        sensor.messages_active += len(batch)
        by_topic = sensor.messages_received_by_topic
        for message in batch:
            by_topic[message.topic] += 1
        sensor.tp_read_offsets.update(last)


_ATTR = "_meterline_batch_delivery"


def deliver_in_batches(app: Any, topics: Iterable[str], maxsize: int) -> BatchDelivery:
    """Route ``topics`` of this app's consumer to a new :class:`BatchDelivery` (the delivery
    fix, installed when the consumer is created, picks it up)."""
    delivery = BatchDelivery(app, topics, maxsize)
    setattr(app, _ATTR, delivery)
    return delivery


def batch_delivery_of(app: Any) -> BatchDelivery | None:
    return getattr(app, _ATTR, None)
