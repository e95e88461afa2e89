"""`meterline benchmark-proxy`: what the proxy adds over calling the upstream directly.

Three processes besides this one: the fake upstream, the proxy (publishing every response's
TokenEvent through its spool to a real embedded Tansu broker, as in production), and the
broker. The load generator here sends non-streamed chat completions open-loop at a fixed rate,
in alternating phases straight to the upstream and through the proxy, and reports latency
percentiles of each and their difference; then streamed chat completions one at a time, for
the time to the first body byte. Figures only: the machine is shared, nothing is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from rich.console import Console
from rich.table import Table

from meterline.embedded.tansu import TansuBroker, die_with_parent, free_port
from streams import topics
from streams.admin import ensure_topics

BODY = b'{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}'
STREAM_BODY = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hello"}]}'


@dataclass
class Samples:
    ms: list[float] = field(default_factory=list)
    errors: int = 0

    def pct(self, p: float) -> float:
        if not self.ms:
            return float("nan")
        s = sorted(self.ms)
        return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            httpx.post(url, content=b"{}", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} not up after {timeout}s")


async def _load(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], rate: float, seconds: float
) -> Samples:
    """Open loop: request i starts at t0 + i/rate whatever the earlier ones are doing."""
    out = Samples()

    async def one() -> None:
        t = time.perf_counter()
        try:
            async with session.post(url, data=BODY, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    out.errors += 1
                    return
        except aiohttp.ClientError:
            out.errors += 1
            return
        out.ms.append((time.perf_counter() - t) * 1000)

    await open_loop(rate, seconds, one)
    return out


async def open_loop(rate: float, seconds: float, one: Callable[[], Awaitable[None]]) -> None:
    """Starts ``one()`` at t0 + i/rate whatever the earlier ones are doing, then waits for all."""
    loop = asyncio.get_running_loop()
    tasks = []
    t0 = loop.time()
    for i in range(int(rate * seconds)):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)


async def _ttfb(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int
) -> Samples:
    out = Samples()
    for _ in range(n):
        t = time.perf_counter()
        # Events 10 ms apart, as tokens arrive from a model: the first byte is then the first
        # event, not a whole stream written at once (whose end the proxy spools first).
        h = {**headers, "x-fake-delay-ms": "10"}
        async with session.post(url, data=STREAM_BODY, headers=h) as r:
            await r.content.readany()
            out.ms.append((time.perf_counter() - t) * 1000)
            await r.read()
    return out


async def _measure(
    upstream: str, proxy: str, rate: float, seconds: float, rounds: int, streams: int
) -> dict[str, Samples]:
    direct_h = {"Authorization": "Bearer sk-direct", "Content-Type": "application/json"}
    proxy_h = {"Authorization": "Bearer ml_bench", "Content-Type": "application/json"}
    results = {k: Samples() for k in ("direct", "proxy", "direct_ttfb", "proxy_ttfb")}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up: connections, the proxy's first encode and spool writes.
        await _load(session, f"{upstream}/v1/chat/completions", direct_h, rate, 1)
        await _load(session, f"{proxy}/v1/chat/completions", proxy_h, rate, 1)
        for _ in range(rounds):
            for name, base, h in (("direct", upstream, direct_h), ("proxy", proxy, proxy_h)):
                s = await _load(session, f"{base}/v1/chat/completions", h, rate, seconds)
                results[name].ms += s.ms
                results[name].errors += s.errors
        for _ in range(rounds):
            for name, base, h in (("direct", upstream, direct_h), ("proxy", proxy, proxy_h)):
                s = await _ttfb(session, f"{base}/v1/chat/completions", h, streams)
                results[f"{name}_ttfb"].ms += s.ms
    return results


def start_upstream_and_proxy(
    work: Path,
    broker: str,
    customer: str,
    procs: list[subprocess.Popen[bytes]],
    extra_env: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Starts the fake upstream and a proxy publishing to ``broker`` (key ``ml_bench`` is
    ``customer``), each appended to ``procs`` for the caller to stop; returns their URLs."""
    upstream_port, proxy_port = free_port(), free_port()
    upstream, proxy = f"http://127.0.0.1:{upstream_port}", f"http://127.0.0.1:{proxy_port}"
    fake = _spawn(["-m", "meterline.proxy.fake_upstream", str(upstream_port)], {}, work / "up.log")
    procs.append(fake)
    _wait_up(f"{upstream}/v1/chat/completions", fake)
    env = {
        "METERLINE_BROKER": broker,
        "METERLINE_PROXY_PORT": str(proxy_port),
        "METERLINE_PROXY_KEYS": json.dumps({"ml_bench": customer}),
        "METERLINE_PROXY_OPENAI_URL": upstream,
        "METERLINE_PROXY_OPENAI_API_KEY": "sk-bench",
        "METERLINE_PROXY_SPOOL_DIR": str(work / "spool"),
        **(extra_env or {}),
    }
    px = _spawn(["-m", "meterline", "proxy"], env, work / "proxy.log")
    procs.append(px)
    _wait_up(f"{proxy}/health", px)
    return upstream, proxy


def run_proxy_benchmark(
    console: Console,
    rate: float = 200,
    seconds: float = 10,
    rounds: int = 2,
    streams: int = 200,
    fsync: bool = True,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="meterline-bench-proxy-"))
    procs: list[subprocess.Popen[bytes]] = []
    with TansuBroker(work / "logs") as broker:
        try:
            ensure_topics(broker.bootstrap, 2, names=topics.ALL)
            fsync_env = {"METERLINE_PROXY_SPOOL_FSYNC": "true" if fsync else "false"}
            upstream, proxy = start_upstream_and_proxy(
                work, broker.bootstrap, "bench", procs, fsync_env
            )
            console.print(
                f"{rate:.0f} req/s, {rounds} × {seconds:.0f} s per path (alternating); "
                f"{rounds} × {streams} streams one at a time; "
                f"spool fsync {'on' if fsync else 'off'}"
            )
            try:
                import uvloop

                res = uvloop.run(_measure(upstream, proxy, rate, seconds, rounds, streams))
            except ImportError:  # pragma: no cover
                res = asyncio.run(_measure(upstream, proxy, rate, seconds, rounds, streams))
            health = httpx.get(f"{proxy}/health", timeout=5).json()
        finally:
            for p in reversed(procs):
                _stop(p)
    _report(console, res, health)


def _report(console: Console, res: dict[str, Samples], health: dict) -> None:
    table = Table(title="proxy overhead (ms)")
    for col in ("", "requests", "errors", "p50", "p90", "p99", "mean"):
        table.add_column(col, justify="right")
    for name, s in res.items():
        mean = statistics.fmean(s.ms) if s.ms else float("nan")
        table.add_row(
            name,
            str(len(s.ms)),
            str(s.errors),
            *(f"{s.pct(p):.2f}" for p in (50, 90, 99)),
            f"{mean:.2f}",
        )
    console.print(table)
    d, p = res["direct"], res["proxy"]
    dt, pt = res["direct_ttfb"], res["proxy_ttfb"]
    console.print(
        f"added latency: p50 {p.pct(50) - d.pct(50):.2f} ms, p99 {p.pct(99) - d.pct(99):.2f} ms"
        f" (targets ≤ 2 / ≤ 10); streaming TTFB added: p50 {pt.pct(50) - dt.pct(50):.2f} ms,"
        f" p99 {pt.pct(99) - dt.pct(99):.2f} ms (target ≤ 5)"
    )
    console.print(
        f"proxy: {health.get('billed')} billed, {health.get('delivered')} delivered to Kafka, "
        f"{health.get('spooled')} still spooled"
    )
