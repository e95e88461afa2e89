"""The checkpoint's durability order, step by step, without a broker: each effect is recorded
when it happens, and the test reads the order off the log."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from meterline.metering.catalog_file import load_catalog
from meterline.metering.dedup import DedupIndex
from meterline.processor.billing_rules import BillingRules
from meterline.processor.customer import CustomerProcessor
from meterline.processor.inputs import BillingInput, Forward, InputKind, InputRecord, Origin, Reject
from meterline.processor.triage import Triage
from streams.checkpoint import Checkpoint, Processed
from streams.customer_store import CustomerStore

SEED = load_catalog()
START = 1_767_225_600_000
LOG: list[str] = []


class Table(dict):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __setitem__(self, key: str, value: Any) -> None:
        LOG.append(f"{self.name}:{key}")
        super().__setitem__(key, value)


class Sink:
    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: dict[str, list] = {}
        self.buffered = 0

    def add(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        LOG.append(f"{self.name}.add:{table}")
        self.rows.setdefault(table, []).extend(rows)
        self.buffered += len(rows)

    async def aflush(self) -> int:
        await asyncio.sleep(0)  # let a concurrent step run, as a real insert would
        LOG.append(f"{self.name}.stored")
        n, self.buffered = self.buffered, 0
        return n

    @property
    def pending(self) -> int:
        return self.buffered


class Outputs:
    async def dead_letter(self, reject: Reject) -> None:
        LOG.append("send:dlq")

    async def forward(self, forward: Forward) -> None:
        LOG.append("send:forward")

    async def aggregate(self, customer: str, record: dict[str, Any]) -> None:
        LOG.append("send:aggregate")

    async def outbound(self, kind: str, customer: str, record: dict[str, Any]) -> None:
        LOG.append(f"send:{kind}")

    async def flush(self) -> None:
        await asyncio.sleep(0)
        LOG.append("producer.flushed")


def origin(topic: str, offset: int) -> Origin:
    return Origin(topic, 0, offset, b"c", b"{}")


def batch() -> tuple[Checkpoint, Triage, list[InputRecord]]:
    store = CustomerStore(
        Table("usage-state"),
        Table("usage-seen"),
        Table("account-state"),
        Table("usage-raw"),
        DedupIndex(horizon_ms=35 * 86_400_000),
        home=lambda c: 0,
        owned=lambda: {0},
    )
    checkpoint = Checkpoint(store, Outputs(), Sink("writer"), Sink("raw"), grace_ms=0)
    command = {
        "type": "upsert",
        "customer_id": "c",
        "at": START,
        "plan_id": "lora-pro",
        "billing_anchor": START,
        "tz": "UTC",
        "topup": {
            "threshold": "60",
            "mode": "fixed",
            "amount": "25",
            "cooldown_ms": 0,
            "retry_delays_ms": [],
            "max_per_period": 3,
        },
    }
    items = [
        InputRecord(
            InputKind.ACCOUNTS,
            origin("meterline.accounts", 0),
            0,
            BillingInput("c", "json", command),
        ),
        InputRecord(
            InputKind.USAGE,
            origin("meterline.usage", 0),
            0,
            {
                "event_id": "e1",
                "customer_id": "c",
                "meter": "image_generations",
                "value": Decimal(2),
                "timestamp": START + 1000,
                "dimensions": {},
            },
        ),
    ]
    triage = Triage()
    triage.reject(origin("meterline.usage", 1), "not Avro")
    triage.forwards.append(Forward(InputKind.USAGE, "d", 1, None, origin("meterline.usage", 2)))
    return checkpoint, triage, items


def run(checkpoint: Checkpoint, triage: Triage, items: list[InputRecord]) -> None:
    rules = BillingRules(SEED.meter_catalog(), SEED.price_book(), {"lora-pro": SEED.plans[0]})
    processor = CustomerProcessor(SEED.meter_catalog(), rules, checkpoint.store.dedup)
    state = checkpoint.store.load("c")
    step = processor.process(state, items)
    asyncio.run(checkpoint.commit_batch(triage, [Processed(state, step)]))


def test_a_batch_is_durable_before_any_state_that_counts_it() -> None:
    LOG.clear()
    checkpoint, triage, items = batch()
    run(checkpoint, triage, items)
    assert LOG.index("send:dlq") < LOG.index("producer.flushed")
    assert LOG.index("send:forward") < LOG.index("producer.flushed")
    assert LOG.index("usage-seen:c#0") < LOG.index("producer.flushed")
    assert LOG.index("usage-raw:c#0") < LOG.index("producer.flushed")
    first_state = min(LOG.index("usage-state:c"), LOG.index("account-state:c"))
    assert first_state > LOG.index("producer.flushed")
    # Nothing is stored in ClickHouse while the batch commits: raw events wait on Kafka.
    assert not any(e.startswith(("writer.", "raw.", "send:topups", "send:aggregate")) for e in LOG)


def test_what_state_shows_is_written_only_once_it_is_durable() -> None:
    checkpoint, triage, items = batch()
    run(checkpoint, triage, items)
    LOG.clear()
    state = checkpoint.store.usage("c")
    assert state is not None
    state.watermark = START + 3_600_000  # the window is past grace: it closes now
    asyncio.run(checkpoint.publish())
    flushed = LOG.index("producer.flushed")
    assert flushed == 0
    # Raw events are stored before they leave the changelog.
    assert flushed < LOG.index("raw.add:usage_events") < LOG.index("raw.stored")
    assert checkpoint.store.raw == {} and checkpoint.pending_raw == {}
    ledger = LOG.index("writer.add:credit_ledger")
    stored = LOG.index("writer.stored")
    topup = LOG.index("send:topups")
    assert flushed < ledger < stored < topup < LOG.index("account-state:c")
    minute = LOG.index("writer.add:usage_minute")
    aggregate = LOG.index("send:aggregate")
    assert topup < minute < aggregate < LOG.index("usage-state:c")
    account = checkpoint.store.account("c")
    assert account is not None and not account.has_outbox
    assert state.windows == {}  # evicted only after its aggregate went out
