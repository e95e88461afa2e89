"""The benchmark's billed run: the same usage backlog as the plain pipeline run, with every
customer on the Lora plan (monthly fee, recurring credits, a promotional grant, auto top-up
below a threshold), so rating, burn-down and top-up decisions are inside the figure."""

from __future__ import annotations

import json
import time

from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from streams import topics
from streams.producer import make_producer, send

CATALOG_ENV = {"METERLINE_CATALOG_FILE": str(DEFAULT_CATALOG_PATH)}
TOPUP = {
    "threshold": "40.00",
    "mode": "fixed",
    "amount": "50.00",
    "cooldown_ms": 60_000,
    "retry_delays_ms": [3_600_000],
    "max_per_period": 5,
}


def lora_commands(customers: list[str], anchor_ms: int) -> list[tuple[str, bytes]]:
    out = []
    for c in customers:
        upsert = {
            "type": "upsert",
            "customer_id": c,
            "at": anchor_ms,
            "plan_id": "lora-pro",
            "billing_anchor": anchor_ms,
            "tz": "UTC",
            "topup": TOPUP,
        }
        grant = {
            "type": "grant",
            "customer_id": c,
            "at": anchor_ms,
            "grant_id": f"welcome-{c}",
            "amount": "5.00",
            "priority": 1,
            "expires_at": None,
            "scope": ["images"],
            "category": "promotional",
        }
        out += [(c, json.dumps(upsert).encode()), (c, json.dumps(grant).encode())]
    return out


def wait_accounts(worker: WorkerProcess, customers: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (n,) = worker.sql("SELECT uniqExact(customer_id) FROM balance_history")["rows"][0]
        if int(n) >= customers:
            return
        time.sleep(0.3)
    raise TimeoutError("accounts were not applied in time")


def start_billed(stack: EmbeddedStack, customers: list[str], anchor_ms: int) -> WorkerProcess:
    """A worker whose customers all have accounts, ready for a usage backlog."""
    producer = make_producer(stack.broker.bootstrap)
    for key, value in lora_commands(customers, anchor_ms):
        send(producer, topics.ACCOUNTS, key, value)
    producer.flush(60)
    worker = stack.start_worker(**CATALOG_ENV)
    wait_accounts(worker, len(customers))
    return worker
