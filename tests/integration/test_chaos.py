"""Issue 12: `meterline chaos` in small: 20,000 records of the Lora workload (duplicates, some
with changed values, malformed records of every kind, late events, a price change), two
SIGKILLs (one during recovery), two workers sharing the partitions with one killed and
replaced, and a ClickHouse outage; every surface equals the reference and the DLQ holds
exactly the malformed records."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterline.chaos.run import ChaosOptions, run_chaos
from tests.integration.worker_logs import assert_no_offset_gaps

pytestmark = pytest.mark.integration


def test_chaos_small_run_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    result = run_chaos(
        # The tmpfs that fills up is left to `meterline chaos` (it needs root and time).
        ChaosOptions(
            records=20_000, kills=2, seed=7, outage_seconds=10, work_dir=tmp_path, disk_full=False
        )
    )
    f = result.findings
    assert result.faults.kills >= 3 and result.faults.restarts >= 4, result.faults
    assert (f.lost, f.doubled) == (0, 0), f.details
    assert (f.window_mismatches, f.token_mismatches, f.aggregate_mismatches) == (0, 0, 0), f.details
    assert f.dlq_rows == f.dlq_topic == result.malformed, f.details
    assert (f.duplicate_topups, f.topup_mismatches) == (0, 0), f.details
    assert (f.balance_mismatches, f.ledger_identity_failures, f.ledger_mismatches) == (0, 0, 0)
    assert (f.invoice_mismatches, f.payment_mismatches, f.alert_mismatches) == (0, 0, 0), f.details
    assert result.failures == 0
    assert_no_offset_gaps(tmp_path / "stack")
