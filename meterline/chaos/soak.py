"""`meterline chaos --soak 30m`: a steady offered load for a while, sampled as it goes: the
worker's RSS, the changelog topics' records, and event→queryable latency of probe events (a
probe is queryable when its raw row is stored, which every usage surface reads).

Passes when p99 latency stays under 2 s and RSS in the last third of the run is within 20 %
of the first third. The changelog's growth is reported, not judged: Tansu keeps every version
(no compaction, DESIGN.md), so on the embedded broker it grows with the writes by design."""

from __future__ import annotations

import re
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from schemas.codec import Codec
from schemas.registry import registry_from_settings
from streams import topics
from streams.producer import USAGE_EVENT, make_producer, send


@dataclass(slots=True)
class SoakResult:
    seconds: float
    events: int
    rss_mib: list[float] = field(default_factory=list)
    changelog: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, round(q * (len(s) - 1)))]

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


def _rss_mib(worker: WorkerProcess) -> float:
    assert worker.proc is not None
    for line in Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _changelog_records(bootstrap: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-soak-probe"})
    try:
        meta = c.list_topics(timeout=10)
        total = 0
        for name, t in meta.topics.items():
            if "changelog" in name:
                for p in t.partitions:
                    total += c.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
        return total
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


def run_soak(duration: float, rate: float = 500.0, customers: int = 50) -> SoakResult:
    codec = Codec(registry_from_settings(""))
    with (
        tempfile.TemporaryDirectory(prefix="meterline-soak-") as tmp,
        EmbeddedStack(Path(tmp) / "stack") as stack,
    ):
        worker = stack.start_worker(METERLINE_CATALOG_FILE=str(DEFAULT_CATALOG_PATH))
        producer = make_producer(stack.broker.bootstrap, **{"linger.ms": 0})
        result = SoakResult(duration, 0)
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
        probe = 0
        next_sample = started
        while time.monotonic() - started < duration:
            probe += 1
            pid = f"probe-{probe}"
            e = _event(pid, pid)
            sent = time.monotonic()
            send(producer, topics.USAGE, pid, codec.encode(USAGE_EVENT, e))
            producer.poll(0)
            while time.monotonic() - sent < 30:
                q = f"SELECT count() FROM usage_events WHERE customer_id = '{pid}'"
                if int(worker.sql(q)["rows"][0][0]) > 0:
                    result.latencies.append(time.monotonic() - sent)
                    break
                time.sleep(0.02)
            if time.monotonic() >= next_sample:
                result.rss_mib.append(_rss_mib(worker))
                result.changelog.append(_changelog_records(stack.broker.bootstrap))
                next_sample += max(5.0, duration / 30)
            time.sleep(1.0)
        stop.set()
        loader.join()
        producer.flush(30)
        return result
