"""The catalog's exchange rates reach every account the processor bills: a customer invoiced
in its own currency gets its invoice converted at the rate in force at issue."""

from __future__ import annotations

from decimal import Decimal

from meterline.billing.fx import FxRate, FxRates
from meterline.metering.catalog_file import parse_catalog
from meterline.metering.dedup import DedupIndex
from meterline.processor.billing_rules import BillingRules
from meterline.processor.customer import CustomerProcessor, CustomerState

from .test_customer_processor import CUSTOMER, DAY, SEED, START, upsert, usage


def test_an_account_invoiced_in_eur_is_converted_at_the_catalog_rate() -> None:
    rates = FxRates([FxRate("USD", "EUR", Decimal("0.9"), START - DAY)])
    rules = BillingRules(
        SEED.meter_catalog(), SEED.price_book(), {p["plan_id"]: p for p in SEED.plans}, rates
    )
    p = CustomerProcessor(SEED.meter_catalog(), rules, DedupIndex(horizon_ms=35 * DAY))
    state = CustomerState.new(CUSTOMER)
    command = upsert(0)
    command.body.value["invoice_currency"] = "EUR"
    p.process(state, [command, usage(1, "e1", 1, "500")])
    assert state.account is not None
    fx = rules.account(state.account).tick(START + 40 * DAY)
    invoice = next(i for i in fx.invoices if i.kind == "period")
    assert invoice.currency == "EUR"
    assert invoice.fx is not None and invoice.fx.rate == Decimal("0.9")
    assert invoice.amount_due > 0


def test_the_catalog_file_seeds_exchange_rates() -> None:
    seed = parse_catalog(
        {"fx_rates": [{"base": "USD", "quote": "JPY", "rate": "150", "effective_from": 0}]}
    )
    assert seed.fx_rates == [{"base": "USD", "quote": "JPY", "rate": "150", "effective_from": 0}]


def test_a_catalog_change_adds_a_rate_from_its_effective_time() -> None:
    from meterline.metering.meters import MeterCatalog
    from meterline.metering.pricebook import PriceBook
    from streams.catalog_feed import CatalogFeed, normalize_change

    feed = CatalogFeed("", None, None, MeterCatalog(), PriceBook(), {})  # type: ignore[arg-type]
    change = {"type": "fx_rate", "change_id": "fx-1", "at": 0, "base": "usd", "quote": "eur"}
    change |= {"rate": "0.92", "effective_from": "2026-01-01T00:00:00Z"}
    feed.apply(*normalize_change("json", change))
    quote = feed.fx_rates.quote("USD", "EUR", START)
    assert quote is not None and quote.rate == Decimal("0.92") and quote.effective_from == START
    assert feed.fx_rates.quote("USD", "EUR", START - 1) is None
