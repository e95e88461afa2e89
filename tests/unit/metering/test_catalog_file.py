"""The catalog file: the shipped Lora sample loads, and bad files fail loudly with a location."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.metering.aggregation import Aggregation
from meterline.metering.catalog_file import (
    DEFAULT_CATALOG_PATH,
    CatalogFileError,
    load_catalog,
    parse_catalog,
)
from meterline.metering.meters import MeterDef

T2026 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_lora_sample_catalog_loads() -> None:
    seed = load_catalog(DEFAULT_CATALOG_PATH)
    meters = {m.code: m for m in seed.meters}
    assert meters["api_calls"] == MeterDef("api_calls", Aggregation.COUNT)
    assert meters["image_generations"] == MeterDef(
        "image_generations", Aggregation.SUM, "value", ("model",)
    )
    assert meters["active_users"] == MeterDef("active_users", Aggregation.UNIQUE_COUNT, "user_id")
    assert meters["storage_gb"].aggregation is Aggregation.LATEST
    assert meters["latency_ms_max"].aggregation is Aggregation.MAX

    book = seed.price_book()
    assert {"gpt-4o", "claude-sonnet", "llama-70b"} <= set(book.models())
    assert book.markup_at(T2026) == Decimal("0.2")
    cost = book.cost("claude-sonnet", 1_000_000, 1_000_000, 0, T2026)
    assert cost.cost == Decimal(18)
    assert cost.billed == Decimal("21.6")

    (plan,) = seed.plans
    assert plan["plan_id"] == "lora-pro"
    assert Decimal(plan["fee"]) == Decimal("49.00")
    assert {entry["model"]["type"] for entry in plan["rate_card"] if entry["model"]} == {
        "graduated",
        "per_unit",
        "volume",
        "package",
    }
    for entry in plan["rate_card"]:
        # Every priced meter is declared; llm_tokens is priced by the price book instead.
        assert entry["meter"] in meters or entry["model"] is None

    catalog = seed.meter_catalog()
    assert catalog.get("api_calls") is meters["api_calls"]
    assert catalog.get("undeclared") == MeterDef.default("undeclared")


def test_json_numbers_are_read_exactly(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(
        '{"model_prices": [{"model": "m", "input_per_million": 0.1, "output_per_million": 0.2,'
        ' "cached_input_per_million": 0.3, "effective_from": 0}]}'
    )
    (price,) = load_catalog(path).model_prices
    assert price.input_per_million == Decimal("0.1")  # not 0.1000000000000000055...


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"meters": [{"code": "a", "aggregation": "avg"}]}, r"meters\[0\]: .*unknown aggregation"),
        ({"meters": [{"code": "a"}, {"code": "a"}]}, r"meters\[1\]: .*twice"),
        ({"meters": {"code": "a"}}, "meters must be a list"),
        ({"model_prices": [{"model": "m"}]}, r"model_prices\[0\]: .*lacks"),
        ({"markups": [{"rate": "x", "effective_from": 0}]}, r"markups\[0\]: .*not a decimal"),
        ({"plans": [{"fee": "1"}]}, r"plans\[0\]: plan_id"),
        ({"plans": [{"plan_id": "p"}, {"plan_id": "p"}]}, r"plans\[1\]: .*twice"),
        ({"meterz": []}, "unknown section"),
        ([], "must be a JSON object"),
    ],
)
def test_bad_catalogs_name_the_entry(data: object, where: str) -> None:
    with pytest.raises(CatalogFileError, match=where):
        parse_catalog(data, "test.json")


def test_duplicate_price_instant_is_refused() -> None:
    price = {
        "model": "m",
        "input_per_million": "1",
        "output_per_million": "1",
        "cached_input_per_million": "1",
        "effective_from": "2026-01-01T00:00:00Z",
    }
    with pytest.raises(CatalogFileError, match="same effective_from"):
        parse_catalog({"model_prices": [price, {**price, "effective_from": T2026}]})


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(CatalogFileError, match="cannot read"):
        load_catalog(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CatalogFileError, match="invalid JSON"):
        load_catalog(broken)


def test_empty_catalog_is_valid() -> None:
    seed = parse_catalog(json.loads("{}"))
    assert (seed.meters, seed.model_prices, seed.markups, seed.plans) == ([], [], [], [])


def test_lora_plan_is_readable_by_the_billing_domain() -> None:
    # The metering side keeps plans as dicts; this pins the sample to what billing parses.
    billing = pytest.importorskip("meterline.billing.catalog")
    (plan,) = load_catalog().plans
    parsed = billing.Plan.from_dict(plan)
    assert parsed.plan_id == "lora-pro"
    assert parsed.fee == Decimal("49.00")
    assert set(parsed.rate_card) == {
        "api_calls",
        "image_generations",
        "active_users",
        "storage_gb",
        "llm_tokens",
    }
