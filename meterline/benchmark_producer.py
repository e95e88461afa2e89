"""``meterline benchmark-producer``: events/s the embedded broker acknowledged through the
producer client, single events vs envelopes of 100 (issue 11), median of rounds.

Each round writes to a fresh topic and is timed from the first ``send`` to ``flush``
returning with every event acknowledged (a round with any undelivered event fails the run),
so the figure includes building, validating and Avro-encoding each event and waiting for
the broker's acknowledgements. No worker runs: this measures the producing side only."""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from meterline.client import MeterlineProducer, UsageEvent
from meterline.embedded.tansu import TansuBroker
from meterline.settings import Settings

__all__ = ["ProducerFigure", "run_producer_benchmark"]

PARTITIONS = 4


@dataclass(frozen=True)
class ProducerFigure:
    mode: str
    batch: int
    events: int
    messages: int
    rates: list[float]  # acknowledged events/s per round

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def _events(n: int, customers: int, run: str) -> list[UsageEvent]:
    t0 = 1_767_225_600_000
    return [
        UsageEvent(
            event_id=f"{run}-{i}",
            customer_id=f"cust-{i % customers:04d}",
            meter="api_calls",
            value=Decimal("1.5"),
            timestamp=t0 + i,
            dimensions={"region": "eu"},
        )
        for i in range(n)
    ]


def _round(broker: TansuBroker, batch: int, events: int, customers: int) -> tuple[float, int]:
    topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
    broker.create_topics([topic], partitions=PARTITIONS)
    # Built before the clock starts: the figure is about producing, not making test data.
    data = _events(events, customers, topic)
    with MeterlineProducer(
        broker.bootstrap, batch_size=batch, usage_topic=topic, settings=Settings()
    ) as producer:
        started = time.perf_counter()
        producer.send_many(data)
        report = producer.flush(120)  # raises UndeliveredRecords unless all acknowledged
        elapsed = time.perf_counter() - started
    return report.acknowledged / elapsed, report.messages


def run_producer_benchmark(
    console: Console,
    single_events: int = 50_000,
    batched_events: int = 200_000,
    batch: int = 100,
    customers: int = 50,
    rounds: int = 3,
    log_dir: Path | None = None,
) -> list[ProducerFigure]:
    figures: list[ProducerFigure] = []
    with TansuBroker(log_dir) as broker:
        for mode, size, events in (
            ("single events", 1, single_events),
            (f"envelopes of {batch}", batch, batched_events),
        ):
            rates: list[float] = []
            messages = 0
            for r in range(rounds):
                rate, messages = _round(broker, size, events, customers)
                rates.append(rate)
                console.print(f"  {mode}, round {r + 1}: {rate:,.0f} events/s acknowledged")
            figures.append(ProducerFigure(mode, size, events, messages, rates))
    table = Table(title=f"producer client → embedded broker, median of {rounds} rounds")
    for column in ("mode", "events", "Kafka messages", "events/s (median)", "rounds"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for f in figures:
        table.add_row(
            f.mode,
            f"{f.events:,}",
            f"{f.messages:,}",
            f"{f.median:,.0f}",
            ", ".join(f"{r:,.0f}" for r in f.rates),
        )
    console.print(table)
    if len(figures) == 2 and figures[0].median > 0:
        console.print(f"envelopes / single events: {figures[1].median / figures[0].median:.1f}×")
    return figures
