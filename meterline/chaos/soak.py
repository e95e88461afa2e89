"""`meterline chaos --soak 30m`: a steady offered load for a while, sampled as it goes: the
worker's RSS, the changelog topics' records, and event→queryable latency of probe events (a
probe is queryable when its raw row is stored, which every usage surface reads).

Passes when p99 latency stays under 2 s and RSS in the last third of the run is within 20 %
of the first third. The changelog's growth is reported, not judged: Tansu keeps every version
(no compaction, DESIGN.md), so on the embedded broker it grows with the writes by design."""

from __future__ import annotations

import random
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from meterline.embedded.process_stats import cpu_seconds, rss_mib
from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from meterline.quantile import quantile
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics
from streams.producer import USAGE_EVENT, make_producer, send


@dataclass(frozen=True, slots=True)
class SoakSample:
    """One interval of the run, so that a trend shows where it starts and not only its ends."""

    at_seconds: float
    rss_mib: float
    # What chDB's own memory tracker counts of that RSS (it runs inside the worker).
    chdb_mib: float
    # What RocksDB's shared cache and memtables hold of it (rocksdb:// only).
    rocks_mib: float
    changelog: int
    # Records in every topic, and the broker's CPU over the interval (% of one core): Tansu's
    # memory engine costs more per fetch the longer its log, which it never trims.
    broker_records: int
    broker_cpu: float
    active_parts: int
    dedup_ids: int
    # The flush timer's mean write time over the interval: latency not spent waiting for it.
    publish_ms: float
    # Of which (ms per publish): producer flush, raw insert, accounts, windows.
    publish_steps_ms: tuple[float, float, float, float]
    p50: float
    p99: float


@dataclass(slots=True)
class SoakResult:
    seconds: float
    events: int
    state_store: str = ""
    rss_mib: list[float] = field(default_factory=list)
    changelog: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    samples: list[SoakSample] = field(default_factory=list)

    def p(self, q: float) -> float:
        return quantile(self.latencies, q)

    @property
    def rss_growth(self) -> float:
        third = max(1, len(self.rss_mib) // 3)
        first, last = self.rss_mib[:third], self.rss_mib[-third:]
        return statistics.median(last) / statistics.median(first) - 1 if first else 0.0

    @property
    def ok(self) -> bool:
        return bool(self.latencies) and self.p(0.99) < 2.0 and self.rss_growth < 0.2


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", text.strip())
    if m is None:
        raise ValueError(f"duration {text!r}: give e.g. 90s, 30m or 2h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _topic_records(bootstrap: str) -> tuple[int, int]:
    """Records in the changelog topics, and in every topic."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-soak-probe"})
    try:
        meta = c.list_topics(timeout=10)
        changelog = total = 0
        for name, t in meta.topics.items():
            for p in t.partitions:
                records = c.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                total += records
                if "changelog" in name:
                    changelog += records
        return changelog, total
    finally:
        c.close()


def _event(event_id: str, customer: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "meter": "api_calls",
        "value": Decimal(1),
        "timestamp": int(time.time() * 1000),
        "dimensions": {},
    }


# Parts are where a MergeTree that cannot keep up with small inserts shows first.
_PARTS = "SELECT count() FROM system.parts WHERE active AND database = currentDatabase()"


_CHDB_MEMORY = "SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'"


def _interval(duration: float) -> float:
    return max(5.0, duration / 30)


_STEPS = ("producer_flush", "raw", "accounts", "windows")


def _publishes(worker: WorkerProcess, health: dict | None = None) -> tuple[int, float, list[float]]:
    usage = (health if health is not None else worker.health() or {}).get("usage", {})
    return (
        int(usage.get("publishes", 0)),
        float(usage.get("publish_seconds", 0.0)),
        [float(usage.get(f"publish_{k}_seconds", 0.0)) for k in _STEPS],
    )


def _probe(producer: Producer, codec: Codec, worker: WorkerProcess, pid: str) -> float | None:
    """Seconds from a probe event's send to its raw row being queryable; None past 30 s.
    Polled every 50 ms: finer would make the probe a load on chDB of its own."""
    send(producer, topics.USAGE, pid, codec.encode(USAGE_EVENT, _event(pid, pid)))
    producer.poll(0)
    sent = time.monotonic()
    query = f"SELECT count() FROM usage_events WHERE customer_id = '{pid}'"
    while time.monotonic() - sent < 30:
        if int(worker.sql(query)["rows"][0][0]) > 0:
            return time.monotonic() - sent
        time.sleep(0.05)
    return None


def run_soak(
    duration: float,
    rate: float = 500.0,
    customers: int = 50,
    state_store: str = "rocksdb://",
    on_sample: Callable[[SoakSample], None] | None = None,
) -> SoakResult:
    codec = Codec(registry_from_settings(""))
    with (
        tempfile.TemporaryDirectory(prefix="meterline-soak-") as tmp,
        EmbeddedStack(Path(tmp) / "stack") as stack,
    ):
        # The production store by default: with memory:// every event id inside the dedup
        # horizon (35 days) is held in memory, so RSS grows with the traffic by design.
        worker = stack.start_worker(
            METERLINE_CATALOG_FILE=str(DEFAULT_CATALOG_PATH), METERLINE_STATE_STORE=state_store
        )
        producer = make_producer(stack.broker.bootstrap, **{"linger.ms": 0})
        result = SoakResult(duration, 0, state_store)
        stop = threading.Event()

        def load() -> None:
            n, started = 0, time.monotonic()
            while not stop.is_set():
                due = int((time.monotonic() - started) * rate)
                for _ in range(due - n):
                    c = f"soak-{n % customers:03d}"
                    e = _event(f"s-{n}", c)
                    send(producer, topics.USAGE, c, codec.encode(USAGE_EVENT, e))
                    n += 1
                producer.poll(0)
                time.sleep(0.01)
            result.events = n

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        started = time.monotonic()
        probe, since = 0, 0
        publishes = _publishes(worker)
        broker_cpu, cpu_at = cpu_seconds(stack.broker.pid), time.monotonic()
        next_sample = started + _interval(duration)
        jitter = random.Random(0)
        while time.monotonic() - started < duration:
            probe += 1
            latency = _probe(producer, codec, worker, f"probe-{probe}")
            if latency is not None:
                result.latencies.append(latency)
            if time.monotonic() >= next_sample:
                window = result.latencies[since:]
                since = len(result.latencies)
                health = worker.health() or {}
                now = _publishes(worker, health)
                changelog, records = _topic_records(stack.broker.bootstrap)
                cpu, at = cpu_seconds(stack.broker.pid), time.monotonic()
                sample = SoakSample(
                    at_seconds=time.monotonic() - started,
                    rss_mib=rss_mib(worker.proc.pid if worker.proc else None),
                    chdb_mib=int(worker.sql(_CHDB_MEMORY)["rows"][0][0]) / 2**20,
                    rocks_mib=int(health.get("state_store_bytes", 0)) / 2**20,
                    changelog=changelog,
                    broker_records=records,
                    broker_cpu=100 * (cpu - broker_cpu) / max(1e-9, at - cpu_at),
                    active_parts=int(worker.sql(_PARTS)["rows"][0][0]),
                    dedup_ids=int(health.get("dedup_ids", 0)),
                    publish_ms=1000 * (now[1] - publishes[1]) / max(1, now[0] - publishes[0]),
                    publish_steps_ms=tuple(  # type: ignore[arg-type]
                        1000 * (b - a) / max(1, now[0] - publishes[0])
                        for a, b in zip(publishes[2], now[2], strict=True)
                    ),
                    p50=quantile(window, 0.5),
                    p99=quantile(window, 0.99),
                )
                publishes, broker_cpu, cpu_at = now, cpu, at
                result.samples.append(sample)
                result.rss_mib.append(sample.rss_mib)
                result.changelog.append(sample.changelog)
                if on_sample is not None:
                    on_sample(sample)
                next_sample += _interval(duration)
            # Probes at a fixed cadence lock onto the flush timer's phase and measure one
            # point of its cycle; a random gap samples all of it.
            time.sleep(jitter.uniform(0.5, 1.5))
        stop.set()
        loader.join()
        producer.flush(30)
        return result
