"""The Kafka value codec: its wire format, every schema round-tripped, and encoding."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from schemas import (
    ACCOUNT_COMMAND,
    CATALOG_CHANGE,
    DEAD_LETTER,
    PAYMENT_OUTCOME,
    TOKEN_EVENT,
    USAGE_EVENT,
    USAGE_EVENT_BATCH,
)
from schemas.codec import Codec, EncodeError
from schemas.registry import FileRegistry, load_local_schemas, read_manifest
from tests.unit.codec.samples import SAMPLES, T0, token, usage

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
