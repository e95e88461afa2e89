"""Shared builders for the billing tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from meterline.billing.account import Account
from meterline.billing.catalog import Plan, RateCardEntry, RecurringCredit
from meterline.billing.effects import Effects
from meterline.billing.pricing import Graduated, Package, PerUnit, Tier, Volume

D = Decimal
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Epoch ms of a UTC wall-clock time, written out by hand in the tests."""
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) * 1000


def lora_plan() -> Plan:
    """Lora's subscription: 49.00 a month, 20.00 general credits (priority 1) and 5.00 image-only
    credits (priority 0) every month; API calls sold in packages, images on graduated tiers,
    LLM tokens priced per event by the price book."""
    return Plan(
        "lora-pro",
        "USD",
        D("49.00"),
        (
            RecurringCredit(D("20.00"), priority=1),
            RecurringCredit(D("5.00"), priority=0, scope=frozenset({"images"})),
        ),
        {
            "api_calls": RateCardEntry("api_calls", Package(D(1000), D("2.00")), "api"),
            "image_gen": RateCardEntry(
                "image_gen",
                Graduated((Tier(D(10), D("0.10")), Tier(None, D("0.05")))),
                "images",
            ),
            "llm_tokens": RateCardEntry("llm_tokens", None, "llm"),
        },
    )


def every_model_plan() -> Plan:
    """A plan with every price model, for the property tests."""
    return Plan(
        "every-model",
        "USD",
        D("10"),
        (RecurringCredit(D("15"), priority=1), RecurringCredit(D("4"), scope=frozenset({"img"}))),
        {
            "api": RateCardEntry("api", PerUnit(D("0.003")), "api"),
            "img": RateCardEntry(
                "img",
                Graduated((Tier(D(5), D("0.2"), D("1")), Tier(None, D("0.1")))),
                "img",
            ),
            "vol": RateCardEntry(
                "vol",
                Volume((Tier(D(100), D("0.05")), Tier(D(500), D("0.02")), Tier(None, D("0.01")))),
                None,
            ),
            "pkg": RateCardEntry("pkg", Package(D(100), D("1.5"))),
            "llm": RateCardEntry("llm", None, "llm"),
        },
    )


def effects_dict(fx: Effects) -> dict[str, Any]:
    return {
        "entries": [e.to_dict() for e in fx.entries],
        "topups": [t.to_dict() for t in fx.topups],
        "alerts": [a.to_dict() for a in fx.alerts],
        "invoices": [i.to_dict() for i in fx.invoices],
        "payments": [p.to_dict() for p in fx.payments],
        "errors": list(fx.errors),
        "status": fx.status,
    }


def by_value(data: Any) -> Any:
    """``data`` with every string that is a decimal number turned into a Decimal, so records
    compare by value: how a decimal prints (its scale, "0E-12" or "0") is not the contract of
    an effect record, the value is (money.plain and money_text print them for outputs)."""
    if isinstance(data, dict):
        return {k: by_value(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [by_value(v) for v in data]
    if isinstance(data, str):
        try:
            value = Decimal(data)
        except ArithmeticError:
            return data
        return value if value.is_finite() else data
    return data


def through_json(account: Account) -> Account:
    """What a Faust table does to the state: encode to JSON and decode it again."""
    return Account.from_dict(json.loads(json.dumps(account.to_dict())))


def is_empty(fx: Effects) -> bool:
    return not (fx.entries or fx.topups or fx.alerts or fx.invoices or fx.payments or fx.errors)
