"""The `meterline` command line."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from meterline.api.keys_cli import keys_app
from meterline.cli_read import api_headers, show_usage
from meterline.cli_read import register as register_read_commands
from meterline.llm.prices_cli import prices_app
from meterline.settings import get_settings

app = typer.Typer(add_completion=False, help="Meterline: real-time usage metering and billing.")
console = Console()
app.add_typer(prices_app, name="prices")
app.add_typer(keys_app, name="keys")  # meterline keys create --admin | --customer ID


@app.command()
def worker(loglevel: str = "WARNING") -> None:
    """Run a worker against the configured Kafka and ClickHouse (METERLINE_* settings)."""
    from meterline.worker import run_worker

    run_worker(get_settings(), loglevel=loglevel)


@app.command()
def dev(
    data_dir: Annotated[Path, typer.Option(help="where the embedded store lives")] = Path(
        ".meterline/dev"
    ),
    partitions: int = 4,
) -> None:
    """Embedded broker + worker + HTTP API in the foreground until Ctrl-C."""
    from meterline.embedded.stack import DataDirBusy, EmbeddedStack

    # A parent may start us with SIGINT ignored (a shell's background job, a test runner's
    # child), which Python then leaves ignored: Ctrl-C would stop nothing. Seen in CI.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    settings = get_settings()
    with contextlib.ExitStack() as scope:
        try:
            stack = scope.enter_context(EmbeddedStack(data_dir, partitions))
        except DataDirBusy as exc:  # names the process (pid, command) holding the directory
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
        worker_proc = stack.start_worker(METERLINE_WEB_PORT=str(settings.web_port))
        console.print(f"[bold]broker[/]  {stack.broker.bootstrap}")
        console.print(f"[bold]api[/]     {worker_proc.url}  (dashboard at /, SQL at POST /sql)")
        console.print(
            f"publish:  METERLINE_BROKER={stack.broker.bootstrap} meterline produce "
            "meterline.usage events.jsonl"
        )
        console.print("Ctrl-C stops everything.")
        try:
            while worker_proc.proc is not None and worker_proc.proc.poll() is None:
                time.sleep(0.5)
            console.print("[red]worker exited[/]; see", worker_proc.log_path)
        except KeyboardInterrupt:
            console.print("stopping…")


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option()] = Path(".meterline/demo"),
) -> None:
    """Embedded stack, a sample day of usage for a few customers, totals from ClickHouse."""
    from meterline.demo import run_demo

    raise typer.Exit(run_demo(data_dir, console))


@app.command()
def produce(
    topic: str,
    file: Annotated[str, typer.Argument(help="JSON lines file, or - for stdin")],
    as_json: Annotated[bool, typer.Option("--json", help="send JSON, not Avro")] = False,
    batch: Annotated[
        int, typer.Option(help="envelopes of up to N events per customer (usage, tokens)")
    ] = 1,
) -> None:
    """Publish JSON lines to TOPIC (key = customer_id); exit 0 only if all were acknowledged."""
    from meterline.client.produce_command import run_produce

    raise typer.Exit(run_produce(get_settings(), console, topic, file, as_json, batch))


@app.command()
def proxy(
    host: Annotated[str | None, typer.Option(help="bind address (METERLINE_PROXY_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (METERLINE_PROXY_PORT)")] = None,
) -> None:
    """LLM proxy: OpenAI- and Anthropic-compatible pass-through that bills every response."""
    from meterline.proxy.run import RefusedToListen, run_proxy

    settings = get_settings()
    overrides = {"proxy_host": host, "proxy_port": port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})

    def ready(url: str) -> None:
        console.print(f"[bold]proxy[/]   {url}  (OpenAI base_url {url}/v1, Anthropic {url})")
        console.print(f"publishing token events to {settings.broker}; Ctrl-C stops.")

    try:
        run_proxy(settings, ready)
    except RefusedToListen as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@app.command("benchmark-proxy")
def benchmark_proxy(
    rate: float = 200,
    seconds: float = 10,
    rounds: int = 2,
    streams: int = 200,
    fsync: Annotated[bool, typer.Option(help="fsync every spool commit (the default)")] = True,
    outage: Annotated[
        float,
        typer.Option(
            help="instead: cut the broker off for this many seconds under load, "
            "then check every response is billed once"
        ),
    ] = 0,
) -> None:
    """Latency the LLM proxy adds over the (fake) upstream, and streaming TTFB added."""
    if outage > 0:
        from meterline.benchmark_billing import CATALOG_ENV
        from meterline.proxy.benchmark_outage import run_outage_benchmark

        run_outage_benchmark(console, rate=rate, outage=outage, catalog_env=CATALOG_ENV)
        return
    from meterline.proxy.benchmark import run_proxy_benchmark

    run_proxy_benchmark(
        console, rate=rate, seconds=seconds, rounds=rounds, streams=streams, fsync=fsync
    )


def _api_url() -> str:
    s = get_settings()
    return f"http://{s.web_host}:{s.web_port}"


@app.command()
def sql(
    query: str,
    fmt: Annotated[str, typer.Option("--format", help="tsv or json")] = "tsv",
) -> None:
    """Run SQL against the configured ClickHouse (through the worker for the embedded store)."""
    settings = get_settings()
    if settings.clickhouse_dsn.startswith("chdb:"):
        try:
            r = httpx.post(
                f"{_api_url()}/sql",
                params={"format": fmt},
                content=query,
                headers=api_headers(),
                timeout=120,
            )
        except httpx.HTTPError:
            r = None
        if r is not None:
            if r.status_code != 200:
                console.print(f"[red]{r.text}[/]")
                raise typer.Exit(1)
            sys.stdout.write(r.text if r.text.endswith("\n") else r.text + "\n")
            return
    from sinks.client import connect
    from sinks.query import query_rows, to_json, to_tsv

    columns, rows = query_rows(connect(settings.clickhouse_dsn), query)
    sys.stdout.write((to_tsv if fmt == "tsv" else to_json)(columns, rows) + "\n")


@app.command()
def usage(
    customer: str,
    window: Annotated[str, typer.Option(help="minute, hour, day or month")] = "day",
    meter: str = "",
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    """Usage of one customer from the running worker's API, as a table."""
    show_usage(customer, window, meter, as_json)


@app.command()
def benchmark(
    events: int = 60_000,
    customers: int = 50,
    rounds: int = 3,
) -> None:
    """Ceiling (a Faust agent that only counts) vs this pipeline, on the embedded stack."""
    from meterline.benchmark import run_benchmark

    run_benchmark(events=events, customers=customers, console=console, rounds=rounds)


@app.command("benchmark-restart")
def benchmark_restart(
    customers: int = 100_000,
    accounts: Annotated[bool, typer.Option(help="give every customer a Lora account")] = True,
    store: Annotated[list[str] | None, typer.Option(help="memory:// and/or rocksdb://")] = None,
) -> None:
    """Time to ready of a worker holding many customers' state, per state store."""
    from meterline.benchmark_restart import run_restart_benchmark

    stores = tuple(store) if store else ("memory://", "rocksdb://")
    run_restart_benchmark(customers, console, stores=stores, accounts=accounts)


@app.command("benchmark-state")
def benchmark_state(
    months: Annotated[list[int] | None, typer.Option(help="account ages in months")] = None,
) -> None:
    """Per-event billing cost and state size of an account aged 1, 12 and 24 months."""
    from meterline.benchmark_state import run_state_benchmark

    run_state_benchmark(tuple(months) if months else (1, 12, 24), console)


@app.command("benchmark-analytics")
def benchmark_analytics(
    size: Annotated[list[int] | None, typer.Option(help="raw events in the store")] = None,
    rounds: int = 5,
    growing: Annotated[
        bool, typer.Option(help="history grows with size at a fixed daily rate (else 35 days)")
    ] = False,
) -> None:
    """Analytics query latency over 1M and 10M raw events (old views beside the new)."""
    from meterline.benchmark_analytics import SIZES, run_analytics_benchmark

    sizes = tuple(size) if size else SIZES
    run_analytics_benchmark(sizes, console, rounds=rounds, days=None if growing else 35)


@app.command("benchmark-dedup")
def benchmark_dedup(
    events: int = 1_000_000,
    horizon_events: int = 200_000,
    customers: int = 100,
) -> None:
    """Dedup store size over a stream longer than the dedup horizon (stays flat)."""
    from meterline.benchmark_dedup import run_dedup_benchmark

    run_dedup_benchmark(events, customers, horizon_events, console=console)


@app.command()
def ingest(
    host: Annotated[str | None, typer.Option(help="default METERLINE_INGEST_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default METERLINE_INGEST_PORT")] = None,
) -> None:
    """HTTP ingestion only: CloudEvents, Stripe meter events, gateway feeds → Kafka."""
    from meterline.ingest.server import run_ingest
    from streams.producer import BrokerUnreachable

    settings = get_settings()
    try:
        run_ingest(
            settings,
            host or settings.ingest_host,
            settings.ingest_port if port is None else port,
            announce=console.print,
        )
    except (BrokerUnreachable, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


@app.command("benchmark-producer")
def benchmark_producer(
    single_events: int = 50_000,
    batched_events: int = 200_000,
    batch: int = 100,
    customers: int = 50,
    rounds: int = 3,
) -> None:
    """Producer client: events/s acknowledged, single events vs envelopes (embedded broker)."""
    from meterline.benchmark_producer import run_producer_benchmark

    run_producer_benchmark(console, single_events, batched_events, batch, customers, rounds)


@app.command("benchmark-broker")
def benchmark_broker(
    sizes: Annotated[str, typer.Option(help="log sizes, comma-separated")] = "0,200000,600000",
    rate: float = 500.0,
    seconds: float = 12.0,
) -> None:
    """The embedded broker's CPU under the same steady load as its log grows (no worker)."""
    from meterline.benchmark_broker import run_broker_benchmark

    run_broker_benchmark(console, [int(s) for s in sizes.split(",") if s.strip()], rate, seconds)


@app.command("benchmark-ingest")
def benchmark_ingest(
    events: int = 200_000,
    batch: int = 100,
    customers: int = 50,
    concurrency: int = 16,
) -> None:
    """HTTP ingestion throughput into Kafka (acknowledged), on the embedded broker."""
    from meterline.ingest.benchmark import run_ingest_benchmark

    run_ingest_benchmark(events, batch, customers, concurrency, console)


@app.command()
def chaos(
    records: int = 200_000,
    kills: int = 5,
    seed: int = 1,
    outage_seconds: float = 30.0,
    soak: Annotated[str | None, typer.Option(help="e.g. 30m: steady load instead")] = None,
    soak_store: Annotated[str, typer.Option(help="the soaked worker's state store")] = "rocksdb://",
    soak_rate: Annotated[float, typer.Option(help="events/s offered during a soak")] = 500.0,
    work_dir: Annotated[Path | None, typer.Option(help="kept after the run")] = None,
) -> None:
    """Faults under a Lora workload (SIGKILLs, two workers, a ClickHouse outage), every
    surface compared with a reference; exits 1 unless everything that must be 0 is."""
    from meterline.chaos.report import render, render_soak
    from meterline.chaos.run import ChaosOptions, run_chaos

    if soak is not None:
        from meterline.chaos.report import soak_line
        from meterline.chaos.soak import parse_duration, run_soak

        soaked = run_soak(
            parse_duration(soak),
            rate=soak_rate,
            state_store=soak_store,
            on_sample=lambda s: console.print(soak_line(s), soft_wrap=True),
        )
        render_soak(soaked, console)
        raise typer.Exit(0 if soaked.ok else 1)
    opts = ChaosOptions(records, kills, seed, outage_seconds, work_dir)
    result = run_chaos(opts)
    render(result, console)
    raise typer.Exit(1 if result.failures else 0)


# balance, ledger, invoices, payments, status (usage is above, beside sql).
register_read_commands(app)


def main() -> None:
    app()
