"""The production state store (METERLINE_STATE_STORE=rocksdb://, rocksdict): customer state
lives on local disk, filed by the customer's home partition, and a worker SIGKILLed and
restarted on the same disk resumes exactly: ledger and balances equal the billing domain fed
the same inputs."""

from __future__ import annotations

import time
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
    wait_applied,
)
from tests.integration.worker_logs import assert_no_offset_gaps

pytestmark = pytest.mark.integration

CUSTOMERS = [f"rocks-{i}" for i in range(8)]
HOUR = 3_600_000


def test_rocksdb_state_survives_a_crash_and_a_restart(tmp_path: Path) -> None:
    start = (int(time.time() * 1000) // HOUR - 48) * HOUR
    env = {
        "METERLINE_CATALOG_FILE": str(DEFAULT_CATALOG_PATH),
        "METERLINE_STATE_STORE": "rocksdb://",
        "METERLINE_BILLING_TICK_SECONDS": "0",
    }
    ref = Reference(CUSTOMERS)
    with EmbeddedStack(tmp_path / "stack", partitions=2) as stack:
        worker = stack.start_worker(**env)
        sc = Scenario(stack, ref)
        sc.commands(
            [
                {
                    "type": "upsert",
                    "customer_id": c,
                    "at": start,
                    "plan_id": PLAN.plan_id,
                    "billing_anchor": start,
                    "tz": "UTC",
                }
                for c in CUSTOMERS
            ]
        )
        wait_applied(worker, sc, ledger_count(ref))
        for c in CUSTOMERS:
            sc.usage(c, "image_generations", 600, Decimal(1), start + HOUR)
        sc.flush()
        time.sleep(0.4)
        worker.kill()
        worker = stack.start_replacement(**env)
        wait_applied(worker, sc, ledger_count(ref))
        # A clean stop and a start on the same disk: state is read back from RocksDB.
        worker.stop()
        worker = stack.start_worker(**env)
        for c in CUSTOMERS:
            sc.usage(c, "api_calls", 50, Decimal(1), start + 2 * HOUR)
        sc.flush()
        wait_applied(worker, sc, ledger_count(ref))

        rocks = list((tmp_path / "stack" / "faust").rglob("*.db"))
        assert rocks, "no RocksDB partition databases were written"
        for c in CUSTOMERS:
            assert_ledger_and_balance(worker, ref, c)
        (events,) = worker.sql("SELECT count() FROM usage_events FINAL")["rows"][0]
        assert int(events) == sc.usage_sent
        assert_no_offset_gaps(tmp_path / "stack")
