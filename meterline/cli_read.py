"""Read commands of the CLI: ``usage``, ``balance``, ``ledger``, ``invoices``, ``payments`` and
``status``, all through the running worker's HTTP API (the worker owns the embedded store).

Each prints readable tables, or with ``--json`` the API's own JSON unchanged (exact decimals
as strings), for scripts. ``METERLINE_API_KEY`` is sent as ``Authorization: Bearer`` when
set. Exit codes: 0 answered, 1 the worker or broker could not be reached or refused the key,
or the thing asked for does not exist (the API's 404 message is printed)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import httpx
import typer
from confluent_kafka import Consumer, KafkaException, TopicPartition
from rich.console import Console
from rich.table import Table

from meterline.settings import Settings, get_settings
from streams import topics
from streams.kafka_security import security_config

__all__ = ["api_headers", "api_url", "register", "show_usage"]

console = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="print the API's JSON instead of tables")]
Limit = Annotated[int | None, typer.Option(help="at most this many rows (newest first)")]
From = Annotated[str | None, typer.Option("--from", help="epoch ms or ISO-8601 (inclusive)")]
To = Annotated[str | None, typer.Option("--to", help="epoch ms or ISO-8601 (exclusive)")]
# The worker consumes these as group ``app_id``; lag is what it has not committed yet.
LAG_TOPICS = [*topics.INBOUND, *topics.INTERNAL]


class ApiProblem(Exception):
    """The API could not be asked or said no; the message says what to do."""


def api_url(settings: Settings | None = None) -> str:
    s = settings or get_settings()
    return f"http://{s.web_host}:{s.web_port}"


def api_headers(settings: Settings | None = None) -> dict[str, str]:
    key = (settings or get_settings()).api_key.get_secret_value()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _error_text(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip() or r.reason_phrase
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


def api_request(
    method: str, path: str, params: Mapping[str, Any] | None = None, content: str | None = None
) -> httpx.Response:
    """One request to the worker's API; ApiProblem with a readable reason otherwise."""
    url = api_url()
    query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    try:
        r = httpx.request(
            method,
            f"{url}{path}",
            params=query,
            content=content,
            headers=api_headers(),
            timeout=60,
        )
    except httpx.TransportError as exc:
        raise ApiProblem(
            f"no Meterline worker answers at {url} ({type(exc).__name__}): start one "
            "(meterline dev, meterline worker) or set METERLINE_WEB_HOST/METERLINE_WEB_PORT"
        ) from None
    if r.status_code in (401, 403):
        sent = "the key in METERLINE_API_KEY" if api_headers() else "no key (METERLINE_API_KEY)"
        raise ApiProblem(f"{url}{path}: refused ({r.status_code}) with {sent}: {_error_text(r)}")
    if r.status_code != 200:
        raise ApiProblem(f"{url}{path}: {r.status_code}: {_error_text(r)}")
    return r


def _get(path: str, as_json: bool, **params: Any) -> Any | None:
    """The decoded body, or None after printing it raw for ``--json``; exits 1 on problems."""
    try:
        r = api_request("GET", path, params)
    except ApiProblem as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(r.text if r.text.endswith("\n") else r.text + "\n")
        return None
    return r.json()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _numeric(values: Sequence[Any]) -> bool:
    # Decimals arrive as strings ("12.5"); right-align a column whose values are all numbers.
    def looks(v: Any) -> bool:
        text = str(v)
        return text.lstrip("-").replace(".", "", 1).isdigit()

    present = [v for v in values if v not in (None, "")]
    return bool(present) and all(isinstance(v, int | float) or looks(v) for v in present)


def listing_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        right = _numeric([row[i] for row in rows])
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    if not rows:
        table.caption = "no rows"
    return table


def _print_listing(title: str, body: Mapping[str, Any]) -> None:
    columns, rows = list(body["columns"]), body["rows"]
    if not rows:
        console.print(f"{title}: none")
        return
    if "customer_id" in columns:  # the title names the customer already
        i = columns.index("customer_id")
        columns = columns[:i] + columns[i + 1 :]
        rows = [[*row[:i], *row[i + 1 :]] for row in rows]
    console.print(listing_table(title, columns, rows))
    if body.get("truncated"):
        console.print("[yellow]more rows exist: raise --limit or narrow --from/--to[/]")


# --------------------------------------------------------------------------- commands


def show_usage(customer: str, window: str, meter: str, as_json: bool) -> None:
    body = _get(f"/usage/{customer}", as_json, window=window, meter=meter)
    if body is not None:
        _print_listing(f"{customer} — usage by {window}", body)


def balance(customer: str, as_json: JsonFlag = False) -> None:
    """A customer's credit balance (latest)."""
    body = _get(f"/balance/{customer}", as_json)
    if body is None:
        return
    table = Table(title=f"{customer} — balance", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", justify="right")
    for key, value in body.items():
        table.add_row(key, _cell(value))
    console.print(table)


def ledger(
    customer: str,
    kind: Annotated[str | None, typer.Option(help="only entries of this kind")] = None,
    grant: Annotated[str | None, typer.Option(help="only entries of this grant id")] = None,
    limit: Limit = None,
    from_: From = None,
    to: To = None,
    as_json: JsonFlag = False,
) -> None:
    """A customer's credit ledger, newest first."""
    params = {"kind": kind, "grant_id": grant, "limit": limit, "from": from_, "to": to}
    body = _get(f"/ledger/{customer}", as_json, **params)
    if body is not None:
        _print_listing(f"{customer} — credit ledger", body)


def payments(
    customer: str,
    status: Annotated[str | None, typer.Option(help="only this status")] = None,
    processor: Annotated[str | None, typer.Option(help="only this processor")] = None,
    limit: Limit = None,
    from_: From = None,
    to: To = None,
    as_json: JsonFlag = False,
) -> None:
    """A customer's payment outcomes, newest first."""
    params = {"status": status, "processor": processor, "limit": limit, "from": from_, "to": to}
    body = _get(f"/payments/{customer}", as_json, **params)
    if body is not None:
        _print_listing(f"{customer} — payments", body)


def invoices(
    customer: str,
    invoice: Annotated[str | None, typer.Option("--invoice", help="one invoice id")] = None,
    lines: Annotated[bool, typer.Option(help="also print every invoice line")] = True,
    limit: Limit = None,
    from_: From = None,
    to: To = None,
    as_json: JsonFlag = False,
) -> None:
    """A customer's invoices (one summary each) and their lines."""
    params = {"invoice_id": invoice, "limit": limit, "from": from_, "to": to}
    body = _get(f"/invoices/{customer}", as_json, **params)
    if body is None:
        return
    summaries: list[dict[str, Any]] = body.get("invoices", [])
    if not summaries:
        console.print(f"{customer} — invoices: none yet (the first closes at period end)")
        return
    columns = list(dict.fromkeys(k for s in summaries for k in s))
    rows = [[s.get(c) for c in columns] for s in summaries]
    console.print(listing_table(f"{customer} — invoices", columns, rows))
    if lines and body["rows"]:
        _print_listing(f"{customer} — invoice lines", body)


# --------------------------------------------------------------------------- status


def consumer_lag(settings: Settings, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Per partition of the worker's input topics: committed offset of its consumer group,
    end offset and their difference. Raises KafkaException when no broker answers."""
    from streams.runtime.tansu_fix import EndOffsetsUnconfirmed, true_end_offsets

    consumer = Consumer(
        {
            **security_config(settings),
            "bootstrap.servers": settings.broker,
            # Only asked for its committed offsets: never subscribes, so never joins the
            # group and never disturbs the worker's assignment.
            "group.id": settings.app_id,
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=timeout)
        tps = [
            TopicPartition(name, p)
            for name in LAG_TOPICS
            if name in metadata.topics
            for p in sorted(metadata.topics[name].partitions)
        ]
        committed = consumer.committed(tps, timeout=timeout)
        reported = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=timeout)[1]
            for tp in tps
        }
    finally:
        consumer.close()
    try:
        # Tansu reports end offsets short (streams/runtime/tansu_fix.py); the fetch it does
        # reads the true high watermark on any broker, so it is used for every broker here.
        ends = true_end_offsets(settings.broker, reported, timeout=timeout)
    except EndOffsetsUnconfirmed:
        ends = dict(reported)
    out = []
    for tp in committed:
        end = ends[(tp.topic, tp.partition)] or 0
        done = tp.offset if tp.offset >= 0 else None  # negative: nothing committed yet
        if done is None and end == 0:
            continue  # an empty partition nobody has read: nothing to show
        lag = end - (done or 0)
        row = {"topic": tp.topic, "partition": tp.partition, "committed": done, "end": end}
        out.append({**row, "lag": max(lag, 0)})
    return out


def _dlq_rows() -> int | str:
    try:
        r = api_request("POST", "/sql", {"format": "json"}, "SELECT count() AS n FROM dlq")
        return int(r.json()["rows"][0][0])
    except (ApiProblem, ValueError, KeyError, IndexError) as exc:
        return f"unavailable ({exc})"


def status(as_json: JsonFlag = False) -> None:
    """Worker health, consumer lag per partition and dead letters."""
    settings = get_settings()
    problems: list[str] = []
    try:
        health: dict[str, Any] | None = api_request("GET", "/health").json()
    except ApiProblem as exc:
        health = None
        problems.append(str(exc))
    try:
        lag: list[dict[str, Any]] | None = consumer_lag(settings)
    except KafkaException as exc:
        lag = None
        why = exc.args[0].str() if hasattr(exc.args[0], "str") else exc
        problems.append(
            f"no Kafka broker answered at {settings.broker} ({why}): set METERLINE_BROKER"
        )
    dlq = _dlq_rows() if health is not None else None
    result = {
        "api": api_url(settings),
        "broker": settings.broker,
        "worker": health,
        "lag": lag,
        "total_lag": sum(r["lag"] for r in lag) if lag is not None else None,
        "dlq_rows": dlq,
        "problems": problems,
    }
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        _print_status(result)
    if problems:
        raise typer.Exit(1)


def _print_status(result: Mapping[str, Any]) -> None:
    health = result["worker"]
    if health is None:
        console.print(f"[bold]worker[/]  [red]not running[/] at {result['api']}")
    else:
        ready = "[green]ready[/]" if health.get("ready") else "[yellow]not ready[/]"
        console.print(f"[bold]worker[/]  {ready} at {result['api']}")
        assigned: list[str] = health.get("assigned", [])
        # Input topics only (partition numbers per topic); changelogs are just counted.
        inputs: dict[str, list[str]] = {}
        for tp in assigned:
            topic, _, partition = tp.rpartition("/")
            if topic in LAG_TOPICS:
                inputs.setdefault(topic, []).append(partition)
        shown = "; ".join(f"{t} {','.join(ps)}" for t, ps in inputs.items()) or "none"
        console.print(f"[bold]assigned[/] {len(assigned)} partitions; inputs: {shown}")
        stats: dict[str, Any] = health.get("usage", {})
        if stats:
            table = Table(title="pipeline counters", title_justify="left", show_header=False)
            table.add_column("counter", style="bold")
            table.add_column("value", justify="right")
            for key, value in stats.items():
                table.add_row(key, _cell(value))
            console.print(table)
        console.print(
            f"[bold]dead letters[/] {result['dlq_rows']} in the dlq table, "
            f"{health.get('dlq_sent', 0)} sent by this worker since it started"
        )
    if result["lag"] is not None:
        rows = [
            [r["topic"], r["partition"], r["committed"], r["end"], r["lag"]] for r in result["lag"]
        ]
        title = f"consumer lag (group {get_settings().app_id}) — total {result['total_lag']}"
        console.print(listing_table(title, ["topic", "partition", "committed", "end", "lag"], rows))
    for problem in result["problems"]:
        console.print(f"[red]{problem}[/]")


def register(app: typer.Typer) -> None:
    """Adds the read commands (all but ``usage``, which cli.py defines) to ``app``."""
    for command in (balance, ledger, invoices, payments, status):
        app.command()(command)
