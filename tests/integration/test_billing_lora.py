"""Issue 4 acceptance: the Lora scenario of DESIGN.md on the embedded stack with a worker
SIGKILL mid-run. A plan with a monthly fee, monthly recurring credits, rate-card pricing over
two products plus token usage and auto top-up at a threshold, over two billing periods, with
every payment outcome kind: ledger, balances, top-up requests and invoice lines equal a
reference computed here by driving the pure billing domain with the same inputs.

Inputs are published in phases and each phase is awaited until its effects are stored, so one
customer's inputs from different topics reach the account in a known order (the reference's)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.billing.catalog import Plan
from meterline.embedded.stack import EmbeddedStack
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH, load_catalog
from tests.integration.billing_scenario import (
    Reference,
    Scenario,
    assert_ledger_and_balance,
    ledger_count,
    norm,
    wait_applied,
)
from tests.integration.worker_logs import assert_no_offset_gaps

pytestmark = pytest.mark.integration

DAY = 86_400_000
HOUR = 3_600_000
CUSTOMERS = ["lora-a", "lora-b", "lora-c"]
SEED = load_catalog(DEFAULT_CATALOG_PATH)
PLAN = Plan.from_dict(SEED.plans[0])
PRICES = SEED.price_book()
TOPUP = {
    "threshold": "20.00",
    "mode": "fixed",
    "amount": "100.00",
    "cooldown_ms": 0,
    "retry_delays_ms": [HOUR],
    "max_per_period": 5,
}


def month_start(ms: int, months_back: int) -> int:
    d = datetime.fromtimestamp(ms / 1000, tz=UTC)
    y, m = d.year, d.month - months_back
    while m <= 0:
        y, m = y - 1, m + 12
    return int(datetime(y, m, 1, tzinfo=UTC).timestamp() * 1000)


def test_lora_two_periods_every_payment_outcome_with_crash(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    anchor = month_start(now, 2)  # periods: two months back, one month back; now closes both
    p2 = month_start(now, 1)
    ref = Reference(CUSTOMERS)
    env = {
        "METERLINE_CATALOG_FILE": str(DEFAULT_CATALOG_PATH),
        "METERLINE_MAX_PAST_DAYS": "100",
        "METERLINE_DEDUP_HORIZON_DAYS": "100",
        # Simulated history: only the inputs move the accounts' clocks.
        "METERLINE_BILLING_TICK_SECONDS": "0",
    }
    with EmbeddedStack(tmp_path / "stack", partitions=2) as stack:
        worker = stack.start_worker(**env)
        sc = Scenario(stack, ref)

        # 1. Customers on the Lora plan with auto top-up.
        sc.commands(
            [
                {
                    "type": "upsert",
                    "customer_id": c,
                    "at": anchor + HOUR,
                    "plan_id": PLAN.plan_id,
                    "billing_anchor": anchor,
                    "tz": "UTC",
                    "topup": TOPUP,
                }
                for c in CUSTOMERS
            ]
        )
        wait_applied(worker, sc, ledger_count(ref))

        # 2. Period 1 usage over two products; the balance crosses the threshold. The worker
        #    is killed while this phase is in flight (one topic, so replay order is fixed).
        t = anchor + DAY
        for c in CUSTOMERS:
            sc.usage(c, "api_calls", 10_400, Decimal(1), t)
            sc.usage(c, "image_generations", 900, Decimal(1), t + 20_000_000)
        sc.flush()
        time.sleep(0.5)
        worker.kill()
        worker = stack.start_replacement(**env)
        wait_applied(worker, sc, ledger_count(ref))
        for c in CUSTOMERS:
            sc.tokens(c, "gpt-4o", 3, t + 2 * DAY)
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))

        # 3. The processor answers the first top-up of each customer.
        requests = sorted(ref.topups)
        assert requests == [f"topup:{c}:1" for c in CUSTOMERS]
        t3 = t + 3 * DAY
        sc.payment("lora-a", "topup:lora-a:1", "succeeded", t3, "pay-a1")
        sc.payment("lora-a", "topup:lora-a:1", "succeeded", t3, "pay-a1")  # delivered twice
        sc.payment("lora-b", "topup:lora-b:1", "failed", t3, "pay-b1", failure="card_declined")
        sc.payment("lora-c", "topup:lora-c:1", "succeeded", t3, "pay-c1")
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))

        # 4. Time passes for lora-b: the dunning retry is due and asked for.
        sc.usage("lora-b", "image_generations", 5, Decimal(1), t3 + 2 * HOUR)
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))
        assert "topup:lora-b:2" in ref.topups
        sc.payment("lora-b", "topup:lora-b:2", "succeeded", t3 + 3 * HOUR, "pay-b2")
        sc.payment("lora-c", "topup:lora-c:1", "refunded", t3 + 3 * HOUR, "pay-c1")
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))

        # 5. Period 2 usage, then an event after its end closes it: two invoices each.
        for c in CUSTOMERS:
            sc.usage(c, "image_generations", 300, Decimal(2), p2 + DAY)
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))
        for c in CUSTOMERS:
            sc.tokens(c, "claude-sonnet", 2, p2 + 2 * DAY)
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))
        for c in CUSTOMERS:
            sc.usage(c, "api_calls", 1, Decimal(1), now - HOUR)
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))

        # The outcome, as stored.
        for c in CUSTOMERS:
            assert_ledger_and_balance(worker, ref, c)

        topups = worker.sql(
            "SELECT request_id, toString(amount), attempt FROM topups FINAL ORDER BY request_id"
        )["rows"]
        assert [(r, Decimal(a), int(n)) for r, a, n in topups] == sorted(
            (k, Decimal(v["amount"]), v["attempt"]) for k, v in ref.topups.items()
        )

        lines = worker.sql(
            "SELECT invoice_id, line_no, kind, meter, toString(quantity), toString(unit_price), "
            "toString(amount) FROM invoice_lines FINAL ORDER BY invoice_id, line_no"
        )["rows"]
        expected_lines = sorted(
            (
                ln["invoice_id"],
                ln["line_no"],
                ln["kind"],
                ln["meter"],
                ln["quantity"],
                ln["unit_price"],
                ln["amount"],
            )
            for inv in ref.invoices.values()
            for ln in inv["lines"]
        )
        assert len({i for i, *_ in lines}) == 2 * len(CUSTOMERS)
        assert [norm(r) for r in lines] == [norm(r) for r in expected_lines]

        pays = worker.sql(
            "SELECT payment_id, processor, status FROM payments FINAL ORDER BY payment_id, status"
        )["rows"]
        assert [tuple(p) for p in pays] == [
            ("pay-a1", "stripe", "succeeded"),
            ("pay-b1", "adyen", "failed"),
            ("pay-b2", "adyen", "succeeded"),
            ("pay-c1", "stripe", "refunded"),
            ("pay-c1", "stripe", "succeeded"),
        ]
        assert_no_offset_gaps(tmp_path / "stack")
