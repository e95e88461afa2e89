"""`meterline benchmark-ingest`: events/s through ``POST /v1/events`` into Kafka, every
request answered only after the broker acknowledged it. Figures, never assertions.

The embedded broker, a `meterline ingest` child process (its own interpreter, as in
production) and an aiohttp client here, all on loopback. Bodies are built before the clock
starts, so the figure is the server's: parse, validate, encode, publish, acknowledge."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
from rich.console import Console
from rich.table import Table

from meterline.embedded.process_stats import cpu_seconds
from meterline.embedded.tansu import TansuBroker, die_with_parent, free_port
from streams import topics
from streams.admin import ensure_topics

BATCH_TYPE = "application/cloudevents-batch+json"


def build_bodies(events: int, batch: int, customers: int, run: str) -> list[bytes]:
    now_ms = time.time_ns() // 1_000_000
    bodies = []
    for start in range(0, events, batch):
        items = [
            {
                "specversion": "1.0",
                "id": f"{run}-{i}",
                "source": "bench",
                "type": "api_calls",
                "subject": f"cust-{i % customers:04d}",
                "time": now_ms - (events - i),
                "data": {"value": "1", "region": "eu" if i % 2 else "us"},
            }
            for i in range(start, min(start + batch, events))
        ]
        bodies.append(json.dumps(items).encode())
    return bodies


async def _drive(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failures
            while queue:
                body = queue.pop()
                t0 = time.perf_counter()
                async with session.post(
                    url, data=body, headers={"Content-Type": BATCH_TYPE}
                ) as response:
                    await response.read()
                    if response.status != 202:
                        failures += 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, failures


def _wait_health(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"meterline ingest exited; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"meterline ingest not up; see {log}")


def run_ingest_benchmark(
    events: int, batch: int, customers: int, concurrency: int, console: Console
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="meterline-bench-ingest-"))
    figures = _run(work, events, batch, customers, concurrency, console)
    # Kept when the run fails: the ingest and broker logs are in it.
    shutil.rmtree(work, ignore_errors=True)
    return figures


def _run(
    work: Path, events: int, batch: int, customers: int, concurrency: int, console: Console
) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with TansuBroker(work / "logs") as broker:
        ensure_topics(broker.bootstrap, 4, names=topics.ALL)
        env = {**os.environ, "METERLINE_BROKER": broker.bootstrap, "METERLINE_INGEST_KEYS": "{}"}
        log = work / "ingest.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "meterline", "ingest", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        try:
            _wait_health(url, proc, log)
            # A warm-up round, so connection set-up and first-use caches are not timed.
            asyncio.run(_drive(f"{url}/v1/events", build_bodies(2000, batch, customers, "w"), 4))
            bodies = build_bodies(events, batch, customers, "run")
            cpu_before = cpu_seconds(proc.pid)
            elapsed, latencies, failures = asyncio.run(
                _drive(f"{url}/v1/events", bodies, concurrency)
            )
            cpu = cpu_seconds(proc.pid) - cpu_before
            load = os.getloadavg()[0]
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    latencies.sort()
    figures = {
        "events_per_s": events / elapsed,
        "requests_per_s": len(bodies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "failures": float(failures),
        "server_cpu_us_per_event": cpu / events * 1e6,
        "events_per_server_cpu_s": events / cpu if cpu else 0.0,
        "load_avg": load,
    }
    title = (
        f"HTTP ingestion: {events} events, batches of {batch}, {concurrency} concurrent "
        f"requests, {customers} customers (acknowledged by the broker)"
    )
    table = Table(title=title)
    columns = ("events/s", "requests/s", "p50 ms", "p99 ms", "non-202", "server CPU µs/event",
               "events per server CPU-second", "load avg")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        f"{figures['events_per_s']:,.0f}",
        f"{figures['requests_per_s']:,.0f}",
        f"{figures['p50_ms']:.1f}",
        f"{figures['p99_ms']:.1f}",
        str(failures),
        f"{figures['server_cpu_us_per_event']:.1f}",
        f"{figures['events_per_server_cpu_s']:,.0f}",
        f"{load:.1f}",
    )
    console.print(table)
    return figures
