"""An account aged through fourteen billing periods on the embedded stack: a recurring grant
every month, an auto top-up requested and paid every month, usage every day, and a SIGKILL in
the middle. Balance, ledger, top-ups and invoices equal the billing domain driven with the
same inputs, however much of the account's past its state has let go of."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.embedded.stack import EmbeddedStack
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
from tests.integration.worker_logs import assert_no_offset_gaps

pytestmark = pytest.mark.integration

DAY = 86_400_000
HOUR = 3_600_000
MONTHS = 14
CUSTOMERS = ["aged-a", "aged-b"]
TOPUP = {
    "threshold": "20.00",
    "mode": "fixed",
    "amount": "30.00",
    "cooldown_ms": 0,
    "retry_delays_ms": [HOUR],
    "max_per_period": 3,
}


def month_start(year: int, month: int) -> int:
    while month > 12:
        year, month = year + 1, month - 12
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def test_an_account_aged_fourteen_months_stays_exact_across_a_crash(tmp_path: Path) -> None:
    now = datetime.now(tz=UTC)
    y, m = now.year - 2, now.month  # history starts 24 months back; 14 of them are used
    anchor = month_start(y, m)
    ref = Reference(CUSTOMERS)
    env = {
        "METERLINE_CATALOG_FILE": str(DEFAULT_CATALOG_PATH),
        "METERLINE_MAX_PAST_DAYS": "800",
        "METERLINE_DEDUP_HORIZON_DAYS": "800",
        "METERLINE_BILLING_TICK_SECONDS": "0",
    }
    with EmbeddedStack(tmp_path / "stack", partitions=2) as stack:
        worker = stack.start_worker(**env)
        sc = Scenario(stack, ref)
        sc.commands(
            [
                {
                    "type": "upsert",
                    "customer_id": c,
                    "at": anchor,
                    "plan_id": PLAN.plan_id,
                    "billing_anchor": anchor,
                    "tz": "UTC",
                    "topup": TOPUP,
                }
                for c in CUSTOMERS
            ]
        )
        wait_applied(worker, sc, ledger_count(ref))
        paid: set[str] = set()
        for month in range(MONTHS):
            start = month_start(y, m + month)
            # 112 credits of images a month: the monthly 50 run out, and one top-up is asked
            # for (never a second while it is pending) and paid at the month's end.
            for day in range(28):
                for c in CUSTOMERS:
                    sc.usage(c, "image_generations", 2, Decimal(50), start + day * DAY + HOUR)
            sc.flush()
            if month == MONTHS // 2:
                time.sleep(0.3)
                worker.kill()
                worker = stack.start_replacement(**env)
            wait_applied(worker, sc, ledger_count(ref))
            for request in sorted(set(ref.topups) - paid):
                customer = request.split(":")[1]
                at = start + 28 * DAY + 2 * HOUR
                amount = ref.topups[request]["amount"]
                sc.payment(customer, request, "succeeded", at, f"pay:{request}", amount)
                paid.add(request)
            sc.flush()
            wait_applied(worker, sc, ledger_count(ref))
        assert len(paid) == MONTHS * len(CUSTOMERS)

        for c in CUSTOMERS:
            assert_ledger_and_balance(worker, ref, c)
        lines = worker.sql(
            "SELECT invoice_id, line_no, kind, meter, toString(quantity), toString(amount) "
            "FROM invoice_lines FINAL ORDER BY invoice_id, line_no"
        )["rows"]
        expected_lines = sorted(
            (ln["invoice_id"], ln["line_no"], ln["kind"], ln["meter"], ln["quantity"], ln["amount"])
            for inv in ref.invoices.values()
            for ln in inv["lines"]
        )
        assert len({i for i, *_ in lines}) == (MONTHS - 1) * len(CUSTOMERS)
        assert [norm(r) for r in lines] == [norm(r) for r in expected_lines]
        topups = worker.sql("SELECT request_id FROM topups FINAL ORDER BY request_id")["rows"]
        assert [r for (r,) in topups] == sorted(ref.topups)
        assert_no_offset_gaps(tmp_path / "stack")
