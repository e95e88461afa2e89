"""A record of every schema as the decoder returns it, and builders of usage and token events."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from schemas import (
    ACCOUNT_COMMAND,
    CATALOG_CHANGE,
    DEAD_LETTER,
    PAYMENT_OUTCOME,
    TOKEN_EVENT,
    TOKEN_EVENT_BATCH,
    USAGE_EVENT,
    USAGE_EVENT_BATCH,
)

T0 = 1_700_000_000_000


def usage(**over: Any) -> dict[str, Any]:
    ev = {
        "event_id": "evt-1",
        "customer_id": "cust-1",
        "meter": "api_calls",
        "value": Decimal("1.5"),
        "timestamp": T0,
        "dimensions": {"region": "eu"},
    }
    ev.update(over)
    return ev


def token(**over: Any) -> dict[str, Any]:
    ev = {
        "event_id": "tok-1",
        "customer_id": "cust-1",
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cached_input_tokens": 200,
        "timestamp": T0,
        "dimensions": {"feature": "chat"},
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }
    ev.update(over)
    return ev


def jbytes(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# Every schema, as the decoder returns it (all fields present, unions of records tagged).
SAMPLES: dict[str, list[dict[str, Any]]] = {
    USAGE_EVENT: [usage(), usage(value=Decimal("-0.000000000001"), dimensions={})],
    USAGE_EVENT_BATCH: [
        {"events": [usage(), usage(event_id="evt-2", meter="images")]},
        {"events": []},
    ],
    TOKEN_EVENT: [token(), token(cached_input_tokens=0, dimensions={})],
    TOKEN_EVENT_BATCH: [{"events": [token(), token(event_id="tok-2")]}],
    ACCOUNT_COMMAND: [
        {
            "command_id": "cmd-1",
            "customer_id": "cust-1",
            "issued_at": T0,
            "command": (
                "meterline.CustomerUpsert",
                {
                    "plan": "pro",
                    "billing_anchor": T0,
                    "timezone": "Europe/Berlin",
                    "currency": "EUR",
                    "topup": {
                        "threshold": Decimal("10"),
                        "mode": "target",
                        "amount": Decimal("5"),
                        "target": Decimal("100.25"),
                        "cooldown_seconds": 600,
                        "max_per_period": 3,
                        "processor": "adyen",
                    },
                    "invoice_currency": "GBP",
                },
            ),
        },
        {
            "command_id": "cmd-2",
            "customer_id": "cust-1",
            "issued_at": T0,
            "command": (
                "meterline.CustomerUpsert",
                {
                    "plan": "free",
                    "billing_anchor": 0,
                    "timezone": "UTC",
                    "currency": "USD",
                    "topup": None,
                    "invoice_currency": None,
                },
            ),
        },
        {
            "command_id": "cmd-3",
            "customer_id": "cust-1",
            "issued_at": T0,
            "command": (
                "meterline.CreditGrant",
                {
                    "grant_id": "g-1",
                    "amount": Decimal("1000"),
                    "priority": 10,
                    "effective_at": T0,
                    "expires_at": T0 + 86_400_000,
                    "scope": ["api_calls", "images"],
                    "category": "promotional",
                },
            ),
        },
        {
            "command_id": "cmd-4",
            "customer_id": "cust-1",
            "issued_at": T0,
            "command": ("meterline.GrantVoid", {"grant_id": "g-1", "reason": "fraud"}),
        },
        {
            "command_id": "cmd-5",
            "customer_id": "cust-1",
            "issued_at": T0,
            "command": (
                "meterline.BillInAdvance",
                {"period_start": T0, "periods": None, "until": None, "items": []},
            ),
        },
        {
            "command_id": "cmd-6",
            "customer_id": "cust-1",
            "issued_at": T0,
            "command": (
                "meterline.BillInAdvance",
                {
                    "period_start": T0,
                    "periods": None,
                    "until": T0 + 45 * 86_400_000,
                    "items": [
                        {"kind": "fee", "meter": None, "quantity": None},
                        {"kind": "meter", "meter": "api_calls", "quantity": Decimal("1000")},
                    ],
                },
            ),
        },
    ],
    PAYMENT_OUTCOME: [
        {
            "payment_id": "pay-1",
            "customer_id": "cust-1",
            "processor": "braintree",
            "status": status,
            "amount": Decimal("49.99"),
            "currency": "USD",
            "pays_kind": kind,
            "pays_id": "topup-7",
            "failure_code": "card_declined" if status == "failed" else None,
            "payment_method_id": "pm_123" if kind == "invoice" else None,
            "payment_method_name": "Visa •••• 4242" if kind == "invoice" else None,
            "dispute_fee": Decimal("15.00") if status == "dispute_lost" else None,
            "occurred_at": T0,
        }
        for status, kind in [
            ("succeeded", "topup"),
            ("failed", "topup"),
            ("refunded", "invoice"),
            ("canceled", "invoice"),
            ("dispute_opened", "topup"),
            ("dispute_won", "invoice"),
            ("dispute_lost", "invoice"),
            ("unlinked", "invoice"),
        ]
    ],
    CATALOG_CHANGE: [
        {
            "change_id": "ch-1",
            "at": T0,
            "payload": (
                "meterline.MeterDef",
                {
                    "code": "seats",
                    "aggregation": agg,
                    "value_field": "value",
                    "group_by": ["region"],
                },
            ),
        }
        for agg in ["sum", "count", "min", "max", "unique_count", "latest"]
    ]
    + [
        {
            "change_id": "ch-2",
            "at": T0,
            "payload": (
                "meterline.PlanDef",
                {
                    "plan_id": "pro",
                    "currency": "USD",
                    "period": "month",
                    "fee": Decimal("20"),
                    "recurring_credits": Decimal("1000"),
                    "recurring_credit_scope": ["api_calls"],
                    "recurring_credit_priority": 5,
                    "rate_card": [
                        {
                            "meter": "api_calls",
                            "model": "per_unit",
                            "unit_price": Decimal("0.002"),
                            "package_size": None,
                            "tiers": [],
                        },
                        {
                            "meter": "images",
                            "model": "package",
                            "unit_price": Decimal("1"),
                            "package_size": Decimal("100"),
                            "tiers": [],
                        },
                        {
                            "meter": "storage_gb",
                            "model": "graduated",
                            "unit_price": None,
                            "package_size": None,
                            "tiers": [
                                {
                                    "up_to": Decimal("10"),
                                    "unit_price": Decimal("0"),
                                    "flat_fee": Decimal("0"),
                                },
                                {
                                    "up_to": None,
                                    "unit_price": Decimal("0.1"),
                                    "flat_fee": Decimal("2.5"),
                                },
                            ],
                        },
                        {
                            "meter": "seats",
                            "model": "volume",
                            "unit_price": None,
                            "package_size": None,
                            "tiers": [
                                {
                                    "up_to": None,
                                    "unit_price": Decimal("7"),
                                    "flat_fee": Decimal("0"),
                                }
                            ],
                        },
                    ],
                },
            ),
        },
        {
            "change_id": "ch-3",
            "at": T0,
            "payload": (
                "meterline.ModelPrice",
                {
                    "model": "gpt-4o",
                    "provider": "openai",
                    "input_per_million": Decimal("2.5"),
                    "output_per_million": Decimal("10"),
                    "cached_input_per_million": Decimal("1.25"),
                    "effective_from": T0,
                    "cache_write_per_million": None,
                },
            ),
        },
        {
            "change_id": "ch-4",
            "at": T0,
            "payload": ("meterline.Markup", {"rate": Decimal("0.2"), "effective_from": T0}),
        },
    ],
    DEAD_LETTER: [
        {
            "topic": "meterline.usage",
            "partition": 3,
            "offset": 2**40,
            "reason": "field 'value': not a decimal: 'abc'",
            "at": T0,
            "key": b"cust-1",
            "payload": b'{"value": "abc"}',
        },
        {
            "topic": "meterline.usage",
            "partition": 0,
            "offset": 0,
            "reason": "empty value",
            "at": T0,
            "key": None,
            "payload": b"",
        },
    ],
}


# A minimal valid usage event as JSON, and that event with one field changed or left out.
GOOD_JSON = {"event_id": "e", "customer_id": "c", "meter": "m", "value": 1, "timestamp": T0}


def json_event(**over: Any) -> dict[str, Any]:
    return {**GOOD_JSON, **over}


def json_event_without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD_JSON.items() if k != key}
