"""`meterline benchmark-proxy --outage 30`: a broker outage in the middle of a proxy load, then
proof that every completed response is billed exactly once.

The embedded broker keeps its log in memory, so the outage is a relay in front of it that is
cut (every connection closed, new ones refused) and restored; the broker advertises the
relay, so the proxy's producer loses the broker completely. Load runs open-loop throughout.
Afterwards the proxy's spool must drain, the topic must hold every completed response's id,
and a worker started on it must count each once in ClickHouse (raw ``token_events`` rows, no
FINAL: a row written twice would show).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from rich.console import Console
from rich.table import Table

from meterline.embedded.relay import Relay
from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.proxy.benchmark import BODY, _stop, open_loop, start_upstream_and_proxy
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics

CUSTOMER = "outage-bench"


@dataclass
class OutageRun:
    completed: set[str] = field(default_factory=set)  # response ids answered 200
    failed: int = 0
    cut_at: float = 0.0
    restored_at: float = 0.0
    peak_spooled: int = 0
    caught_up_after: float = float("nan")  # seconds from restore to a steady spool again


async def _load(
    url: str, health: str, rate: float, seconds: float, relay: Relay, outage: float
) -> OutageRun:
    run = OutageRun()
    headers = {"Authorization": "Bearer ml_bench", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            try:
                async with session.post(url, data=BODY, headers=headers) as r:
                    body = await r.read()
                    if r.status == 200:
                        run.completed.add(json.loads(body)["id"])
                        return
            except aiohttp.ClientError:
                pass
            run.failed += 1

        async def fault() -> None:
            await asyncio.sleep(5)
            run.cut_at = time.monotonic()
            relay.cut()
            await asyncio.sleep(outage)
            relay.restore()
            run.restored_at = time.monotonic()

        async def watch() -> None:
            # Steady state is a spool holding at most ~50 ms of traffic (commits in flight).
            steady = max(2, int(rate * 0.05))
            while True:
                await asyncio.sleep(0.25)
                async with session.get(health) as r:
                    spooled = (await r.json())["spooled"]
                run.peak_spooled = max(run.peak_spooled, spooled)
                if run.restored_at and spooled <= steady:
                    run.caught_up_after = time.monotonic() - run.restored_at
                    return

        fault_task = asyncio.create_task(fault())
        watch_task = asyncio.create_task(watch())
        await open_loop(rate, seconds, one)
        await fault_task
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(watch_task, 120)
    return run


def published_token_ids(bootstrap: str, customer: str | None = None) -> Counter[str]:
    """How many times each TokenEvent id (of ``customer``, or of all) is in the topic."""
    codec = Codec(registry_from_settings(""))
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"outage-bench-{time.time_ns()}",
            "enable.auto.commit": False,
        }
    )
    meta = c.list_topics(topics.TOKENS, timeout=10).topics[topics.TOKENS]
    c.assign([TopicPartition(topics.TOKENS, p, OFFSET_BEGINNING) for p in meta.partitions])
    ids: Counter[str] = Counter()
    idle = 0
    try:
        while idle < 3:
            batch = c.consume(1000, timeout=1.0)
            idle = 0 if batch else idle + 1
            for m in batch:
                if m.error() is None and (customer is None or m.key() == customer.encode()):
                    ids[codec.decode(m.value())[1]["event_id"]] += 1
    finally:
        c.close()
    return ids


def run_outage_benchmark(
    console: Console,
    rate: float = 200,
    outage: float = 30,
    catalog_env: dict[str, str] | None = None,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="meterline-bench-outage-"))
    seconds = outage + 25
    with EmbeddedStack(work / "stack", partitions=2, relay=Relay()) as stack:
        procs: list[subprocess.Popen[bytes]] = []
        try:
            _, proxy = start_upstream_and_proxy(work, stack.bootstrap, CUSTOMER, procs)
            console.print(
                f"{rate:.0f} req/s for {seconds:.0f} s; the broker unreachable from 5 s to "
                f"{5 + outage:.0f} s"
            )
            assert stack.relay is not None
            url = f"{proxy}/v1/chat/completions"
            run = asyncio.run(_load(url, f"{proxy}/health", rate, seconds, stack.relay, outage))
            deadline = time.monotonic() + 180
            while httpx.get(f"{proxy}/health", timeout=5).json()["spooled"] > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("the proxy's spool did not drain in 180 s")
                time.sleep(0.2)
            health = httpx.get(f"{proxy}/health", timeout=5).json()
            ids = published_token_ids(stack.bootstrap, CUSTOMER)
            worker = stack.start_worker(**(catalog_env or {}))
            rows, distinct = _counted(worker, len(run.completed))
        finally:
            for p in reversed(procs):
                _stop(p)
    _report(console, run, health, ids, rows, distinct)


def _counted(worker: WorkerProcess, expected: int, timeout: float = 180) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    q = f"SELECT count(), uniqExact(event_id) FROM token_events WHERE customer_id = '{CUSTOMER}'"
    rows = distinct = 0
    while time.monotonic() < deadline:
        rows, distinct = (int(x) for x in worker.sql(q)["rows"][0])
        if distinct >= expected:
            time.sleep(3)  # a late duplicate would land within the next flush
            rows, distinct = (int(x) for x in worker.sql(q)["rows"][0])
            break
        time.sleep(0.5)
    return rows, distinct


def _report(
    console: Console, run: OutageRun, health: dict, ids: Counter[str], rows: int, distinct: int
) -> None:
    lost = len(run.completed - set(ids))
    table = Table(title=f"broker outage of {run.restored_at - run.cut_at:.1f} s under load")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in (
        ("responses completed (200)", len(run.completed)),
        ("requests failed", run.failed),
        ("delivery failures the proxy saw (retried from the spool)", health["delivery_failures"]),
        ("Kafka producers replaced after the broker fenced one", health["producer_renewals"]),
        ("most responses waiting in the spool", run.peak_spooled),
        ("seconds from the broker's return to a steady spool", f"{run.caught_up_after:.1f}"),
        ("records in meterline.tokens", sum(ids.values())),
        ("completed responses missing from the topic (lost)", lost),
        (
            "records published more than once (deduplicated by the worker)",
            sum(n - 1 for n in ids.values() if n > 1),
        ),
        ("token_events rows (no FINAL)", rows),
        ("distinct event ids counted", distinct),
        ("billed more than once", rows - distinct),
        ("completed but not billed", len(run.completed) - distinct),
    ):
        table.add_row(name, str(value))
    console.print(table)
