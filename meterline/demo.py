"""`meterline demo`: the embedded stack end to end, then everything it started is stopped."""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from meterline.billing.money import money_text, plain
from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from meterline.sample_data import DAY_MS, generate_usage, totals
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics
from streams.producer import USAGE_BATCH, USAGE_EVENT, make_producer, send

TOTALS_SQL = """
SELECT customer_id, meter, toString(sum(value)) AS total, sum(events) AS events
FROM usage_windows WHERE window = 'day'
GROUP BY customer_id, meter ORDER BY customer_id, meter
"""


def publish_sample(bootstrap: str, sample_events: list[dict], garbage: list[bytes]) -> None:
    """Mixes the three value encodings producers use: Avro batch envelopes, single Avro
    records and JSON; plus records that must end up in the DLQ."""
    codec = Codec(registry_from_settings(""))
    producer = make_producer(bootstrap)
    head, tail = sample_events[:400], sample_events[400:]
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for event in head:
        by_customer[event["customer_id"]].append(event)
    for customer, events in by_customer.items():
        for i in range(0, len(events), 25):
            batch = {"events": events[i : i + 25]}
            send(producer, topics.USAGE, customer, codec.encode(USAGE_BATCH, batch))
    for i, event in enumerate(tail):
        if i % 10 == 9:
            value = json.dumps(dict(event, value=str(event["value"]))).encode()
        else:
            value = codec.encode(USAGE_EVENT, event)
        send(producer, topics.USAGE, event["customer_id"], value)
    for g in garbage:
        send(producer, topics.USAGE, None, g)
    producer.flush(60)


def wait_for_totals(
    worker: WorkerProcess, expected: dict[tuple[str, str], tuple[Decimal, int]], timeout: float
) -> dict[tuple[str, str], tuple[Decimal, int]]:
    deadline = time.monotonic() + timeout
    got: dict[tuple[str, str], tuple[Decimal, int]] = {}
    while time.monotonic() < deadline:
        rows = worker.sql(TOTALS_SQL)["rows"]
        got = {(c, m): (Decimal(t), int(n)) for c, m, t, n in rows}
        if got == expected:
            break
        time.sleep(1.0)
    return got


PLAN = "lora-pro"
TOPUP = {
    "threshold": "10.00",
    "mode": "fixed",
    "amount": "50.00",
    "cooldown_ms": 600_000,
    "max_per_period": 3,
}


def open_accounts(worker: WorkerProcess, bootstrap: str, customers: list[str], at: int) -> None:
    """Puts each customer on the Lora plan (monthly fee, recurring credits, auto top-up) and
    waits until the accounts exist, so usage that follows is billed against them."""
    d = datetime.fromtimestamp(at / 1000, tz=UTC)
    anchor = int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)
    producer = make_producer(bootstrap)
    for customer in customers:
        command = {
            "type": "upsert",
            "customer_id": customer,
            "at": at,
            "plan_id": PLAN,
            "billing_anchor": anchor,
            "tz": "UTC",
            "topup": TOPUP,
        }
        send(producer, topics.ACCOUNTS, customer, json.dumps(command).encode())
    producer.flush(30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = worker.sql("SELECT uniqExact(customer_id) FROM credit_ledger FINAL")["rows"]
        if int(rows[0][0]) >= len(customers):
            return
        time.sleep(0.5)
    raise TimeoutError("accounts were not opened")


def billing_table(worker: WorkerProcess, customers: list[str]) -> Table:
    time.sleep(2.5)  # one more flush: the accounts' last effects reach ClickHouse
    balances = dict(worker.sql("SELECT customer_id, toString(balance) FROM balances")["rows"])
    burned = dict(
        worker.sql(
            "SELECT customer_id, toString(-sum(amount)) FROM credit_ledger FINAL "
            "WHERE kind = 'debit' GROUP BY customer_id"
        )["rows"]
    )
    topups = dict(
        worker.sql("SELECT customer_id, count() FROM topups FINAL GROUP BY customer_id")["rows"]
    )
    table = Table(title=f"Billing on plan {PLAN} (live accounts; invoice preview of this period)")
    table.add_column("customer", no_wrap=True)
    for col in ("burned", "balance", "top-ups", "fee", "usage", "credits", "due"):
        table.add_column(col, justify="right")
    for customer in customers:
        preview = httpx.get(f"{worker.url}/invoices/{customer}/preview", timeout=30).json()
        lines = preview.get("lines", [])
        currency: str | None = preview.get("currency")

        def total(
            kinds: tuple[str, ...], lines: list[dict] = lines, currency: str | None = currency
        ) -> str:
            amounts = (Decimal(x["amount"]) for x in lines if x["kind"] in kinds)
            value = sum(amounts, Decimal(0))
            # As the invoice prints money (money.py): 6.00 in USD, 600 in JPY.
            return plain(value) if currency is None else money_text(value, currency)

        table.add_row(
            customer,
            burned.get(customer, "0"),
            balances.get(customer, "?"),
            str(topups.get(customer, 0)),
            total(("fee",)),
            total(("usage",)),
            total(("credits_applied",)),
            preview.get("amount_due", "?"),
        )
    return table


def run_demo(data_dir: Path, console: Console) -> int:
    shutil.rmtree(data_dir, ignore_errors=True)
    day = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS  # yesterday, UTC
    sample = generate_usage(
        12_000,
        customers=4,
        start_ms=day,
        duplicate_rate=0.03,
        garbage_rate=0.002,
        prefix="lora",
    )
    expected = totals(sample.unique)
    customers = sorted({e["customer_id"] for e in sample.unique})
    env = {
        "METERLINE_CATALOG_FILE": str(DEFAULT_CATALOG_PATH),
        # Yesterday's usage: only the events move the accounts' clocks.
        "METERLINE_BILLING_TICK_SECONDS": "0",
    }
    with (
        console.status("starting the embedded broker and a worker…"),
        EmbeddedStack(data_dir, partitions=4, extra_env=env) as stack,
    ):
        worker = stack.start_worker()
        console.print(f"broker {stack.broker.bootstrap} · api {worker.url}")
        with console.status(f"opening {len(customers)} accounts on plan {PLAN}…"):
            open_accounts(worker, stack.broker.bootstrap, customers, day)
        started = time.monotonic()
        with console.status(
            f"publishing {len(sample.published)} usage records "
            f"({len(sample.published) - len(sample.unique)} repeats, "
            f"{len(sample.garbage)} garbage)…"
        ):
            publish_sample(stack.broker.bootstrap, sample.published, sample.garbage)
        with console.status("waiting for ClickHouse to show every event…"):
            got = wait_for_totals(worker, expected, timeout=180)
        elapsed = time.monotonic() - started
        dlq = worker.sql("SELECT count() AS n FROM dlq FINAL")["rows"][0][0]
        health = worker.health() or {}
        billing = billing_table(worker, customers)

    table = Table(title="Usage per customer and meter (yesterday, from ClickHouse usage_windows)")
    for col in ("customer", "meter", "events", "total", "expected", ""):
        table.add_column(col, justify="right" if col in ("events", "total", "expected") else "left")
    ok = True
    for key in sorted(expected):
        exp_total, exp_n = expected[key]
        total, n = got.get(key, (Decimal(0), 0))
        match = (total, n) == (exp_total, exp_n)
        ok &= match
        table.add_row(
            key[0],
            key[1],
            str(n),
            # plain, not str(): a total of 0.0000001 would print as 1E-7
            plain(total),
            plain(exp_total),
            "[green]✓[/]" if match else "[red]✗[/]",
        )
    console.print(table)
    stats = health.get("usage", {})
    console.print(
        f"{len(sample.published)} published in {elapsed:.1f}s · duplicates dropped: "
        f"{stats.get('duplicates', '?')} · dead letters stored: {dlq}"
    )
    console.print(billing)
    if ok and got.keys() == expected.keys():
        console.print("[bold green]totals match the independent reference exactly[/]")
        return 0
    console.print("[bold red]totals differ from the reference[/]")
    return 1
