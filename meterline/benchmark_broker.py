"""``meterline benchmark-broker``: what the embedded broker costs as its log grows.

No worker runs. At each log size (records already in the topic, written beforehand at full
speed), the same steady load runs for a while: a producer at ``rate`` records/s and one
aiokafka consumer at the topic's tail (100 ms fetch wait, the worker's setting), and the
broker process's CPU over that time is read from /proc. A second row at each size produces
without the consumer, to tell fetching from producing.

Why it exists: a worker's soak slowed down over the run while its own publish times stayed
flat, and the embedded broker (Tansu's memory engine, which never trims its log: no
retention, no compaction, no DeleteRecords) was the process whose CPU kept rising."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass

import aiokafka
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from meterline.embedded.process_stats import cpu_seconds
from meterline.embedded.tansu import TansuBroker
from meterline.quantile import quantile

__all__ = ["BrokerFigure", "run_broker_benchmark"]

PARTITIONS = 4
_VALUE_BYTES = 200


@dataclass(frozen=True, slots=True)
class BrokerFigure:
    log_records: int
    consuming: bool
    broker_cpu: float  # % of one core over the phase
    p50: float  # produce → consumed, seconds (nan without the consumer)
    p99: float


def _fill(bootstrap: str, topic: str, records: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    value = b"x" * _VALUE_BYTES
    for i in range(records):
        producer.produce(topic, key=str(i % 50).encode(), value=value)
        if i % 1000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError(f"the broker did not acknowledge {topic}'s fill")


def _steady_load(bootstrap: str, topic: str, rate: float, stop: threading.Event) -> None:
    """``rate`` records/s whose values are their send time, until ``stop``."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    sent, started = 0, time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate)
        for _ in range(due - sent):
            stamp = repr(time.time()).encode().ljust(_VALUE_BYTES)
            producer.produce(topic, key=str(sent % 50).encode(), value=stamp)
            sent += 1
        producer.poll(0)
        time.sleep(0.01)
    producer.flush(30)


async def _phase(
    bootstrap: str, pid: int, topic: str, rate: float, seconds: float, consuming: bool
) -> tuple[float, list[float]]:
    consumer = None
    if consuming:
        consumer = aiokafka.AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            fetch_max_wait_ms=100,
            auto_offset_reset="latest",
        )
        await consumer.start()
        await consumer.getmany(timeout_ms=2000)  # assigned and at the tail
    stop = threading.Event()
    loader = threading.Thread(target=_steady_load, args=(bootstrap, topic, rate, stop))
    latencies: list[float] = []
    cpu, started = cpu_seconds(pid), time.monotonic()
    loader.start()
    try:
        while time.monotonic() - started < seconds:
            if consumer is None:
                await asyncio.sleep(0.1)
                continue
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            latencies.extend(now - float(r.value) for rs in batch.values() for r in rs)
        used = 100 * (cpu_seconds(pid) - cpu) / (time.monotonic() - started)
    finally:
        stop.set()
        loader.join()
        if consumer is not None:
            await consumer.stop()
    return used, latencies


async def _run(
    bootstrap: str, pid: int, sizes: list[int], rate: float, seconds: float
) -> list[BrokerFigure]:
    topic = "bench-broker-log"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result()
    figures, stored = [], 0
    for size in sorted(sizes):
        # Each phase adds rate × seconds records of its own; the fill tops up to the size.
        if size > stored:
            _fill(bootstrap, topic, size - stored)
            stored = size
        for consuming in (True, False):
            cpu, lat = await _phase(bootstrap, pid, topic, rate, seconds, consuming)
            stored += int(rate * seconds)
            figures.append(
                BrokerFigure(size, consuming, cpu, quantile(lat, 0.5), quantile(lat, 0.99))
            )
    return figures


def run_broker_benchmark(
    console: Console, sizes: list[int], rate: float = 500.0, seconds: float = 12.0
) -> list[BrokerFigure]:
    with tempfile.TemporaryDirectory(prefix="meterline-broker-") as tmp, TansuBroker(tmp) as broker:
        assert broker.pid is not None
        figures = asyncio.run(_run(broker.bootstrap, broker.pid, sizes, rate, seconds))
    table = Table(title=f"Embedded broker · {rate:.0f} records/s for {seconds:.0f} s at each size")
    for column in ("records in the log", "load", "broker CPU (% of a core)", "p50 / p99"):
        table.add_column(column, justify="right")
    for f in figures:
        load = "produce + tail fetch" if f.consuming else "produce only"
        lat = f"{f.p50 * 1000:.0f} / {f.p99 * 1000:.0f} ms" if f.consuming else ""
        table.add_row(f"{f.log_records:,}", load, f"{f.broker_cpu:.0f}", lat)
    console.print(table)
    fetching = [f.broker_cpu for f in figures if f.consuming]
    if len(fetching) > 1 and fetching[0] > 0:
        console.print(
            f"broker CPU with the consumer, largest log ÷ empty: "
            f"{fetching[-1] / fetching[0]:.1f}× (median {statistics.median(fetching):.0f} %)"
        )
    return figures
