"""Issue 9 acceptance: a Lora month on the embedded stack, with a worker SIGKILL mid-run.

Two customers on lora-pro over two closing periods:

* ``lora-a`` (USD) has a unique_count (``active_users``, 120 events from 105 users) and a latest
  (``storage_gb``: 30, 120, 250) meter on its rate card and a target-mode top-up that is declined
  and then paid on its retry (for the same amount). Its first invoice is paid in two parts; the
  second part is disputed and the dispute lost, with a fee billed on the next invoice.
* ``lora-e`` is invoiced in EUR (a catalog exchange rate), bills its fee three months in advance,
  and the payment of its first invoice is unlinked and then relinked.

Every stored surface (ledger, balance, top-up requests, invoice lines, invoices, payments) equals
a reference computed here by the pure billing domain fed the same inputs in the same order, and
the figures the issue names are checked against plain arithmetic as well.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.billing.fx import FxRate, FxRates
from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from tests.integration.billing_scenario import (
    PLAN,
    Reference,
    Scenario,
    assert_ledger_and_balance,
    ledger_count,
    norm,
    wait_applied,
)
from tests.integration.test_billing_lora import DAY, HOUR, month_start
from tests.integration.worker_logs import assert_no_offset_gaps

pytestmark = pytest.mark.integration

D = Decimal
EUR = {"base": "USD", "quote": "EUR", "rate": "0.92"}
TARGET_TOPUP = {
    "threshold": "20.00",
    "mode": "target",
    "amount": "5.00",  # the smallest amount bought
    "target": "60.00",
    "cooldown_ms": 0,
    "retry_delays_ms": [HOUR],
    "max_per_period": 5,
}


def _catalog(tmp: Path, fx_from: int) -> Path:
    data = json.loads(DEFAULT_CATALOG_PATH.read_text())
    data["fx_rates"] = [{**EUR, "effective_from": fx_from}]
    path = tmp / "catalog.json"
    path.write_text(json.dumps(data))
    return path


def _wait_rows(worker: WorkerProcess, query: str, expected: Callable[[], list]) -> None:
    """Until the stored rows are the reference's (compared by value), then one more flush."""
    deadline, rows = time.monotonic() + 120, None
    while time.monotonic() < deadline:
        rows = [norm(r) for r in worker.sql(query)["rows"]]
        if rows == [norm(r) for r in expected()]:
            time.sleep(2.5)
            return
        time.sleep(0.3)
    assert rows == [norm(r) for r in expected()]


def _invoice(ref: Reference, customer: str, start: int, kind: str = "period") -> dict[str, Any]:
    [inv] = [
        i
        for i in ref.invoices.values()
        if (i["customer_id"], i["period_start"], i["kind"]) == (customer, start, kind)
    ]
    return inv


INVOICES = (
    "SELECT invoice_id, currency, kind, toString(amount_due), toString(amount_paid), "
    "toString(remaining), status, payment_method_name, fx_rate "
    "FROM invoices FINAL ORDER BY invoice_id"
)


def _expected_invoices(ref: Reference) -> list:
    return sorted(
        (
            i["invoice_id"],
            i["currency"],
            i["kind"],
            i["amount_due"],
            i["amount_paid"],
            i["remaining"],
            i["status"],
            i.get("payment_method_name"),
            i.get("fx_rate"),
        )
        for i in ref.invoices.values()
    )


def test_lora_month_every_meter_kind_and_payment_lifecycle_with_crash(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    anchor, p2 = month_start(now, 2), month_start(now, 1)
    ref = Reference(["lora-a", "lora-e"])
    rates = FxRates([FxRate.from_dict({**EUR, "effective_from": anchor - DAY})])
    for account in ref.accounts.values():
        account.fx_rates = rates
    env = {
        "METERLINE_CATALOG_FILE": str(_catalog(tmp_path, anchor - DAY)),
        "METERLINE_MAX_PAST_DAYS": "100",
        "METERLINE_DEDUP_HORIZON_DAYS": "100",
        "METERLINE_BILLING_TICK_SECONDS": "0",  # only the inputs move the accounts' clocks
    }
    with EmbeddedStack(tmp_path / "stack", partitions=2) as stack:
        worker = stack.start_worker(**env)
        sc = Scenario(stack, ref)
        upsert = {"type": "upsert", "plan_id": PLAN.plan_id, "billing_anchor": anchor, "tz": "UTC"}

        # 1. The customers; lora-e bills its fee for the next three periods in advance.
        sc.commands(
            [
                {**upsert, "customer_id": "lora-a", "at": anchor + HOUR, "topup": TARGET_TOPUP},
                {**upsert, "customer_id": "lora-e", "at": anchor + HOUR, "invoice_currency": "EUR"},
                {
                    "type": "bill_in_advance",
                    "customer_id": "lora-e",
                    "at": anchor + 2 * HOUR,
                    "periods": 3,
                },
            ]
        )
        wait_applied(worker, sc, ledger_count(ref))
        advance = _invoice(ref, "lora-e", p2, "advance")
        assert advance["currency"] == "EUR" and advance["fx_rate"] == "0.92"

        # 2. Period 1 usage of every meter kind; the worker is killed while it is in flight.
        t = anchor + DAY
        users = [{"user_id": f"u{i % 105}"} for i in range(120)]
        sc.usage("lora-a", "api_calls", 10_400, D(1), t)
        sc.usage("lora-a", "image_generations", 900, D(1), t + 20_000_000)
        sc.usage("lora-a", "active_users", 120, D(1), t + 30_000_000, dims=users)
        sc.usage("lora-a", "storage_gb", 3, D(0), t + 40_000_000, values=[D(30), D(120), D(250)])
        sc.usage("lora-e", "image_generations", 500, D(1), t)
        sc.flush()
        time.sleep(0.5)
        worker.kill()
        worker = stack.start_replacement(**env)
        wait_applied(worker, sc, ledger_count(ref))

        # 3. The target-mode top-up is declined; its retry asks the same amount and is paid.
        first = ref.topups["topup:lora-a:1"]
        assert D(first["amount"]) > D("5.00")  # up to the target, more than the smallest buy
        t3 = t + 3 * DAY
        sc.payment("lora-a", "topup:lora-a:1", "failed", t3, "pay-a1", first["amount"], "declined")
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))
        sc.usage("lora-a", "api_calls", 1, D(1), t3 + 2 * HOUR)  # time passes: the retry is due
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))
        retry = ref.topups["topup:lora-a:2"]
        assert (retry["amount"], retry["attempt"]) == (first["amount"], 2)
        sc.payment(
            "lora-a", "topup:lora-a:2", "succeeded", t3 + 3 * HOUR, "pay-a2", retry["amount"]
        )
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))

        # 4. Period 1 closes: lora-a's invoice bills what metering counted.
        for c in ("lora-a", "lora-e"):
            sc.usage(c, "image_generations", 10, D(1), p2 + DAY)
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))
        inv_a, inv_e = _invoice(ref, "lora-a", anchor), _invoice(ref, "lora-e", anchor)
        by_meter = {x["meter"]: x for x in inv_a["lines"] if x["kind"] == "usage"}
        assert D(by_meter["active_users"]["quantity"]) == 105  # distinct users, not 120 events
        assert D(by_meter["active_users"]["amount"]) == D("42.00")  # 105 × 0.40 (volume)
        assert D(by_meter["storage_gb"]["quantity"]) == 250  # the latest reading, not the sum
        assert D(by_meter["storage_gb"]["amount"]) == D("6.00")  # 3 packages of 100
        assert inv_e["currency"] == "EUR"
        assert not [x for x in _invoice(ref, "lora-e", p2, "advance")["lines"] if x["meter"]]

        # 5. lora-a pays in two parts, the second is disputed and lost (with a fee); lora-e's
        #    payment is unlinked (a reconciliation fix) and relinked.
        due_a, due_e = D(inv_a["amount_due"]), inv_e["amount_due"]
        part = D("30.00")
        at = p2 + DAY + HOUR
        card = {"pays_kind": "invoice", "payment_method_name": "Visa •••• 4242"}
        sc.payment("lora-a", inv_a["invoice_id"], "succeeded", at, "pay-ai1", str(part), **card)
        sc.payment(
            "lora-a", inv_a["invoice_id"], "succeeded", at + 1, "pay-ai2", str(due_a - part), **card
        )
        sepa = {"pays_kind": "invoice", "currency": "EUR", "payment_method_name": "SEPA"}
        sc.payment("lora-e", inv_e["invoice_id"], "succeeded", at, "pay-e1", due_e, **sepa)
        sc.flush()
        _wait_rows(worker, INVOICES, lambda: _expected_invoices(ref))
        assert ref.invoices[inv_a["invoice_id"]]["status"] == "paid"
        rest = str(due_a - part)
        sc.payment(
            "lora-a", inv_a["invoice_id"], "dispute_opened", at + HOUR, "pay-ai2", rest, **card
        )
        sc.payment("lora-e", inv_e["invoice_id"], "unlinked", at + HOUR, "pay-e1", due_e, **sepa)
        sc.flush()
        _wait_rows(worker, INVOICES, lambda: _expected_invoices(ref))
        assert D(ref.invoices[inv_a["invoice_id"]]["remaining"]) == due_a - part
        assert ref.invoices[inv_e["invoice_id"]]["remaining"] == due_e
        lost = {**card, "dispute_fee": "15.00"}
        sc.payment("lora-a", inv_a["invoice_id"], "dispute_lost", at + DAY, "pay-ai2", rest, **lost)
        sc.payment("lora-e", inv_e["invoice_id"], "succeeded", at + DAY, "pay-e1", due_e, **sepa)
        sc.flush()
        _wait_rows(worker, INVOICES, lambda: _expected_invoices(ref))
        assert ref.invoices[inv_e["invoice_id"]]["status"] == "paid"

        # 6. Period 2 closes: the dispute fee is billed once; lora-e's fee was billed ahead.
        for c in ("lora-a", "lora-e"):
            sc.usage(c, "api_calls", 1, D(1), now - HOUR)
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))
        p2_a, p2_e = _invoice(ref, "lora-a", p2), _invoice(ref, "lora-e", p2)
        assert [x["amount"] for x in p2_a["lines"] if x["kind"] == "dispute_fee"] == ["15.00"]
        assert not [x for x in p2_e["lines"] if x["kind"] == "fee"]

        # The outcome, as stored.
        for c in ref.accounts:
            assert_ledger_and_balance(worker, ref, c)
        _wait_rows(worker, INVOICES, lambda: _expected_invoices(ref))
        topups = worker.sql(
            "SELECT request_id, toString(amount), attempt FROM topups FINAL ORDER BY request_id"
        )["rows"]
        assert [norm(r) for r in topups] == [
            norm((k, v["amount"], v["attempt"])) for k, v in sorted(ref.topups.items())
        ]
        lines = worker.sql(
            "SELECT invoice_id, line_no, kind, meter, toString(quantity), toString(unit_price), "
            "toString(amount) FROM invoice_lines FINAL ORDER BY invoice_id, line_no"
        )["rows"]
        expected = sorted(
            (
                i["invoice_id"],
                x["line_no"],
                x["kind"],
                x["meter"],
                x["quantity"],
                x["unit_price"],
                x["amount"],
            )
            for i in ref.invoices.values()
            for x in i["lines"]
        )
        assert [norm(r) for r in lines] == [norm(r) for r in expected]
        pays = worker.sql(
            "SELECT payment_id, status, currency, payment_method_name FROM payments FINAL "
            "ORDER BY payment_id, status"
        )["rows"]
        assert [tuple(p) for p in pays] == [
            ("pay-a1", "failed", "USD", None),
            ("pay-a2", "succeeded", "USD", None),
            ("pay-ai1", "succeeded", "USD", "Visa •••• 4242"),
            ("pay-ai2", "dispute_lost", "USD", "Visa •••• 4242"),
            ("pay-ai2", "dispute_opened", "USD", "Visa •••• 4242"),
            ("pay-ai2", "succeeded", "USD", "Visa •••• 4242"),
            ("pay-e1", "succeeded", "EUR", "SEPA"),
            ("pay-e1", "unlinked", "EUR", "SEPA"),
        ]
        assert_no_offset_gaps(tmp_path / "stack")
