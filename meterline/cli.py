"""The `meterline` command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from meterline.settings import get_settings

app = typer.Typer(add_completion=False, help="Meterline: real-time usage metering and billing.")
console = Console()


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
    from meterline.embedded.stack import EmbeddedStack

    settings = get_settings()
    with EmbeddedStack(data_dir, partitions) as stack:
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
) -> None:
    """Publish JSON lines to TOPIC (key = customer_id)."""
    from schemas.codec import Codec
    from schemas.registry import registry_from_settings
    from streams.producer import (
        BrokerUnreachable,
        check_reachable,
        make_producer,
        produce_lines,
    )

    settings = get_settings()
    codec = Codec(registry_from_settings(settings.schema_registry_url))
    # A record the broker has not acknowledged within 10 s is reported as undelivered, so a
    # dead broker fails the command in seconds rather than librdkafka's default 5 minutes.
    # librdkafka's own connection errors (log level 3) would bury the one line that matters:
    # this command reports what was and was not delivered itself.
    producer = make_producer(settings.broker, **{"message.timeout.ms": 10_000, "log_level": 2})
    try:
        check_reachable(producer, settings.broker)
    except BrokerUnreachable as exc:
        console.print(f"[red]{exc}[/]; nothing was published")
        raise typer.Exit(1) from None
    stream = sys.stdin if file == "-" else open(file, encoding="utf-8")  # noqa: SIM115
    try:
        report = produce_lines(producer, codec, topic, stream, as_json=as_json)
    except ValueError as exc:
        undelivered = producer.flush(15)
        console.print(f"[red]{exc}[/]; records before it were sent, {undelivered} unconfirmed")
        raise typer.Exit(2) from exc
    finally:
        if stream is not sys.stdin:
            stream.close()
    if not report.ok:
        first = report.failed[0] if report.failed else None
        detail = f" (line {first[0]}: {first[1]})" if first else ""
        console.print(
            f"[red]{report.undelivered} of {report.sent} records were NOT acknowledged by the "
            f"broker{detail}[/]; {report.acknowledged} were published to {topic}"
        )
        raise typer.Exit(1)
    console.print(f"published {report.acknowledged} records to {topic} (acknowledged)")


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
            r = httpx.post(f"{_api_url()}/sql", params={"format": fmt}, content=query, timeout=120)
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
) -> None:
    """Usage of one customer from the running worker's API, as a table."""
    r = httpx.get(
        f"{_api_url()}/usage/{customer}", params={"window": window, "meter": meter}, timeout=60
    )
    r.raise_for_status()
    data = r.json()
    table = Table(title=f"{customer} — usage by {window}")
    for c in data["columns"]:
        table.add_column(c)
    for row in data["rows"]:
        table.add_row(*(str(v) for v in row))
    console.print(table)


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


def main() -> None:
    app()
