"""The harness's own Kafka side: publishing with delivery accounting, the consumer group's
committed offsets (how far the worker has durably applied), and reading an output topic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from meterline.chaos.workload import Msg
from streams.producer import make_producer, send

TP = tuple[str, int]


class Publisher:
    """Three producers, one per route of a message. ``delivered`` is the next offset after
    the last acknowledged record of each partition: the end the worker must reach (read from
    the acknowledgements, not the broker's end offsets, which Tansu reports one short)."""

    def __init__(self, bootstrap: str) -> None:
        self.murmur = make_producer(bootstrap)
        self.crc32 = make_producer(bootstrap, partitioner="consistent")
        self.delivered: dict[TP, int] = {}
        self.sent = 0
        self.failed = 0
        self._lock = threading.Lock()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is not None:
                self.failed += 1
                return
            tp = (msg.topic(), msg.partition())
            offset = msg.offset()
            assert tp[0] is not None and tp[1] is not None and offset is not None
            self.delivered[(tp[0], tp[1])] = max(self.delivered.get((tp[0], tp[1]), 0), offset + 1)

    def publish(self, m: Msg) -> None:
        producer = self.crc32 if m.route == "crc32" else self.murmur
        send(producer, m.topic, m.key, m.value, on_delivery=self._on_delivery)
        self.sent += 1
        if self.sent % 1000 == 0:
            producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        for p in (self.murmur, self.crc32):
            left = p.flush(timeout)
            if left:
                raise RuntimeError(f"{left} records not acknowledged by the broker")

    def ends(self, topics: Iterable[str]) -> dict[TP, int]:
        wanted = set(topics)
        with self._lock:
            return {tp: end for tp, end in self.delivered.items() if tp[0] in wanted}


class GroupProbe:
    """Committed offsets of the workers' consumer group: offsets are committed only after the
    state that applied the records is durable (streams/checkpoint.py, step 5)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )

    def committed(self, tps: Iterable[TP]) -> dict[TP, int]:
        parts = [TopicPartition(t, p) for t, p in tps]
        if not parts:
            return {}
        got = self.consumer.committed(parts, timeout=10)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in got}

    def behind(self, ends: dict[TP, int]) -> int:
        """Records published (up to ``ends``) that the group has not yet committed past."""
        try:
            done = self.committed(ends)
        except Exception:  # a coordinator moving during a rebalance: ask again later
            return -1
        return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())

    def wait_caught_up(self, ends: dict[TP, int], timeout: float) -> float:
        """Seconds until the group committed past ``ends``; raises TimeoutError."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.behind(ends) == 0:
                return time.monotonic() - started
            time.sleep(0.25)
        raise TimeoutError(f"worker still {self.behind(ends)} records behind after {timeout:.0f}s")

    def close(self) -> None:
        self.consumer.close()


def read_topic(bootstrap: str, topic: str, partitions: int, idle: float = 3.0) -> list[Any]:
    """Every record of ``topic`` from the start, as (partition, offset, key, value); reading
    stops after ``idle`` seconds without a record."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-reader-{topic}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out: list[Any] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle:
            for m in c.consume(1000, timeout=0.5):
                if m.error() is not None:
                    continue
                out.append((m.partition(), m.offset(), m.key(), m.value()))
                last = time.monotonic()
    finally:
        c.close()
    return out
