"""The chaos run's one table: every figure that must be zero, and the fault timings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from meterline.chaos.run import ChaosResult
from meterline.chaos.soak import SoakResult, SoakSample


def render(result: ChaosResult, console: Console) -> None:
    f = result.findings
    table = Table(title=f"meterline chaos ({result.seconds:.0f} s)", show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("must be", justify="right")

    def row(name: str, value: object, want: object = 0) -> None:
        ok = value == want
        style = "" if ok or want == "" else "bold red"
        table.add_row(name, f"[{style}]{value}[/]" if style else str(value), str(want))

    row("records published", result.records, "")
    row("unique events (reference)", result.events, "")
    row("top-up answers published", result.topup_answers, "")
    row("lost events", f.lost)
    row("double-counted events", f.doubled)
    row("usage window mismatches (all sizes)", f.window_mismatches)
    row("token usage mismatches", f.token_mismatches)
    row("DLQ rows (ClickHouse)", f.dlq_rows, result.malformed)
    row("DLQ records (meterline.dlq)", f.dlq_topic, result.malformed)
    row("duplicate top-ups", f.duplicate_topups)
    row("top-up mismatches", f.topup_mismatches)
    row("balance mismatches", f.balance_mismatches)
    row("ledger-identity failures", f.ledger_identity_failures)
    row("ledger entry mismatches", f.ledger_mismatches)
    row("invoice mismatches", f.invoice_mismatches)
    row("payment mismatches", f.payment_mismatches)
    row("alert mismatches", f.alert_mismatches)
    row("aggregates topic mismatches", f.aggregate_mismatches)
    row("worker SIGKILLs", result.faults.kills, "")
    row("worker restarts", result.faults.restarts, "")
    for label, seconds in result.faults.catch_up:
        row(f"catch-up after {label}", f"{seconds:.1f} s", "")
    console.print(table)
    for what, examples in f.details.items():
        for text in examples:
            console.print(f"[red]{what}[/]: {text}")
    for note in result.faults.notes:
        console.print(f"[dim]{note}[/]")


def soak_line(s: SoakSample) -> str:
    steps = "/".join(f"{t:.0f}" for t in s.publish_steps_ms)
    return (
        f"{s.at_seconds:7.0f} s  p50 {s.p50:5.2f} s  p99 {s.p99:5.2f} s  "
        f"publish {s.publish_ms:4.0f} ms ({steps})  "
        f"RSS {s.rss_mib:4.0f} MiB (chDB {s.chdb_mib:3.0f}, RocksDB {s.rocks_mib:3.0f})  "
        f"parts {s.active_parts:3d}  "
        f"ids {s.dedup_ids:,}  changelog {s.changelog:,}  "
        f"broker {s.broker_cpu:3.0f} % CPU, {s.broker_records:,} records"
    )


def render_soak(result: SoakResult, console: Console) -> None:
    table = Table(title=f"meterline chaos --soak ({result.seconds:.0f} s)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rss = result.rss_mib
    table.add_row("worker state store", result.state_store)
    table.add_row("events offered", f"{result.events:,}")
    table.add_row("probes", str(len(result.latencies)))
    table.add_row("event→queryable p50 / p99", f"{result.p(0.5):.2f} s / {result.p(0.99):.2f} s")
    if rss:
        table.add_row("worker RSS first / last (MiB)", f"{rss[0]:.0f} / {rss[-1]:.0f}")
        table.add_row("RSS growth (last third vs first)", f"{result.rss_growth:+.1%}")
    if result.changelog:
        per_min = (result.changelog[-1] - result.changelog[0]) / max(1.0, result.seconds / 60)
        table.add_row(
            "changelog records first / last", f"{result.changelog[0]:,} / {result.changelog[-1]:,}"
        )
        table.add_row("changelog growth (records/min; Tansu never compacts)", f"{per_min:,.0f}")
    if result.samples:
        first, last = result.samples[0], result.samples[-1]
        table.add_row(
            "broker CPU first / last interval (Tansu, % of a core)",
            f"{first.broker_cpu:.0f} / {last.broker_cpu:.0f}",
        )
        table.add_row("broker records at the end (every topic)", f"{last.broker_records:,}")
    table.add_row("verdict (p99 < 2 s, RSS flat ±20 %)", "ok" if result.ok else "[bold red]FAIL[/]")
    console.print(table)
