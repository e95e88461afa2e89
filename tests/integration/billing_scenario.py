"""The billing scenario harness shared by the embedded-stack billing tests: a reference that
drives the pure billing domain with the same inputs the test publishes, in the same order, and
a wait until a phase's effects are stored."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

from meterline.billing.account import Account
from meterline.billing.catalog import Plan
from meterline.billing.commands import apply_command
from meterline.billing.effects import Effects
from meterline.billing.payments import PaymentOutcome
from meterline.billing.usage import ADDITIVE, Reading
from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH, load_catalog
from meterline.metering.meters import dims_key
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics
from streams.producer import TOKEN_EVENT, USAGE_BATCH, make_producer, send

SEED = load_catalog(DEFAULT_CATALOG_PATH)
PLAN = Plan.from_dict(SEED.plans[0])
PRICES = SEED.price_book()
METERS = SEED.meter_catalog()


class Reference:
    """The expected outcome: the billing domain fed the same inputs in the same order."""

    def __init__(self, customers: list[str]) -> None:
        self.accounts = {c: Account(c) for c in customers}
        self.entries: dict[str, list[dict]] = defaultdict(list)
        self.topups: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}

    def _record(self, fx: Effects) -> None:
        assert not fx.errors, fx.errors
        for e in fx.entries:
            self.entries[e.customer_id].append(e.to_dict())
        for t in fx.topups:
            self.topups[t.request_id] = t.to_dict()
        for i in fx.invoices:
            self.invoices[i.invoice_id] = i.to_dict()

    def command(self, cmd: dict) -> None:
        self._record(apply_command(self.accounts[cmd["customer_id"]], cmd, {PLAN.plan_id: PLAN}))

    def usage(self, e: dict) -> None:
        """As metering reads an event: the meter's own value field, and a non-additive meter's
        event as a reading of the period aggregate (unique_count, latest, min, max)."""
        meter = METERS.get(e["meter"])
        account = self.accounts[e["customer_id"]]
        value, unique = meter.extract(e)
        if meter.aggregation in ADDITIVE:
            fx = account.apply_usage(e["event_id"], e["meter"], value, e["timestamp"])
        else:
            group = dims_key(meter.group_dims(e["dimensions"]))
            reading = Reading(meter.aggregation, group, value, e["timestamp"], unique)
            fx = account.apply_reading(e["event_id"], e["meter"], reading)
        self._record(fx)

    def tokens(self, e: dict) -> None:
        billed = PRICES.cost(
            e["model"],
            e["input_tokens"],
            e["output_tokens"],
            e["cached_input_tokens"],
            e["timestamp"],
        ).billed
        # TokenEvent semantics: the cached tokens are part of input_tokens.
        n = e["input_tokens"] + e["output_tokens"]
        self._record(
            self.accounts[e["customer_id"]].apply_usage(
                f"tokens:{e['event_id']}", "llm_tokens", Decimal(n), e["timestamp"], cost=billed
            )
        )

    def payment(self, p: dict) -> None:
        fx = self.accounts[p["customer_id"]].apply_payment(PaymentOutcome.from_dict(p))
        self._record(fx)


class Scenario:
    def __init__(self, stack: EmbeddedStack, ref: Reference) -> None:
        self.codec = Codec(registry_from_settings(""))
        self.producer = make_producer(stack.broker.bootstrap)
        self.ref = ref
        self.n = 0
        self.usage_sent = 0
        self.tokens_sent = 0

    def commands(self, cmds: list[dict]) -> None:
        for cmd in cmds:
            self.ref.command(cmd)
            send(self.producer, topics.ACCOUNTS, cmd["customer_id"], json.dumps(cmd).encode())
        self.producer.flush(30)

    def usage(
        self,
        customer: str,
        meter: str,
        count: int,
        value: Decimal,
        t0: int,
        values: list[Decimal] | None = None,
        dims: list[dict[str, str]] | None = None,
    ) -> None:
        """``count`` events one second apart; ``values`` / ``dims`` give each its own."""
        events = []
        for i in range(count):
            self.n += 1
            events.append(
                {
                    "event_id": f"u{self.n}",
                    "customer_id": customer,
                    "meter": meter,
                    "value": value if values is None else values[i],
                    "timestamp": t0 + i * 1000,
                    "dimensions": {} if dims is None else dims[i],
                }
            )
        for e in events:
            self.ref.usage(e)
        for i in range(0, len(events), 200):
            batch = {"events": events[i : i + 200]}
            send(self.producer, topics.USAGE, customer, self.codec.encode(USAGE_BATCH, batch))
        self.usage_sent += count

    def tokens(self, customer: str, model: str, count: int, t0: int) -> None:
        for i in range(count):
            self.n += 1
            e = {
                "event_id": f"t{self.n}",
                "customer_id": customer,
                "model": model,
                "provider": "p",
                "input_tokens": 400_000,
                "output_tokens": 150_000,
                "cached_input_tokens": 20_000,
                "timestamp": t0 + i * 1000,
                "dimensions": {},
            }
            self.ref.tokens(e)
            send(self.producer, topics.TOKENS, customer, self.codec.encode(TOKEN_EVENT, e))
        self.tokens_sent += count

    def payment(
        self,
        customer: str,
        request_id: str,
        status: str,
        at: int,
        pid: str,
        amount: str = "100.00",
        failure: str | None = None,
        **extra: Any,
    ) -> None:
        """``extra`` overrides or adds fields: pays_kind, currency, payment method, fee."""
        p = {
            "payment_id": pid,
            "customer_id": customer,
            "processor": "stripe" if customer != "lora-b" else "adyen",
            "status": status,
            "amount": amount,
            "currency": "USD",
            "pays_kind": "topup",
            "pays_id": request_id,
            "occurred_at": at,
            "failure_code": failure,
            **extra,
        }
        self.ref.payment(p)
        send(self.producer, topics.PAYMENTS, customer, json.dumps(p).encode())

    def flush(self) -> None:
        self.producer.flush(30)


def wait_applied(worker: WorkerProcess, scenario: Scenario, ledger_rows: int) -> None:
    """Until raw usage and tokens are stored and the ledger has its rows, then past one more
    flush interval so the states behind them are durable."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        u, t, n = worker.sql(
            "SELECT (SELECT count() FROM usage_events FINAL), "
            "(SELECT count() FROM token_events FINAL), (SELECT count() FROM credit_ledger FINAL)"
        )["rows"][0]
        if (
            int(u) >= scenario.usage_sent
            and int(t) >= scenario.tokens_sent
            and int(n) >= ledger_rows
        ):
            time.sleep(2.5)
            return
        time.sleep(0.3)
    raise TimeoutError("phase not applied in time")


def ledger_count(ref: Reference) -> int:
    return sum(len(v) for v in ref.entries.values())


def norm(row: Any) -> tuple:
    """Decimals compared by value, NULLs as None."""
    out = []
    for v in row:
        if v is None or v == "\\N":
            out.append(None)
            continue
        try:
            out.append(Decimal(str(v)))
        except ArithmeticError:
            out.append(v)
    return tuple(out)


def assert_ledger_and_balance(worker: WorkerProcess, ref: Reference, customer: str) -> None:
    """The stored ledger of ``customer`` is the reference's, entry by entry, and so is the
    latest balance."""
    rows = worker.sql(
        "SELECT entry_id, kind, toString(amount), toString(balance_after), grant_id, ref "
        f"FROM credit_ledger FINAL WHERE customer_id = '{customer}' ORDER BY seq"
    )["rows"]
    expected = [
        [e["entry_id"], e["kind"], e["amount"], e["balance_after"], e["grant_id"], e["ref"]]
        for e in ref.entries[customer]
    ]
    assert [norm(r) for r in rows] == [norm(r) for r in expected], customer
    (balance,) = worker.sql(
        f"SELECT toString(balance) FROM balances WHERE customer_id = '{customer}'"
    )["rows"][0]
    assert Decimal(balance) == ref.accounts[customer].balance(), customer
