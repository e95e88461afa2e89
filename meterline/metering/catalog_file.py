"""Load the catalog file that seeds meters, plans and the token price book at start.

Format (JSON; amounts as strings or numbers, both read exactly; times as epoch ms or ISO-8601
with a zone)::

    {
      "meters": [{"code": "api_calls", "aggregation": "count",
                  "value_field": "value", "group_by": []}],
      "model_prices": [{"model": "gpt-4o", "provider": "openai", "input_per_million": "2.50",
                        "output_per_million": "10.00", "cached_input_per_million": "1.25",
                        "cache_write_per_million": null,
                        "effective_from": "2025-01-01T00:00:00Z"}],
      "markups": [{"rate": "0.2", "effective_from": "2025-01-01T00:00:00Z"}],
      "plans": [{"plan_id": "lora-pro", ...}],
      "fx_rates": [{"base": "USD", "quote": "EUR", "rate": "0.92",
                    "effective_from": 1767225600000}]
    }

``cache_write_per_million`` is optional: absent or null charges cache writes at the input
price. Token counts follow TokenEvent (cached and cache-write tokens are parts of input).

Plans are kept as plain dicts: the billing domain interprets them. Any error names the file and
the entry, because a bad catalog should stop a worker at start, loudly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterline.metering.meters import MeterCatalog, MeterDef
from meterline.metering.pricebook import Markup, ModelPrice, PriceBook

DEFAULT_CATALOG_PATH = Path(__file__).resolve().parent.parent / "data" / "catalog.json"

_TOP_KEYS = frozenset({"description", "meters", "model_prices", "markups", "plans", "fx_rates"})


class CatalogFileError(ValueError):
    """The catalog file is unreadable or has an invalid entry."""


@dataclass
class CatalogSeed:
    meters: list[MeterDef] = field(default_factory=list)
    model_prices: list[ModelPrice] = field(default_factory=list)
    markups: list[Markup] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)
    # Like plans, kept as written: the billing domain interprets them (meterline.billing.fx).
    fx_rates: list[dict[str, Any]] = field(default_factory=list)

    def meter_catalog(self) -> MeterCatalog:
        return MeterCatalog(self.meters)

    def price_book(self) -> PriceBook:
        return PriceBook(self.model_prices, self.markups)


def _entries(data: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise CatalogFileError(f"{source}: {key} must be a list")
    return value


def parse_catalog(data: Any, source: str = "catalog") -> CatalogSeed:
    """Build a ``CatalogSeed`` from already-decoded JSON (decode with parse_float=Decimal)."""
    if not isinstance(data, Mapping):
        raise CatalogFileError(f"{source}: the catalog must be a JSON object")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise CatalogFileError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
    seed = CatalogSeed()

    codes: set[str] = set()
    for i, entry in enumerate(_entries(data, "meters", source)):
        try:
            meter = MeterDef.from_dict(entry)
        except ValueError as exc:
            raise CatalogFileError(f"{source}: meters[{i}]: {exc}") from None
        if meter.code in codes:
            raise CatalogFileError(f"{source}: meters[{i}]: meter {meter.code!r} is declared twice")
        codes.add(meter.code)
        seed.meters.append(meter)

    seen_prices: set[tuple[str, int]] = set()
    for i, entry in enumerate(_entries(data, "model_prices", source)):
        try:
            if not isinstance(entry, Mapping):
                raise ValueError("a model price must be an object")
            price = ModelPrice.from_dict(entry)
        except ValueError as exc:
            raise CatalogFileError(f"{source}: model_prices[{i}]: {exc}") from None
        key = (price.model, price.effective_from)
        if key in seen_prices:
            # Two prices for one instant would make the price in force depend on file order.
            raise CatalogFileError(
                f"{source}: model_prices[{i}]: model {price.model!r} has two prices from the "
                "same effective_from"
            )
        seen_prices.add(key)
        seed.model_prices.append(price)

    seen_markups: set[int] = set()
    for i, entry in enumerate(_entries(data, "markups", source)):
        try:
            if not isinstance(entry, Mapping):
                raise ValueError("a markup must be an object")
            markup = Markup.from_dict(entry)
        except ValueError as exc:
            raise CatalogFileError(f"{source}: markups[{i}]: {exc}") from None
        if markup.effective_from in seen_markups:
            raise CatalogFileError(
                f"{source}: markups[{i}]: two markups from the same effective_from"
            )
        seen_markups.add(markup.effective_from)
        seed.markups.append(markup)

    plan_ids: set[str] = set()
    for i, entry in enumerate(_entries(data, "plans", source)):
        if not isinstance(entry, dict):
            raise CatalogFileError(f"{source}: plans[{i}]: a plan must be an object")
        plan_id = entry.get("plan_id")
        if not isinstance(plan_id, str) or not plan_id:
            raise CatalogFileError(f"{source}: plans[{i}]: plan_id must be a non-empty string")
        if plan_id in plan_ids:
            raise CatalogFileError(f"{source}: plans[{i}]: plan {plan_id!r} is declared twice")
        plan_ids.add(plan_id)
        seed.plans.append(entry)

    for i, entry in enumerate(_entries(data, "fx_rates", source)):
        if not isinstance(entry, dict):
            raise CatalogFileError(f"{source}: fx_rates[{i}]: an exchange rate must be an object")
        seed.fx_rates.append(entry)
    return seed


def load_catalog(path: str | Path = DEFAULT_CATALOG_PATH) -> CatalogSeed:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogFileError(f"{path}: cannot read the catalog: {exc.strerror}") from None
    try:
        # parse_float=Decimal: a price written as a JSON number must not pass through float.
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise CatalogFileError(f"{path}: invalid JSON: {exc}") from None
    return parse_catalog(data, str(path))
