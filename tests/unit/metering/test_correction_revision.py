"""A late correction's meterline.aggregates record is one fact: published again after a crash
(its state recovered, possibly after newer input was applied) it is the same record, revision
included. Found by `meterline chaos` (200,000 records): two versions of one correction id."""

from __future__ import annotations

from decimal import Decimal

from meterline.metering.meters import MeterDef
from meterline.metering.usage_state import UsageState
from meterline.processor.aggregates import aggregate_records

METER = MeterDef.from_dict({"code": "api_calls", "aggregation": "sum"})
T0 = 1_767_225_600_000


def late_state() -> UsageState:
    state = UsageState("c-1", version=4, closed_before=T0 + 600_000, watermark=T0 + 900_000)
    assert state.add(METER, "{}", Decimal(2), None, T0, "late-1")  # a correction
    state.version += 1  # written as the next version (CustomerStore.put_usage)
    return state


def test_republished_correction_is_the_same_record() -> None:
    state = late_state()
    first = aggregate_records(state, [])
    # Crash before the cleared state was durable; the replacement applies newer input (a new
    # state version) before it publishes what the recovered state still holds.
    recovered = UsageState.from_dict(state.to_dict())
    recovered.add(METER, "{}", Decimal(1), None, T0 + 960_000, "new-1")
    recovered.version += 1
    again = aggregate_records(recovered, [])
    assert again == first
    assert first[0]["revision"] == 5


def test_state_written_before_revisions_were_kept_reads_its_own_version() -> None:
    data = late_state().to_dict()
    data["corr"] = [c[:6] for c in data["corr"]]
    old = UsageState.from_dict(data)
    assert old.corrections[0].revision == data["v"]
