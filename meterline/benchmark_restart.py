"""`meterline benchmark-restart`: how long a worker holding many customers' state takes to be
ready again (partitions assigned, tables recovered), per state store, after a clean stop and
after a SIGKILL. The baseline is a worker started on empty state in the same run.

Tansu does not compact changelogs, so the memory store replays every version of every
customer's state; the RocksDB store keeps state on disk and reads only the changelog written
since its last persisted offset."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from meterline.benchmark_billing import CATALOG_ENV, lora_commands, wait_accounts
from meterline.embedded.process_stats import cpu_seconds
from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.sample_data import DAY_MS
from schemas.codec import Codec
from schemas.names import USAGE_EVENT
from schemas.registry_choice import registry_from_settings
from streams import topics
from streams.producer import make_producer, send


def _probe(stack: EmbeddedStack, name: str) -> None:
    """One usage event waiting for the restarted worker: it has recovered when it counts it."""
    codec = Codec(registry_from_settings(""))
    event = {
        "event_id": f"probe-{name}",
        "customer_id": f"probe-{name}",
        "meter": "image_generations",
        "value": Decimal(1),
        "timestamp": int(time.time() * 1000),
        "dimensions": {},
    }
    producer = make_producer(stack.broker.bootstrap)
    send(producer, topics.USAGE, event["customer_id"], codec.encode(USAGE_EVENT, event))
    producer.flush(30)


@dataclass(frozen=True, slots=True)
class Restart:
    ready: float  # seconds: partitions assigned and tables recovered
    counting: float  # seconds: the first new event counted (after the first checkpoint)
    # Broker CPU seconds from the start to ready: on Tansu a restart's fetches over a long
    # changelog cost the broker more the longer the log (``meterline benchmark-broker``).
    broker_cpu: float


def _ready_after_start(stack: EmbeddedStack, env: dict[str, str]) -> tuple[WorkerProcess, Restart]:
    """The worker, and how long it took to be ready and to count again. Counting again
    also waits for the first checkpoint after recovery (it re-reads the recovered state)."""
    started, cpu = time.monotonic(), cpu_seconds(stack.broker.pid)
    worker = stack.start_worker(wait=False, **env)
    try:
        worker.wait_ready(timeout=600)
        ready = time.monotonic() - started
        broker = cpu_seconds(stack.broker.pid) - cpu
        deadline = time.monotonic() + 600
        while (worker.health() or {}).get("usage", {}).get("counted", 0) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("the probe event was not counted")
            time.sleep(0.1)
    except (RuntimeError, TimeoutError):
        # The work dir goes with the benchmark: say why the worker did not come up first.
        tail = worker.log_path.read_text(errors="replace").splitlines()[-60:]
        print("\n".join(tail), file=sys.stderr)
        raise
    return worker, Restart(ready, time.monotonic() - started, broker)


def _fill(stack: EmbeddedStack, worker: WorkerProcess, customers: int, accounts: bool) -> None:
    codec = Codec(registry_from_settings(""))
    names = [f"r{i:06d}" for i in range(customers)]
    day = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS
    producer = make_producer(stack.broker.bootstrap)
    if accounts:
        for key, value in lora_commands(names, day - 30 * DAY_MS):
            send(producer, topics.ACCOUNTS, key, value)
        producer.flush(300)
        wait_accounts(worker, customers, timeout=1800)
    for i, c in enumerate(names):
        event = {
            "event_id": f"r-{i}",
            "customer_id": c,
            "meter": "image_generations",
            "value": Decimal(1),
            "timestamp": day + i,
            "dimensions": {},
        }
        send(producer, topics.USAGE, c, codec.encode(USAGE_EVENT, event))
    producer.flush(300)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        if (worker.health() or {}).get("usage", {}).get("counted", 0) >= customers:
            break
        time.sleep(1)
    time.sleep(3)  # past a flush interval: every state is durable


def run_restart_benchmark(
    customers: int,
    console: Console,
    stores: tuple[str, ...] = ("memory://", "rocksdb://"),
    accounts: bool = True,
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="meterline-restart-"))
    figures: dict[str, float] = {}
    try:
        for store in stores:
            env = {
                **CATALOG_ENV,
                "METERLINE_STATE_STORE": store,
                "METERLINE_BILLING_TICK_SECONDS": "0",
            }
            name = store.rstrip(":/")
            with (
                console.status(f"{name}: {customers:,} customers"),
                EmbeddedStack(work / name, partitions=4) as stack,
            ):
                _probe(stack, "empty")
                worker, r = _ready_after_start(stack, env)
                figures[f"{name}: start on empty state: ready (s)"] = r.ready
                figures[f"{name}: start on empty state: counting (s)"] = r.counting
                figures[f"{name}: start on empty state: broker CPU until ready (s)"] = r.broker_cpu
                _fill(stack, worker, customers, accounts)
                worker.stop()
                _probe(stack, "clean")
                worker, r = _ready_after_start(stack, env)
                figures[f"{name}: restart after a clean stop: ready (s)"] = r.ready
                figures[f"{name}: restart after a clean stop: counting (s)"] = r.counting
                figures[f"{name}: restart after a clean stop: broker CPU until ready (s)"] = (
                    r.broker_cpu
                )
                worker.kill()
                time.sleep(7)  # the dead member's session expires (6 s)
                _probe(stack, "killed")
                worker, r = _ready_after_start(stack, env)
                figures[f"{name}: restart after SIGKILL: ready (s)"] = r.ready
                figures[f"{name}: restart after SIGKILL: counting (s)"] = r.counting
                figures[f"{name}: restart after SIGKILL: broker CPU until ready (s)"] = r.broker_cpu
                worker.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    what = "usage state, dedup chunks and Lora accounts" if accounts else "usage state"
    table = Table(title=f"Worker restart · {customers:,} customers ({what})")
    table.add_column("figure")
    table.add_column("seconds", justify="right")
    for k, v in figures.items():
        table.add_row(k, f"{v:.1f}")
    console.print(table)
    return figures
