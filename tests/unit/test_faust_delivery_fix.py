"""The Faust delivery fix, driven through a stand-in for the consumer methods it wraps.

The end-to-end proof is the SIGKILL tests in tests/integration, which lost records without
it; these pin the two rules: a seek never lands inside one record's hand-off, and a batch
fetched before a seek is not delivered after it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.runtime.batch_delivery import deliver_in_batches
from streams.runtime.delivery_fix import _DeliveryFix, undelivered_starts


@dataclass(frozen=True)
class Record:
    offset: int


class StandInThread:
    """Records the re-fetch requests the fix sends to the consumer thread."""

    def __init__(self) -> None:
        self.refetches: list[dict[Any, int]] = []

    def _ensure_consumer(self) -> None:
        return None

    async def call_thread(self, fun: Any, aio_consumer: Any, starts: dict[Any, int]) -> dict:
        self.refetches.append(dict(starts))
        return {}


class StandInFlowControl:
    def __init__(self) -> None:
        self.clears = 0

    def clear(self) -> None:
        self.clears += 1


class StandInApp:
    def __init__(self) -> None:
        self.flow_control = StandInFlowControl()


class StandInConsumer:
    """Has the methods the fix wraps, with Faust's calling shapes: getmany fetches one batch
    (through _wait_next_records) and yields (tp, record) pairs."""

    def __init__(self, batch: dict[str, list[Record]]) -> None:
        self.batch = batch
        self.seeks = 0
        self.gaps: list[tuple[Any, int, int]] = []
        self._thread = StandInThread()
        self.app = StandInApp()
        self.flow_active = True

    async def seek_to_committed(self) -> dict[Any, int]:
        return {}

    async def _wait_next_records(self, timeout: float) -> tuple[dict[str, list[Record]], None]:
        return self.batch, None

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[str, Record]]:
        records, _active = await self._wait_next_records(timeout)
        for tp, recs in records.items():
            for record in recs:
                yield tp, record

    async def perform_seek(self) -> None:
        self.seeks += 1

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp, offset_from, offset_to))


def test_a_seek_waits_for_the_record_being_handed_on_and_ends_the_old_batch() -> None:
    consumer = StandInConsumer({"usage/0": [Record(o) for o in range(10, 15)]})
    _DeliveryFix(consumer).install()

    async def drain() -> tuple[list[int], bool]:
        handed: list[int] = []
        seek: asyncio.Task[None] | None = None
        seek_done_while_handing = False
        async for _tp, record in consumer.getmany(1.0):
            handed.append(record.offset)
            if seek is None:
                seek = asyncio.create_task(consumer.perform_seek())
            # Faust awaits the record's callback here; the seek must not run meanwhile.
            await asyncio.sleep(0.01)
            seek_done_while_handing |= seek.done()
        assert seek is not None
        await seek
        return handed, seek_done_while_handing

    handed, seek_done_while_handing = asyncio.run(drain())
    assert handed == [10]
    assert not seek_done_while_handing
    assert consumer.seeks == 1
    # The rest is asked back from 11; the thread only moves a position backwards, so this
    # cannot undo the seek to the committed offset.
    assert consumer._thread.refetches == [{"usage/0": 11}]


def test_a_whole_batch_is_delivered_when_no_seek_happens() -> None:
    batch = {"usage/0": [Record(1), Record(2)], "usage/1": [Record(7)]}
    consumer = StandInConsumer(batch)
    _DeliveryFix(consumer).install()

    async def drain() -> list[tuple[str, int]]:
        return [(tp, r.offset) async for tp, r in consumer.getmany(1.0)]

    assert asyncio.run(drain()) == [("usage/0", 1), ("usage/0", 2), ("usage/1", 7)]
    assert consumer._thread.refetches == []


def test_clearing_the_queues_stops_the_batch_and_seeks_again_before_the_next_fetch() -> None:
    consumer = StandInConsumer({"usage/0": [Record(o) for o in range(3)]})
    _DeliveryFix(consumer).install()

    async def drain() -> list[int]:
        handed = []
        async for _tp, record in consumer.getmany(1.0):
            handed.append(record.offset)
            # flow_control.resume() empties the stream queues mid-batch.
            consumer.app.flow_control.clear()
        assert consumer.seeks == 0
        async for _tp, record in consumer.getmany(1.0):
            assert consumer.seeks == 1  # the seek came before any record of the next fetch
            handed.append(record.offset)
        return handed

    assert asyncio.run(drain()) == [0, 0, 1, 2]
    assert consumer.app.flow_control.clears == 1


def test_gaps_still_reach_faust() -> None:
    consumer = StandInConsumer({})
    _DeliveryFix(consumer).install()
    tp = TP("meterline.usage", 0)
    asyncio.run(consumer._add_gap(tp, 3, 9))
    assert consumer.gaps == [(tp, 3, 9)]


def test_undelivered_starts_after_the_last_delivered_offset() -> None:
    fetched: dict[Any, list[Record]] = {
        "a": [Record(5), Record(6), Record(7)],
        "b": [Record(1), Record(2)],
        "c": [Record(9)],
    }
    assert undelivered_starts(fetched, {"a": 5, "b": 2}) == {"a": 6, "c": 9}


@given(
    offsets=st.lists(st.integers(0, 10_000), min_size=1, max_size=50, unique=True),
    cut=st.integers(0, 50),
)
def test_undelivered_starts_is_the_first_offset_not_handed_on(offsets: list[int], cut: int) -> None:
    offsets.sort()
    delivered = offsets[: min(cut, len(offsets))]
    last = {"tp": delivered[-1]} if delivered else {}
    starts = undelivered_starts({"tp": [Record(o) for o in offsets]}, last)
    rest = offsets[len(delivered) :]
    assert starts == ({"tp": rest[0]} if rest else {})


@dataclass
class TopicRecord:
    topic: str
    offset: int


def test_the_pipeline_topics_go_to_the_batch_buffer_and_a_clear_empties_it() -> None:
    usage, other = TP("meterline.usage", 0), TP("other", 0)
    consumer = StandInConsumer({})
    consumer.batch = {
        usage: [TopicRecord(usage.topic, o) for o in (4, 5)],
        other: [TopicRecord(other.topic, 9)],
    }
    consumer._read_offset = defaultdict(lambda: None)
    delivery = deliver_in_batches(consumer.app, [usage.topic], 100)
    _DeliveryFix(consumer).install()

    async def drain() -> list[tuple[Any, int]]:
        return [(tp, r.offset) async for tp, r in consumer.getmany(1.0)]

    assert asyncio.run(drain()) == [(other, 9)]  # Faust's drain loop sees only the others
    assert [r.offset for r in delivery.records] == [4, 5]
    assert consumer._read_offset[usage] == 5 and consumer._thread.refetches == []
    consumer.app.flow_control.clear()  # a rebalance: the buffer goes with the stream queues
    assert delivery.records == [] and consumer.app.flow_control.clears == 1
    asyncio.run(drain())
    assert consumer.seeks == 1  # and the next fetch re-reads from the committed offsets
