"""Fuzzing the parsers behind the decoders: account commands and payment outcomes as the
processor applies them (meterline/processor/billing_rules.py), and catalog changes as the
catalog feed applies them (streams/catalog_feed.py). A malformed record is refused with a
reason (an account or payment record: into the DLQ; a catalog change: logged and skipped),
never raised into the worker, and never leaves the processor unable to apply good input."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline.billing.account import Account
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH, load_catalog
from meterline.metering.meters import MeterCatalog
from meterline.metering.pricebook import PriceBook
from meterline.processor.account_state import AccountState
from meterline.processor.billing_rules import BillingRules
from meterline.processor.inputs import InputKind
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams.catalog_feed import CatalogFeed
from tests.unit.fuzz.test_decoder_fuzz import JSON_ANY

SEED = load_catalog(DEFAULT_CATALOG_PATH)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANCHOR = 1_767_225_600_000
UPSERT = {
    "type": "upsert",
    "customer_id": "c-1",
    "at": ANCHOR,
    "plan_id": "lora-pro",
    "billing_anchor": ANCHOR,
    "tz": "UTC",
    "topup": {"threshold": "20.00", "mode": "fixed", "amount": "100.00"},
}
COMMAND_FIELDS = [
    "type", "customer_id", "at", "plan_id", "billing_anchor", "tz", "topup", "grant_id",
    "amount", "priority", "expires_at", "effective_at", "scope", "category", "period_start",
    "periods", "until", "items", "invoice_currency", "low_balance_threshold",
    "expiry_notice_ms",
]  # fmt: skip
PAYMENT = {
    "payment_id": "p-1", "customer_id": "c-1", "processor": "stripe", "status": "succeeded",
    "amount": "100.00", "currency": "USD", "pays_kind": "topup", "pays_id": "topup:c-1:1",
    "occurred_at": ANCHOR + 1000, "failure_code": None,
}  # fmt: skip
TYPES = st.sampled_from(["upsert", "grant", "void", "bill_in_advance", "bogus", None, 3])
STATUSES = st.sampled_from(
    ["succeeded", "failed", "refunded", "canceled", "dispute_opened", "dispute_won",
     "dispute_lost", "unlinked", "unknown", "", None, 7]
)  # fmt: skip


class _Rows:
    """Stands in for the ClickHouse writer: the catalog feed only adds rows."""

    def add(self, *args: Any) -> None:
        pass

    def flush(self) -> int:
        return 0


def rules() -> BillingRules:
    return BillingRules(
        SEED.meter_catalog(), SEED.price_book(), {p["plan_id"]: p for p in SEED.plans}
    )


def fresh_state(r: BillingRules) -> AccountState:
    state = AccountState("c-1", Account("c-1"))
    assert r.billing_input(state, InputKind.ACCOUNTS, _json(UPSERT)) == []
    return state


def _json(value: Any) -> Any:
    from meterline.processor.inputs import BillingInput

    return BillingInput("c-1", "json", value)


def assert_refused_or_applied(errors: Any) -> None:
    assert isinstance(errors, list)
    assert all(isinstance(e, str) and e for e in errors)


@FUZZ
@given(TYPES, st.dictionaries(st.sampled_from(COMMAND_FIELDS), JSON_ANY, max_size=8))
def test_account_commands_never_raise(kind: Any, fields: dict[str, Any]) -> None:
    r = rules()
    state = fresh_state(r)
    cmd = {**UPSERT, "type": kind, **fields}
    assert_refused_or_applied(r.billing_input(state, InputKind.ACCOUNTS, _json(cmd)))


@FUZZ
@given(STATUSES, st.dictionaries(st.sampled_from([*PAYMENT, "dispute_fee"]), JSON_ANY))
def test_payment_outcomes_never_raise(status: Any, fields: dict[str, Any]) -> None:
    r = rules()
    state = fresh_state(r)
    outcome = {**PAYMENT, "status": status, **fields}
    assert_refused_or_applied(r.billing_input(state, InputKind.PAYMENTS, _json(outcome)))


CATALOG_TYPES = st.sampled_from(["meter", "plan", "model_price", "markup", "fx_rate", "x", None])
CATALOG_FIELDS = [
    "code", "aggregation", "value_field", "group_by", "plan_id", "currency", "fee",
    "recurring_credits", "rate_card", "model", "provider", "input_per_million",
    "output_per_million", "cached_input_per_million", "effective_from", "rate", "base", "quote",
]  # fmt: skip


@FUZZ
@given(CATALOG_TYPES, st.dictionaries(st.sampled_from(CATALOG_FIELDS), JSON_ANY, max_size=8))
def test_catalog_changes_never_raise_nor_poison_billing(kind: Any, fields: dict[str, Any]) -> None:
    plans = {p["plan_id"]: p for p in SEED.plans}
    meters, prices = SEED.meter_catalog(), SEED.price_book()
    feed = CatalogFeed("", Codec(registry_from_settings("")), _Rows(), meters, prices, plans)  # type: ignore[arg-type]
    body = {"type": kind, "change_id": "x", "at": ANCHOR, **fields}
    if kind == "plan":
        body.setdefault("plan_id", "lora-pro")
    feed._apply_message(json.dumps(body).encode())
    # Whatever the change was, a good upsert onto the seeded plan still applies.
    r = BillingRules(meters, prices, plans)
    state = AccountState("c-1", Account("c-1"))
    assert r.billing_input(state, InputKind.ACCOUNTS, _json(UPSERT)) == []


def test_a_malformed_plan_change_is_refused_and_the_plan_in_force_stays() -> None:
    """Regression (found by the test above): a plan change was stored unparsed, so one bad
    plan made every later account command fail (each tried to parse it) until the catalog
    was corrected."""
    plans = {p["plan_id"]: p for p in SEED.plans}
    meters, prices = SEED.meter_catalog(), SEED.price_book()
    feed = CatalogFeed("", Codec(registry_from_settings("")), _Rows(), meters, prices, plans)  # type: ignore[arg-type]
    bad = {"type": "plan", "change_id": "x", "at": ANCHOR, "plan_id": "lora-pro", "fee": "abc"}
    feed._apply_message(json.dumps(bad).encode())
    assert feed.errors == 1
    r = BillingRules(meters, prices, plans)
    assert (
        r.billing_input(AccountState("c-1", Account("c-1")), InputKind.ACCOUNTS, _json(UPSERT))
        == []
    )
    other = {**bad, "plan_id": "brand-new"}
    feed._apply_message(json.dumps(other).encode())
    assert "brand-new" not in plans


def test_meter_and_price_catalogs_survive_bad_changes() -> None:
    meters, prices = MeterCatalog(), PriceBook()
    feed = CatalogFeed("", Codec(registry_from_settings("")), _Rows(), meters, prices, {})  # type: ignore[arg-type]
    for body in (
        {"type": "meter", "code": "x", "aggregation": "median"},
        {"type": "meter", "code": "x", "aggregation": "sum", "group_by": 5},
        {"type": "model_price", "model": "m", "input_per_million": "-1"},
        {"type": "markup", "rate": "NaN"},
        {"type": "fx_rate", "base": "USD"},
    ):
        feed._apply_message(json.dumps(body).encode())
    assert feed.errors == 5 and feed.applied == 0


def test_a_command_with_a_non_object_where_an_object_belongs_is_refused() -> None:
    """Regression (found by test_account_commands_never_raise): ``items: [null]`` or a string
    top-up policy raised AttributeError out of apply_command, past the processor's guard, so
    the worker stopped on that record, and again on its replay after every restart."""
    r = rules()
    for cmd in (
        {"type": "bill_in_advance", "customer_id": "c-1", "at": ANCHOR, "items": [None]},
        {**UPSERT, "topup": "x"},
    ):
        errors = r.billing_input(fresh_state(r), InputKind.ACCOUNTS, _json(cmd))
        assert errors and "malformed" in errors[0]
