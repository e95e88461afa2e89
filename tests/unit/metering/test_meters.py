"""Meter definitions: value extraction, group-by, canonical dimension keys, the live catalog."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.metering.aggregation import Aggregation, WindowAgg
from meterline.metering.meters import (
    MeterCatalog,
    MeterDef,
    MeterDefinitionError,
    MeterValueError,
    dims_key,
)


def event(value: object = None, **dims: str) -> dict:
    e: dict = {"event_id": "e1", "customer_id": "c1", "meter": "m", "timestamp": 0}
    if value is not None:
        e["value"] = value
    e["dimensions"] = dims
    return e


def test_sum_reads_the_value_exactly() -> None:
    meter = MeterDef("tokens", Aggregation.SUM)
    assert meter.extract(event(Decimal("1.10"))) == (Decimal("1.10"), None)
    assert meter.extract(event("2.5")) == (Decimal("2.5"), None)
    assert meter.extract(event(3)) == (Decimal(3), None)


def test_value_from_a_dimension() -> None:
    meter = MeterDef("gb", Aggregation.MAX, value_field="size_gb")
    assert meter.extract(event(1, size_gb="12.75")) == (Decimal("12.75"), None)
    with pytest.raises(MeterValueError, match="dimension 'size_gb'"):
        meter.extract(event(1))


def test_count_ignores_the_value() -> None:
    meter = MeterDef("api_calls", Aggregation.COUNT)
    assert meter.extract(event()) == (Decimal(1), None)
    assert meter.extract(event("not a number")) == (Decimal(1), None)


def test_unique_count_of_a_dimension() -> None:
    meter = MeterDef("active_users", Aggregation.UNIQUE_COUNT, value_field="user_id")
    assert meter.extract(event(user_id="u-7")) == (Decimal(1), "u-7")
    with pytest.raises(MeterValueError, match="user_id"):
        meter.extract(event(other="x"))


def test_unique_count_of_values_treats_equal_numbers_as_one() -> None:
    meter = MeterDef("distinct_sizes", Aggregation.UNIQUE_COUNT)
    agg = WindowAgg.empty(meter.keeps_uniques)
    for i, raw in enumerate(["1", "1.0", Decimal("1.00"), 1, "2"]):
        value, unique = meter.extract(event(raw))
        agg.add(value, 0, f"e{i}", unique)
    assert agg.result(Aggregation.UNIQUE_COUNT) == 2


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "needs a value"),
        (1.5, "binary float"),
        ("abc", "not a decimal"),
        ("NaN", "not a finite"),
        ("Infinity", "not a finite"),
        (True, "not a decimal"),
        ("0.0000000000001", "12 decimal places"),
        ("1" + "0" * 26, "too large"),
    ],
)
def test_bad_values_are_refused_with_a_reason(raw: object, reason: str) -> None:
    with pytest.raises(MeterValueError, match=reason):
        MeterDef("m").extract(event(raw))


def test_trailing_zeros_beyond_storage_scale_are_fine() -> None:
    value, _ = MeterDef("m").extract(event("1.50000000000000000"))
    assert value == Decimal("1.5")


def test_group_dims_keeps_only_declared_present_keys() -> None:
    meter = MeterDef("images", Aggregation.SUM, group_by=("model", "region"))
    assert meter.group_dims({"model": "sdxl", "user": "u1"}) == {"model": "sdxl"}
    assert meter.group_dims(None) == {}
    assert MeterDef("x").group_dims({"model": "sdxl"}) == {}


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=6), st.randoms())
def test_dims_key_is_canonical(dims: dict[str, str], rnd) -> None:
    items = list(dims.items())
    rnd.shuffle(items)
    assert dims_key(dict(items)) == dims_key(dims)
    assert json.loads(dims_key(dims)) == dims
    assert dims_key(dims) == json.dumps(dims, sort_keys=True, separators=(",", ":"))
    assert MeterDef.dims_key(dims) == dims_key(dims)


def test_dims_key_format() -> None:
    assert dims_key({"b": "2", "a": "1"}) == '{"a":"1","b":"2"}'
    assert dims_key({}) == "{}"
    assert dims_key({"n": 5, "a": "x"}) == '{"a":"x","n":5}'  # non-strings fall back to json


def test_default_meter_sums_value() -> None:
    meter = MeterDef.default("anything")
    assert (meter.aggregation, meter.value_field, meter.group_by) == (
        Aggregation.SUM,
        "value",
        (),
    )


@pytest.mark.parametrize(
    "data",
    [
        {"code": "m", "aggregation": "avg"},
        {"code": "", "aggregation": "sum"},
        {"aggregation": "sum"},
        {"code": "m", "groupby": ["a"]},
        {"code": "m", "group_by": "model"},
        {"code": "m", "group_by": ["a", "a"]},
    ],
)
def test_bad_meter_definitions(data: dict) -> None:
    with pytest.raises(MeterDefinitionError):
        MeterDef.from_dict(data)


def test_meter_dict_round_trip() -> None:
    meter = MeterDef("images", Aggregation.SUM, "value", ("model",))
    assert MeterDef.from_dict(meter.to_dict()) == meter
    assert (
        MeterDef.from_dict({"code": "c", "aggregation": "count"}).aggregation is Aggregation.COUNT
    )


def test_catalog_get_falls_back_to_default() -> None:
    catalog = MeterCatalog([MeterDef("api_calls", Aggregation.COUNT)])
    assert catalog.get("api_calls").aggregation is Aggregation.COUNT
    assert catalog.get("new_meter") == MeterDef.default("new_meter")
    assert catalog.declared("new_meter") is None
    assert "api_calls" in catalog and "new_meter" not in catalog


def test_catalog_versioned_changes_are_idempotent() -> None:
    catalog = MeterCatalog()
    catalog.get("latency")  # cached default must not survive a declaration
    upsert = {
        "version": 1,
        "op": "upsert",
        "meter": {"code": "latency", "aggregation": "max"},
    }
    assert catalog.apply(upsert) is True
    assert catalog.get("latency").aggregation is Aggregation.MAX
    assert catalog.apply(upsert) is False  # replayed
    stale = {"version": 1, "op": "upsert", "meter": {"code": "latency", "aggregation": "min"}}
    assert catalog.apply(stale) is False
    assert catalog.get("latency").aggregation is Aggregation.MAX
    assert catalog.apply({"version": 3, "op": "delete", "code": "latency"}) is True
    assert catalog.get("latency") == MeterDef.default("latency")
    assert catalog.version == 3
    with pytest.raises(MeterDefinitionError):
        catalog.apply({"version": 9, "op": "rename"})
    with pytest.raises(MeterDefinitionError):
        catalog.apply({"op": "delete", "code": "x"})


def test_catalog_dict_round_trip() -> None:
    catalog = MeterCatalog(
        [MeterDef("b", Aggregation.LATEST), MeterDef("a", Aggregation.UNIQUE_COUNT, "user_id")],
        version=4,
    )
    again = MeterCatalog.from_dict(json.loads(json.dumps(catalog.to_dict())))
    assert again.to_dict() == catalog.to_dict()
    assert [m.code for m in again] == ["a", "b"]
    assert len(again) == 2
    with pytest.raises(MeterDefinitionError, match="twice"):
        MeterCatalog([MeterDef("a"), MeterDef("a")])
