"""`meterline benchmark-dedup`: the dedup store stays flat once the stream is longer than the
horizon. Drives the same chunk lifecycle as the usage pipeline (one chunk per customer per
batch, written to a table, expired past the horizon and deleted) with distinct event ids and
prints the store's size at checkpoints. Figures, not assertions."""

from __future__ import annotations

import gc
import resource
import time

from rich.console import Console
from rich.table import Table

from meterline.metering.dedup import Chunk, DedupIndex, chunk_key


def run_dedup_benchmark(
    events: int = 1_000_000,
    customers: int = 100,
    horizon_events: int = 200_000,
    batch: int = 2_000,
    console: Console | None = None,
) -> list[dict[str, float]]:
    """Event time advances 1 s per event, so the horizon spans ``horizon_events`` events."""
    console = console or Console()
    step_ms = 1_000
    index = DedupIndex(horizon_ms=horizon_events * step_ms)
    table: dict[str, dict] = {}  # what the Faust table holds: chunk key -> chunk
    seqs = dict.fromkeys((f"c{i}" for i in range(customers)), 0)
    marks: list[dict[str, float]] = []
    checkpoint = events // 10
    started = time.perf_counter()
    for first in range(0, events, batch):
        per_customer: dict[str, dict[str, str]] = {}
        for n in range(first, min(first + batch, events)):
            customer = f"c{n % customers}"
            per_customer.setdefault(customer, {})[f"evt-{n:09d}"] = f"usage/0@{n}.0"
        watermark = (first + batch) * step_ms
        for customer, ids in per_customer.items():
            key = chunk_key(customer, seqs[customer])
            seqs[customer] += 1
            chunk = Chunk(key, customer, ids, watermark)
            table[key] = chunk.to_dict()
            index.add(chunk)
            for gone in index.expire(customer, watermark):
                table.pop(gone, None)
        done = first + batch
        if done % checkpoint == 0:
            gc.collect()
            marks.append(
                {
                    "events": done,
                    "ids": index.size,
                    "chunks": len(table),
                    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "seconds": time.perf_counter() - started,
                }
            )
    out = Table(title=f"Dedup store · {events:,} distinct ids · horizon {horizon_events:,} events")
    for col in ("events seen", "ids remembered", "chunks stored", "peak RSS (MB)", "elapsed (s)"):
        out.add_column(col, justify="right")
    for m in marks:
        out.add_row(
            f"{m['events']:,.0f}",
            f"{m['ids']:,.0f}",
            f"{m['chunks']:,.0f}",
            f"{m['rss_mb']:.0f}",
            f"{m['seconds']:.1f}",
        )
    console.print(out)
    after = [m["ids"] for m in marks if m["events"] > horizon_events + batch]
    if after:
        console.print(
            f"after the horizon: ids remembered min {min(after):,.0f} / max {max(after):,.0f} "
            f"(horizon {horizon_events:,}); {events / marks[-1]['seconds']:,.0f} ids/s"
        )
    return marks
