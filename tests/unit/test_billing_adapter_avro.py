"""Account commands and payment outcomes sent as Avro reach the billing domain in the same shape
as their JSON forms."""

from __future__ import annotations

from decimal import Decimal

from meterline.billing.account import Account
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH, load_catalog
from meterline.processor.account_state import AccountState
from meterline.processor.billing_rules import BillingRules
from meterline.processor.inputs import InputKind
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings

ANCHOR = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SEED = load_catalog(DEFAULT_CATALOG_PATH)


def adapter() -> BillingRules:
    return BillingRules(
        SEED.meter_catalog(), SEED.price_book(), {p["plan_id"]: p for p in SEED.plans}
    )


def roundtrip(codec: Codec, name: str, record: dict) -> tuple[str, dict]:
    return codec.decode(codec.encode(name, record))


def test_avro_upsert_grant_and_payment_drive_the_account() -> None:
    codec = Codec(registry_from_settings(""))
    billing = adapter()
    state = AccountState("lora-x", Account("lora-x"))
    upsert = {
        "command_id": "c1",
        "customer_id": "lora-x",
        "issued_at": ANCHOR + 1,
        "command": (
            "meterline.CustomerUpsert",
            {
                "plan": "lora-pro",
                "billing_anchor": ANCHOR,
                "timezone": "UTC",
                "currency": "USD",
                "topup": {
                    "threshold": Decimal("20"),
                    "mode": "fixed",
                    "amount": Decimal("100"),
                    "target": None,
                    "cooldown_seconds": 60,
                    "max_per_period": 3,
                    "processor": "stripe",
                },
            },
        ),
    }
    assert billing.command(state, *roundtrip(codec, "meterline.AccountCommand", upsert)) == []
    grant = {
        "command_id": "c2",
        "customer_id": "lora-x",
        "issued_at": ANCHOR + 2,
        "command": (
            "meterline.CreditGrant",
            {
                "grant_id": "g1",
                "amount": Decimal("5"),
                "priority": 1,
                "effective_at": ANCHOR,
                "expires_at": None,
                "scope": [],
                "category": "paid",
            },
        ),
    }
    assert billing.command(state, *roundtrip(codec, "meterline.AccountCommand", grant)) == []
    recurring = sum(Decimal(c["amount"]) for c in SEED.plans[0]["recurring_credits"])
    assert state.account.balance() == recurring + 5

    # Burn below the threshold: a top-up request, then its outcome as Avro.
    for i in range(1500):
        billing.usage(
            state,
            InputKind.USAGE,
            {
                "event_id": f"e{i}",
                "customer_id": "lora-x",
                "meter": "image_generations",
                "value": Decimal(1),
                "timestamp": ANCHOR + 10 + i,
                "dimensions": {},
            },
        )
    (request,) = state.outbox["topups"]
    outcome = {
        "payment_id": "p1",
        "customer_id": "lora-x",
        "processor": "adyen",
        "status": "succeeded",
        "amount": Decimal("100"),
        "currency": "USD",
        "pays_kind": "topup",
        "pays_id": request["request_id"],
        "failure_code": None,
        "occurred_at": ANCHOR + 5000,
    }
    before = state.account.balance()
    assert billing.payment(state, *roundtrip(codec, "meterline.PaymentOutcome", outcome)) == []
    assert state.account.balance() == before + 100
