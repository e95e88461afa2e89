"""Batch delivery below Faust's stream, driven through stand-ins for the consumer and app
attributes it uses. The end-to-end proof is the SIGKILL, backlog and rebalance tests in
tests/integration; these pin the rules its docstring numbers: read offsets and gaps as Faust
keeps them, back-pressure, a clear empties the buffer, records are tracked when taken and
acked only when the caller says so."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.sensors.monitor import Monitor
from faust.types import TP

from streams.runtime.batch_delivery import BatchDelivery

TOPIC = "meterline.usage"
TP0 = TP(TOPIC, 0)


@dataclass(eq=False)
class Message:
    offset: int
    topic: str = TOPIC
    tp: Any = TP0
    generation_id: int = 1
    tracked: bool = False
    acked: bool = False


@dataclass
class StandInConsumer:
    flow_active: bool = True
    _read_offset: dict[Any, int | None] = field(default_factory=lambda: defaultdict(lambda: None))
    gaps: list[tuple[Any, int, int]] = field(default_factory=list)
    _unacked_messages: set[Any] = field(default_factory=set)

    @property
    def unacked(self) -> set[Any]:
        return self._unacked_messages

    async def _add_gap(self, tp: Any, start: int, end: int) -> None:
        self.gaps.append((tp, start, end))

    def ack(self, message: Message) -> None:
        message.acked = True
        self._unacked_messages.discard(message)


class StandInFlowControl:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


class StandInTopics:
    def acks_enabled_for(self, topic: str) -> bool:
        return True


class StandInApp:
    def __init__(self) -> None:
        self.consumer = StandInConsumer()
        self.flow_control = StandInFlowControl()
        self.topics = StandInTopics()
        self.consumer_generation_id = 1
        self.monitor: Any = None
        self.sensors: list[Any] = []


def always() -> bool:
    return True


def delivery(maxsize: int = 100) -> tuple[BatchDelivery, StandInApp]:
    app = StandInApp()
    return BatchDelivery(app, [TOPIC], maxsize), app


async def put_all(d: BatchDelivery, app: StandInApp, offsets: list[int]) -> None:
    for offset in offsets:
        assert await d.put(app.consumer, TP0, Message(offset), always)


def test_records_come_in_order_with_read_offsets_and_gaps_as_faust_keeps_them() -> None:
    async def run() -> None:
        d, app = delivery()
        await put_all(d, app, [0, 1, 2, 5, 3, 6])  # 3 is below the read offset (5): read
        assert app.consumer._read_offset[TP0] == 6
        assert app.consumer.gaps == [(TP0, 3, 5)]
        batch = await d.take(10, 0.01)
        assert [m.offset for m in batch] == [0, 1, 2, 5, 6]
        assert d.diverts(TOPIC) and not d.diverts("other")

    asyncio.run(run())


def test_the_put_without_await_leaves_gaps_and_a_full_buffer_to_the_awaited_put() -> None:
    async def run() -> None:
        d, app = delivery(maxsize=2)
        consumer = app.consumer
        assert d.put_nowait(consumer, TP0, Message(1)) is True
        assert d.put_nowait(consumer, TP0, Message(5)) is None  # a gap: recorded by put()
        assert d.put_nowait(consumer, TP0, Message(0)) is True  # read already: dropped
        assert d.put_nowait(consumer, TP0, Message(2)) is True
        assert d.put_nowait(consumer, TP0, Message(3)) is None  # full
        assert consumer._read_offset[TP0] == 2 and consumer.gaps == []
        assert [m.offset for m in await d.take(10, 0.01)] == [1, 2]

    asyncio.run(run())


def test_taken_records_are_unacked_until_acked() -> None:
    async def run() -> None:
        d, app = delivery()
        await put_all(d, app, [0, 1, 2])
        batch = await d.take(2, 0.01)
        assert [m.offset for m in batch] == [0, 1]
        assert app.consumer.unacked == set(batch) and all(m.tracked for m in batch)
        d.ack(batch)
        assert not app.consumer.unacked and all(m.acked for m in batch)
        rest = await d.take(2, 0.01)
        assert [m.offset for m in rest] == [2] and not rest[0].acked

    asyncio.run(run())


def test_take_waits_within_for_a_full_batch() -> None:
    async def run() -> None:
        d, app = delivery()
        await put_all(d, app, [0])

        async def later() -> None:
            await asyncio.sleep(0.02)
            await put_all(d, app, [1, 2])

        task = asyncio.create_task(later())
        batch = await d.take(3, 5.0)  # returns as soon as it is full, long before 5 s
        await task
        assert [m.offset for m in batch] == [0, 1, 2]

    asyncio.run(run())


def test_a_full_buffer_holds_the_fetch_until_taken_or_cleared() -> None:
    async def run() -> None:
        d, app = delivery(maxsize=2)
        await put_all(d, app, [0, 1])
        blocked = asyncio.create_task(d.put(app.consumer, TP0, Message(2), always))
        await asyncio.sleep(0.01)
        assert not blocked.done()
        assert [m.offset for m in await d.take(1, 0)] == [0]
        assert await blocked and [m.offset for m in d.records] == [1, 2]

        # A rebalance: flow stops, the queues are cleared; the held record is refused.
        blocked = asyncio.create_task(d.put(app.consumer, TP0, Message(3), always))
        await asyncio.sleep(0.01)
        app.consumer.flow_active = False
        d.clear()
        assert await blocked is False
        assert d.records == [] and d.discarded == 2

    asyncio.run(run())


def test_a_record_held_across_a_seek_is_refused() -> None:
    async def run() -> None:
        d, app = delivery(maxsize=1)
        await put_all(d, app, [0])
        blocked = asyncio.create_task(d.put(app.consumer, TP0, Message(1), lambda: False))
        await asyncio.sleep(0.01)
        await d.take(1, 0)
        assert await blocked is False and d.records == []

    asyncio.run(run())


def test_an_older_generation_empties_the_buffer_and_asks_for_a_reread() -> None:
    async def run() -> None:
        d, app = delivery()
        asked: list[int] = []
        d.on_discard = lambda: asked.append(1)
        await put_all(d, app, [0, 1])
        app.consumer_generation_id = 2
        taking = asyncio.create_task(d.take(10, 0))
        await asyncio.sleep(0.01)
        assert not taking.done() and d.records == [] and asked == [1]
        assert not app.consumer.unacked
        # The delivery fix re-reads from the committed offsets; the new records come through.
        app.consumer._read_offset[TP0] = None
        await d.put(app.consumer, TP0, Message(0, generation_id=2), always)
        assert [m.offset for m in await taking] == [0]

    asyncio.run(run())


def test_nothing_is_taken_while_flow_is_stopped() -> None:
    async def run() -> None:
        d, app = delivery()
        await put_all(d, app, [0])
        app.flow_control.active = False
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(d.take(10, 0), 0.2)
        assert not app.consumer.unacked and len(d.records) == 1
        app.flow_control.active = True
        assert [m.offset for m in await d.take(10, 0)] == [0]

    asyncio.run(run())


class RecordingSensor:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self.seen.append(offset)


def test_sensors_hear_of_taken_records_and_faust_s_monitor_counts_them_once_per_batch() -> None:
    async def run() -> None:
        d, app = delivery()
        monitor, other = Monitor(), RecordingSensor()
        app.monitor, app.sensors = monitor, [monitor, other]
        await put_all(d, app, [0, 1, 2])
        batch = await d.take(10, 0.01)
        assert other.seen == [0, 1, 2]
        assert monitor.messages_received_total == 3 and monitor.messages_active == 3
        assert monitor.messages_received_by_topic[TOPIC] == 3
        assert monitor.tp_read_offsets[TP0] == 2 and TP0 in monitor.stream_inbound_time
        d.ack(batch)
        assert monitor.messages_active == 0

    asyncio.run(run())
