"""The Kafka value codec: wire format, every schema, JSON inputs, and every way to be wrong."""

from __future__ import annotations

import calendar
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

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
from schemas.codec import Codec, DecodeError, EncodeError, Rejected, to_json_bytes
from schemas.registry import FileRegistry, load_local_schemas, read_manifest

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def registry() -> FileRegistry:
    return FileRegistry()


@pytest.fixture(scope="module")
def codec(registry: FileRegistry) -> Codec:
    return Codec(registry)


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


# --------------------------------------------------------------------------- wire format


def test_wire_format_layout(codec: Codec, registry: FileRegistry) -> None:
    data = codec.encode(USAGE_EVENT, usage())
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == registry.id_for(USAGE_EVENT) == 1
    assert data[:5] == b"\x00\x00\x00\x00\x01"
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(load_local_schemas()[USAGE_EVENT]), usage())
    assert data[5:] == body.getvalue()


def test_short_and_full_names_encode_alike(codec: Codec) -> None:
    assert codec.encode("UsageEvent", usage()) == codec.encode(USAGE_EVENT, usage())


def test_decode_reads_a_value_written_by_plain_fastavro(codec: Codec) -> None:
    # Any Confluent-format producer (Java, Go, kcat) writes exactly these bytes.
    body = io.BytesIO()
    schemaless_writer(
        body, parse_schema(load_local_schemas()[USAGE_EVENT]), usage(value=Decimal("7"))
    )
    name, record = codec.decode(b"\x00\x00\x00\x00\x01" + body.getvalue())
    assert name == USAGE_EVENT
    assert record["value"] == 7


@pytest.mark.parametrize(
    ("name", "record"),
    [(name, record) for name, records in SAMPLES.items() for record in records],
)
def test_round_trip_every_schema(codec: Codec, name: str, record: dict[str, Any]) -> None:
    assert codec.decode(codec.encode(name, record)) == (name, record)


def test_every_schema_has_a_sample() -> None:
    assert set(read_manifest()["current"]) == set(SAMPLES)


# --------------------------------------------------------------------------- encode conveniences


def test_encode_fills_defaults(codec: Codec) -> None:
    cmd = {
        "command_id": "c",
        "customer_id": "cust-1",
        "issued_at": T0,
        "command": (
            "CreditGrant",
            {
                "grant_id": "g",
                "amount": "5",
                "priority": 0,
                "effective_at": T0,
                "category": "paid",
            },
        ),
    }
    _, out = codec.decode(codec.encode(ACCOUNT_COMMAND, cmd))
    assert out["command"] == (
        "meterline.CreditGrant",
        {
            "grant_id": "g",
            "amount": Decimal(5),
            "priority": 0,
            "effective_at": T0,
            "expires_at": None,
            "scope": [],
            "category": "paid",
        },
    )
    tier = {
        "change_id": "c",
        "at": 0,
        "payload": {
            "plan_id": "p",
            "currency": "USD",
            "period": "month",
            "fee": 0,
            "recurring_credits": 0,
            "rate_card": [{"meter": "m", "model": "graduated", "tiers": [{"unit_price": "0.5"}]}],
        },
    }
    _, out = codec.decode(codec.encode(CATALOG_CHANGE, tier))
    tiers = out["payload"][1]["rate_card"][0]["tiers"]
    assert tiers == [{"up_to": None, "unit_price": Decimal("0.5"), "flat_fee": Decimal(0)}]


@pytest.mark.parametrize(
    "command",
    [
        ("meterline.GrantVoid", {"grant_id": "g", "reason": "r"}),
        ("GrantVoid", {"grant_id": "g", "reason": "r"}),
        {"-type": "meterline.GrantVoid", "grant_id": "g", "reason": "r"},
        {"grant_id": "g", "reason": "r"},  # untagged: fits exactly one branch
    ],
)
def test_union_spellings(codec: Codec, command: Any) -> None:
    cmd = {"command_id": "c", "customer_id": "x", "issued_at": 0, "command": command}
    _, out = codec.decode(codec.encode(ACCOUNT_COMMAND, cmd))
    assert out["command"] == ("meterline.GrantVoid", {"grant_id": "g", "reason": "r"})


def test_encode_accepts_json_style_values(codec: Codec) -> None:
    ev = usage(value="12.25", timestamp="2023-11-14T22:13:20Z")
    assert codec.usage_events(codec.encode(USAGE_EVENT, ev)) == [usage(value=Decimal("12.25"))]


def test_encode_batches(codec: Codec) -> None:
    events = [usage(event_id=f"e{i}", value=Decimal(i)) for i in range(50)]
    assert codec.usage_events(codec.encode_usage_batch(events)) == events
    tokens = [token(event_id=f"t{i}") for i in range(5)]
    assert codec.token_events(codec.encode_token_batch(tokens)) == tokens


@pytest.mark.parametrize(
    ("name", "record", "message"),
    [
        (USAGE_EVENT, usage(value=0.1), "field 'value': float 0.1 is not exact"),
        (USAGE_EVENT, usage(value=Decimal("1.0000000000001")), "more than 12 fractional digits"),
        (USAGE_EVENT, usage(value=Decimal(10) ** 26), "more than 26 integer digits"),
        (USAGE_EVENT, {k: v for k, v in usage().items() if k != "meter"}, "missing field 'meter'"),
        (
            USAGE_EVENT_BATCH,
            {"events": [usage(), usage(customer_id="")]},
            "event 1: field 'customer_id': must not be empty",
        ),
        (TOKEN_EVENT, token(input_tokens=-1), "field 'input_tokens': expected a non-negative"),
        (
            PAYMENT_OUTCOME,
            {**SAMPLES[PAYMENT_OUTCOME][0], "status": "pending"},
            "field 'status': 'pending' is not one of succeeded, failed, refunded, canceled",
        ),
        (
            PAYMENT_OUTCOME,
            {**SAMPLES[PAYMENT_OUTCOME][0], "amount": None},
            "field 'amount': not a decimal: null",
        ),
        (
            PAYMENT_OUTCOME,
            {**SAMPLES[PAYMENT_OUTCOME][0], "occurred_at": True},
            "field 'occurred_at': expected an integer, got true",
        ),
        (PAYMENT_OUTCOME, {**SAMPLES[PAYMENT_OUTCOME][0], "amout": 1}, "unknown field(s) amout"),
        (DEAD_LETTER, {**SAMPLES[DEAD_LETTER][0], "partition": 2**31}, "does not fit an Avro int"),
        (DEAD_LETTER, {**SAMPLES[DEAD_LETTER][0], "payload": "text"}, "expected bytes"),
        (
            ACCOUNT_COMMAND,
            {**SAMPLES[ACCOUNT_COMMAND][0], "command": ("Nope", {})},
            "'Nope' is not one of meterline.CustomerUpsert",
        ),
        (
            ACCOUNT_COMMAND,
            {**SAMPLES[ACCOUNT_COMMAND][0], "command": {"grant_id": "g"}},
            "fits none of the union's types",
        ),
        (
            ACCOUNT_COMMAND,
            {**SAMPLES[ACCOUNT_COMMAND][0], "command": None},
            "field 'command': must not be null",
        ),
        ("meterline.Nope", {}, "schema meterline.Nope has no id"),
    ],
)
def test_encode_rejections(codec: Codec, name: str, record: Any, message: str) -> None:
    with pytest.raises(EncodeError) as info:
        codec.encode(name, record)
    assert message in str(info.value)


# --------------------------------------------------------------------------- usage_events


def test_usage_events_from_avro_single_and_batch(codec: Codec) -> None:
    assert codec.usage_events(codec.encode(USAGE_EVENT, usage())) == [usage()]
    batch = [usage(event_id=f"e{i}") for i in range(3)]
    assert codec.usage_events(codec.encode_usage_batch(batch)) == batch


def test_usage_events_from_json_shapes(codec: Codec) -> None:
    one = {
        "event_id": "e1",
        "customer_id": "c1",
        "meter": "m",
        "value": 2,
        "timestamp": T0,
        "dimensions": {"a": "b"},
        "ignored_extra": 1,
    }
    expected = [
        {
            "event_id": "e1",
            "customer_id": "c1",
            "meter": "m",
            "value": Decimal(2),
            "timestamp": T0,
            "dimensions": {"a": "b"},
        }
    ]
    assert codec.usage_events(jbytes(one)) == expected
    assert codec.usage_events(jbytes([one, one])) == expected * 2
    assert codec.usage_events(jbytes({"events": [one]})) == expected
    assert codec.usage_events(b"  \n\t" + jbytes(one)) == expected
    assert codec.usage_events(b"\xef\xbb\xbf" + jbytes(one)) == expected
    assert codec.usage_events(b"[]") == []


@pytest.mark.parametrize(
    ("raw_value", "expected"),
    [
        ("1.5", Decimal("1.5")),
        ("0.000000000001", Decimal("1E-12")),
        (
            "12345678901234567890123456.123456789012",
            Decimal("12345678901234567890123456.123456789012"),
        ),
        ('"0.1"', Decimal("0.1")),
        ('"  -3.25 "', Decimal("-3.25")),
        ('"1e3"', Decimal(1000)),
        ("1e3", Decimal(1000)),
        ("-7", Decimal(-7)),
        ('"1.50000000000000000"', Decimal("1.5")),  # trailing zeros are exact
        ("99999999999999999999999999", Decimal("99999999999999999999999999")),
    ],
)
def test_json_values_are_exact(codec: Codec, raw_value: str, expected: Decimal) -> None:
    text = '{"event_id":"e","customer_id":"c","meter":"m","timestamp":1,"value":' + raw_value + "}"
    (ev,) = codec.usage_events(text.encode())
    assert ev["value"] == expected
    assert type(ev["value"]) is Decimal


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (T0, T0),
        ('"1700000000000"', T0),
        ("1700000000000.0", T0),
        ('"2023-11-14T22:13:20Z"', T0),
        ('"2023-11-14T22:13:20.123Z"', T0 + 123),
        ('"2023-11-14T22:13:20.1239999Z"', T0 + 123),  # sub-ms digits truncated
        ('"2023-11-15T00:13:20.5+02:00"', T0 + 500),
        ('"2023-11-14T17:13:20-05:00"', T0),
        ('"2023-11-14 22:13:20+00:00"', T0),
        ('"1970-01-01T00:00:00Z"', 0),
    ],
)
def test_json_timestamps(codec: Codec, ts: Any, expected: int) -> None:
    text = '{"event_id":"e","customer_id":"c","meter":"m","value":1,"timestamp":' + str(ts) + "}"
    (ev,) = codec.usage_events(text.encode())
    assert ev["timestamp"] == expected
    assert type(ev["timestamp"]) is int


def test_usage_dimensions_default_to_empty(codec: Codec) -> None:
    base = {"event_id": "e", "customer_id": "c", "meter": "m", "value": 1, "timestamp": 1}
    assert codec.usage_events(jbytes(base))[0]["dimensions"] == {}
    assert codec.usage_events(jbytes({**base, "dimensions": None}))[0]["dimensions"] == {}


GOOD_JSON = {"event_id": "e", "customer_id": "c", "meter": "m", "value": 1, "timestamp": T0}


def _with(**over: Any) -> dict[str, Any]:
    return {**GOOD_JSON, **over}


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD_JSON.items() if k != key}


REJECTED_USAGE: list[tuple[bytes, str]] = [
    (b"", "empty value"),
    (b"\x00\x00\x00", "truncated Confluent header: 3 bytes"),
    (b"\x00\x00\x00\x00\x63\x02", "schema id 99 not registered"),
    (b"\x01abc", "unknown magic byte 0x01"),
    (b"hello", "unknown magic byte 0x68"),
    (b'{"event_id": ', "invalid JSON"),
    (b"\xff\xfe{", "unknown magic byte 0xff"),
    (jbytes("just a string"), "unknown magic byte 0x22"),
    (jbytes(_without("customer_id")), "missing field 'customer_id'"),
    (jbytes(_without("event_id")), "missing field 'event_id'"),
    (jbytes(_without("value")), "missing field 'value'"),
    (jbytes(_without("timestamp")), "missing field 'timestamp'"),
    (jbytes(_with(meter="")), "field 'meter': must not be empty"),
    (jbytes(_with(customer_id=42)), "field 'customer_id': expected a non-empty string, got 42"),
    (jbytes(_with(event_id=None)), "field 'event_id': expected a non-empty string, got null"),
    (jbytes(_with(value="abc")), "field 'value': not a decimal: 'abc'"),
    (jbytes(_with(value="1_000")), "field 'value': not a decimal: '1_000'"),
    (jbytes(_with(value="NaN")), "field 'value': not a decimal: 'NaN'"),
    (jbytes(_with(value="")), "field 'value': not a decimal: ''"),
    (jbytes(_with(value=True)), "field 'value': not a decimal: true"),
    (jbytes(_with(value=None)), "field 'value': not a decimal: null"),
    (jbytes(_with(value=[1])), "field 'value': not a decimal: [1]"),
    (jbytes(_with(value={"v": 1})), "field 'value': not a decimal"),
    (
        b'{"event_id":"e","customer_id":"c","meter":"m","timestamp":1,"value":NaN}',
        "field 'value': not a finite decimal: NaN",
    ),
    (
        b'{"event_id":"e","customer_id":"c","meter":"m","timestamp":1,"value":Infinity}',
        "field 'value': not a finite decimal: Infinity",
    ),
    (
        b'{"event_id":"e","customer_id":"c","meter":"m","timestamp":1,"value":-Infinity}',
        "field 'value': not a finite decimal: -Infinity",
    ),
    (
        b'{"event_id":"e","customer_id":"c","meter":"m","timestamp":1,"value":0.1234567890123}',
        "field 'value': more than 12 fractional digits: 0.1234567890123 (rejected, not rounded)",
    ),
    (jbytes(_with(value="1e-13")), "more than 12 fractional digits"),
    (jbytes(_with(value=10**26)), "field 'value': more than 26 integer digits"),
    (jbytes(_with(value="-1e26")), "more than 26 integer digits"),
    (jbytes(_with(timestamp="2023-11-14T22:13:20")), "without a UTC offset"),
    (jbytes(_with(timestamp="yesterday")), "field 'timestamp': not a timestamp"),
    (jbytes(_with(timestamp=-1)), "field 'timestamp': timestamp out of range"),
    (jbytes(_with(timestamp=2**63)), "timestamp out of range"),
    (jbytes(_with(timestamp="1969-12-31T23:59:59Z")), "timestamp out of range"),
    (
        b'{"event_id":"e","customer_id":"c","meter":"m","value":1,"timestamp":1.5}',
        "field 'timestamp': not a timestamp",
    ),
    (jbytes(_with(timestamp=True)), "field 'timestamp': not a timestamp"),
    (jbytes(_with(timestamp="1" * 5000)), "field 'timestamp': timestamp out of range"),
    (jbytes(_with(value="1" * 5000)), "more than 26 integer digits"),
    (b"[" * 100_000, "invalid JSON"),
    (
        jbytes(_with(dimensions={"region": 5})),
        "field 'dimensions.region': expected a string, got 5",
    ),
    (jbytes(_with(dimensions=["a"])), "field 'dimensions': expected an object of strings"),
    (jbytes([GOOD_JSON, 7]), "event 1: expected an event object, got 7"),
    (jbytes([GOOD_JSON, GOOD_JSON, _with(value="x")]), "event 2: field 'value': not a decimal"),
    (jbytes({"events": {"a": 1}}), "field 'events': expected a list of events, got an object"),
    (jbytes({"events": [_without("meter")]}), "event 0: missing field 'meter'"),
]


@pytest.mark.parametrize(("data", "message"), REJECTED_USAGE)
def test_usage_rejections_say_what_is_wrong(codec: Codec, data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.usage_events(data)
    assert message in str(info.value)


def _raw_avro(codec: Codec, name: str, record: dict[str, Any]) -> bytes:
    """Bytes as a careless foreign producer writes them: no checks beyond Avro's types."""
    sid = codec.registry.id_for(name)
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(load_local_schemas()[name]), record)
    return b"\x00" + sid.to_bytes(4, "big") + body.getvalue()


def test_avro_events_get_the_checks_avro_cannot_express(codec: Codec) -> None:
    cases = [
        (usage(customer_id=""), "field 'customer_id': must not be empty"),
        (usage(event_id=""), "field 'event_id': must not be empty"),
        (usage(value=Decimal(10) ** 27), "field 'value': more than 26 integer digits"),
        (usage(timestamp=-5), "field 'timestamp': timestamp out of range"),
    ]
    for record, message in cases:
        with pytest.raises(DecodeError) as info:
            codec.usage_events(_raw_avro(codec, USAGE_EVENT, record))
        assert message in str(info.value)
    batch = _raw_avro(codec, USAGE_EVENT_BATCH, {"events": [usage(), usage(meter="")]})
    with pytest.raises(DecodeError, match="event 1: field 'meter': must not be empty"):
        codec.usage_events(batch)
    bad_tokens = _raw_avro(codec, TOKEN_EVENT, token(output_tokens=-3))
    with pytest.raises(DecodeError, match="field 'output_tokens': expected a non-negative"):
        codec.token_events(bad_tokens)


def test_malformed_avro_bodies(codec: Codec) -> None:
    good = codec.encode(USAGE_EVENT, usage())
    with pytest.raises(DecodeError, match=r"meterline.UsageEvent \(schema id 1\): malformed"):
        codec.usage_events(good[:-4])
    with pytest.raises(DecodeError, match="2 bytes left after the record"):
        codec.usage_events(good + b"\x00\x00")
    # A DeadLetter body under the UsageEvent id: caught, not mis-read.
    forged = b"\x00\x00\x00\x00\x01" + codec.encode(DEAD_LETTER, SAMPLES[DEAD_LETTER][0])[5:]
    with pytest.raises(DecodeError, match="UsageEvent"):
        codec.usage_events(forged)


def test_usage_events_rejects_other_schemas(codec: Codec) -> None:
    payment = codec.encode(PAYMENT_OUTCOME, SAMPLES[PAYMENT_OUTCOME][0])
    with pytest.raises(
        DecodeError,
        match=r"expected a UsageEvent or UsageEventBatch, got meterline\.PaymentOutcome",
    ):
        codec.usage_events(payment)
    with pytest.raises(DecodeError, match="expected a TokenEvent or TokenEventBatch"):
        codec.token_events(codec.encode(USAGE_EVENT, usage()))


def test_decode_json_returns_json_tag(codec: Codec) -> None:
    assert codec.decode(b'{"a": 1.10, "b": [1, 2]}') == (
        "json",
        {"a": Decimal("1.10"), "b": [1, 2]},
    )
    assert codec.decode(bytearray(b"[1]")) == ("json", [1])
    assert codec.decode(memoryview(b"[1]")) == ("json", [1])


def test_lenient_keeps_the_good_events_of_a_batch(codec: Codec) -> None:
    batch = [_with(event_id="a"), _with(event_id="b", value="x"), _with(event_id="c")]
    good, bad = codec.usage_events_lenient(jbytes(batch))
    assert [e["event_id"] for e in good] == ["a", "c"]
    assert bad == [Rejected(1, "event 1: field 'value': not a decimal: 'x'", batch[1])]
    avro = _raw_avro(codec, USAGE_EVENT_BATCH, {"events": [usage(), usage(meter="")]})
    good, bad = codec.usage_events_lenient(avro)
    assert len(good) == 1
    assert bad[0].index == 1
    assert "must not be empty" in bad[0].reason
    with pytest.raises(DecodeError, match="missing field 'meter'"):
        codec.usage_events_lenient(jbytes(_without("meter")))
    good, bad = codec.token_events_lenient(jbytes([token(), {**token(), "model": ""}]))
    assert len(good) == 1
    assert bad[0].index == 1


# --------------------------------------------------------------------------- token_events


def test_token_events_from_avro_and_json(codec: Codec) -> None:
    assert codec.token_events(codec.encode(TOKEN_EVENT, token())) == [token()]
    without_cached = {k: v for k, v in token().items() if k != "cached_input_tokens"}
    (ev,) = codec.token_events(jbytes(without_cached))
    assert ev == token(cached_input_tokens=0)
    (ev,) = codec.token_events(
        jbytes({**token(), "timestamp": "2023-11-14T22:13:20Z", "input_tokens": 1e3})
    )
    assert ev["timestamp"] == T0
    assert ev["input_tokens"] == 1000
    assert codec.token_events(jbytes({"events": [token(), token()]})) == [token(), token()]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"input_tokens": -1}, "field 'input_tokens': expected a non-negative integer, got -1"),
        ({"output_tokens": 1.5}, "field 'output_tokens': expected a non-negative integer, got 1.5"),
        ({"output_tokens": "7"}, "field 'output_tokens': expected a non-negative integer, got '7'"),
        ({"cached_input_tokens": True}, "field 'cached_input_tokens': expected a non-negative"),
        ({"input_tokens": 2**63}, "field 'input_tokens': expected a non-negative integer"),
        ({"model": ""}, "field 'model': must not be empty"),
        ({"provider": None}, "field 'provider': expected a non-empty string, got null"),
        ({"timestamp": "soon"}, "field 'timestamp': not a timestamp"),
    ],
)
def test_token_rejections(codec: Codec, over: dict[str, Any], message: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.token_events(jbytes({**token(), **over}))
    assert message in str(info.value)


def test_token_missing_fields(codec: Codec) -> None:
    for key in (
        "event_id",
        "customer_id",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
        "timestamp",
    ):
        record = {k: v for k, v in token().items() if k != key}
        with pytest.raises(DecodeError, match=f"missing field '{key}'"):
            codec.token_events(jbytes(record))


# --------------------------------------------------------------------------- JSON out


def test_to_json_bytes_is_exact_and_readable() -> None:
    out = to_json_bytes(
        {
            "a": Decimal("1E+3"),
            "b": Decimal("0E-12"),
            "c": Decimal("-0.000000000001"),
            "k": b"\x00\xff",
            "u": ("meterline.GrantVoid", {"x": 1}),
            "s": "é",
        }
    )
    assert json.loads(out) == {
        "a": "1000",
        "b": "0.000000000000",
        "c": "-0.000000000001",
        "k": "AP8=",
        "u": ["meterline.GrantVoid", {"x": 1}],
        "s": "é",
    }


def test_to_json_round_trips_usage_events(codec: Codec) -> None:
    events = [usage(), usage(event_id="e2", value=Decimal("123.000000000001"))]
    assert codec.usage_events(to_json_bytes(events)) == events
    assert Codec.to_json_bytes is to_json_bytes


# --------------------------------------------------------------------------- properties

# Any decimal that fits decimal(38, 12): scale 0..12, |unscaled| < 10**(26 + scale). Built
# from text: scaleb() would round to the default context's 28 digits.
fitting_decimals = st.integers(0, 12).flatmap(
    lambda scale: st.integers(-(10 ** (26 + scale)) + 1, 10 ** (26 + scale) - 1).map(
        lambda unscaled: Decimal(f"{unscaled}E-{scale}")
    )
)


@settings(max_examples=400, deadline=None)
@given(value=fitting_decimals)
def test_fitting_decimals_round_trip_exactly(codec: Codec, value: Decimal) -> None:
    (avro,) = codec.usage_events(codec.encode(USAGE_EVENT, usage(value=value)))
    assert avro["value"] == value
    (as_number,) = codec.usage_events(
        b'{"event_id":"e","customer_id":"c","meter":"m","timestamp":1,"value":'
        + str(value).encode()
        + b"}"
    )
    assert as_number["value"] == value
    (as_string,) = codec.usage_events(jbytes(_with(value=str(value))))
    assert as_string["value"] == value
    (batched,) = codec.usage_events(codec.encode_usage_batch([usage(value=value)]))
    assert batched["value"] == value


@settings(max_examples=200, deadline=None)
@given(
    whole=st.integers(-(10**26) + 1, 10**26 - 1),
    extra=st.integers(13, 30).flatmap(
        lambda digits: st.tuples(st.just(digits), st.integers(1, 10**digits - 1))
    ),
)
def test_more_fractional_digits_are_rejected_not_rounded(
    codec: Codec, whole: int, extra: tuple[int, int]
) -> None:
    digits, frac = extra
    if frac % 10 == 0:
        frac += 1  # the last digit must be significant
    value = Decimal(f"{'-' if whole < 0 else ''}{abs(whole)}.{frac:0{digits}d}")
    with pytest.raises(EncodeError, match="more than 12 fractional digits"):
        codec.encode(USAGE_EVENT, usage(value=value))
    with pytest.raises(DecodeError, match="more than 12 fractional digits"):
        codec.usage_events(jbytes(_with(value=str(value))))


@settings(max_examples=100, deadline=None)
@given(value=st.integers(10**26, 10**40) | st.integers(-(10**40), -(10**26)))
def test_more_integer_digits_are_rejected(codec: Codec, value: int) -> None:
    with pytest.raises(EncodeError, match="more than 26 integer digits"):
        codec.encode(USAGE_EVENT, usage(value=Decimal(value)))


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31)),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
)
def test_iso_timestamps_convert_exactly(
    codec: Codec, moment: datetime, offset_minutes: int
) -> None:
    utc = moment.replace(tzinfo=UTC)
    expected = calendar.timegm(utc.timetuple()) * 1000 + utc.microsecond // 1000
    local = utc.astimezone(timezone(timedelta(minutes=offset_minutes)))
    (ev,) = codec.usage_events(jbytes(_with(timestamp=local.isoformat())))
    assert ev["timestamp"] == expected


def test_a_payment_outcome_written_with_its_first_schema_still_decodes(
    codec: Codec, registry: FileRegistry
) -> None:
    # Id 6 is PaymentOutcome before the payment method and the dispute and unlink statuses;
    # producers that still write it are read with it, and billing fills in what it lacks.
    from meterline.billing.payments import PaymentOutcome

    new_fields = ("payment_method_id", "payment_method_name", "dispute_fee")
    old = {k: v for k, v in SAMPLES[PAYMENT_OUTCOME][0].items() if k not in new_fields}
    body = io.BytesIO()
    schemaless_writer(body, registry.schema_for(6), old)
    name, record = codec.decode(b"\x00\x00\x00\x00\x06" + body.getvalue())
    assert name == PAYMENT_OUTCOME
    outcome = PaymentOutcome.from_dict(record)
    assert (outcome.status, outcome.payment_method_id) == ("succeeded", None)


def test_a_bill_in_advance_written_with_its_first_schema_still_decodes(
    codec: Codec, registry: FileRegistry
) -> None:
    # Id 5 is AccountCommand before bill-in-advance spans and items: its records read as one
    # period's fee, as they always meant.
    from meterline.processor.billing_rules import command_from_avro

    old = {
        "command_id": "cmd-5",
        "customer_id": "cust-1",
        "issued_at": T0,
        "command": ("meterline.BillInAdvance", {"period_start": T0}),
    }
    body = io.BytesIO()
    schemaless_writer(body, registry.schema_for(5), old)
    name, record = codec.decode(b"\x00\x00\x00\x00\x05" + body.getvalue())
    assert name == ACCOUNT_COMMAND
    cmd = command_from_avro(record)
    assert cmd["type"] == "bill_in_advance" and cmd["period_start"] == T0
    assert not cmd.get("items") and cmd.get("until") is None
