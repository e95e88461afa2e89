"""Usage events from Avro and JSON, and every way a usage value can be wrong."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from schemas import (
    DEAD_LETTER,
    PAYMENT_OUTCOME,
    TOKEN_EVENT,
    USAGE_EVENT,
    USAGE_EVENT_BATCH,
)
from schemas.codec import Codec, DecodeError, Rejected
from schemas.registry import load_local_schemas
from tests.unit.codec.samples import (
    GOOD_JSON,
    SAMPLES,
    T0,
    jbytes,
    json_event,
    json_event_without,
    token,
    usage,
)

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


REJECTED_USAGE: list[tuple[bytes, str]] = [
    (b"", "empty value"),
    (b"\x00\x00\x00", "truncated Confluent header: 3 bytes"),
    (b"\x00\x00\x00\x00\x63\x02", "schema id 99 not registered"),
    (b"\x01abc", "unknown magic byte 0x01"),
    (b"hello", "unknown magic byte 0x68"),
    (b'{"event_id": ', "invalid JSON"),
    (b"\xff\xfe{", "unknown magic byte 0xff"),
    (jbytes("just a string"), "unknown magic byte 0x22"),
    (jbytes(json_event_without("customer_id")), "missing field 'customer_id'"),
    (jbytes(json_event_without("event_id")), "missing field 'event_id'"),
    (jbytes(json_event_without("value")), "missing field 'value'"),
    (jbytes(json_event_without("timestamp")), "missing field 'timestamp'"),
    (jbytes(json_event(meter="")), "field 'meter': must not be empty"),
    (
        jbytes(json_event(customer_id=42)),
        "field 'customer_id': expected a non-empty string, got 42",
    ),
    (
        jbytes(json_event(event_id=None)),
        "field 'event_id': expected a non-empty string, got null",
    ),
    (jbytes(json_event(value="abc")), "field 'value': not a decimal: 'abc'"),
    (jbytes(json_event(value="1_000")), "field 'value': not a decimal: '1_000'"),
    (jbytes(json_event(value="NaN")), "field 'value': not a decimal: 'NaN'"),
    (jbytes(json_event(value="")), "field 'value': not a decimal: ''"),
    (jbytes(json_event(value=True)), "field 'value': not a decimal: true"),
    (jbytes(json_event(value=None)), "field 'value': not a decimal: null"),
    (jbytes(json_event(value=[1])), "field 'value': not a decimal: [1]"),
    (jbytes(json_event(value={"v": 1})), "field 'value': not a decimal"),
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
    (jbytes(json_event(value="1e-13")), "more than 12 fractional digits"),
    (jbytes(json_event(value=10**26)), "field 'value': more than 26 integer digits"),
    (jbytes(json_event(value="-1e26")), "more than 26 integer digits"),
    (jbytes(json_event(timestamp="2023-11-14T22:13:20")), "without a UTC offset"),
    (jbytes(json_event(timestamp="yesterday")), "field 'timestamp': not a timestamp"),
    (jbytes(json_event(timestamp=-1)), "field 'timestamp': timestamp out of range"),
    (jbytes(json_event(timestamp=2**63)), "timestamp out of range"),
    (jbytes(json_event(timestamp="1969-12-31T23:59:59Z")), "timestamp out of range"),
    (
        b'{"event_id":"e","customer_id":"c","meter":"m","value":1,"timestamp":1.5}',
        "field 'timestamp': not a timestamp",
    ),
    (jbytes(json_event(timestamp=True)), "field 'timestamp': not a timestamp"),
    (jbytes(json_event(timestamp="1" * 5000)), "field 'timestamp': timestamp out of range"),
    (jbytes(json_event(value="1" * 5000)), "more than 26 integer digits"),
    (b"[" * 100_000, "invalid JSON"),
    (
        jbytes(json_event(dimensions={"region": 5})),
        "field 'dimensions.region': expected a string, got 5",
    ),
    (
        jbytes(json_event(dimensions=["a"])),
        "field 'dimensions': expected an object of strings",
    ),
    (jbytes([GOOD_JSON, 7]), "event 1: expected an event object, got 7"),
    (
        jbytes([GOOD_JSON, GOOD_JSON, json_event(value="x")]),
        "event 2: field 'value': not a decimal",
    ),
    (jbytes({"events": {"a": 1}}), "field 'events': expected a list of events, got an object"),
    (jbytes({"events": [json_event_without("meter")]}), "event 0: missing field 'meter'"),
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
    batch = [
        json_event(event_id="a"),
        json_event(event_id="b", value="x"),
        json_event(event_id="c"),
    ]
    good, bad = codec.usage_events_lenient(jbytes(batch))
    assert [e["event_id"] for e in good] == ["a", "c"]
    assert bad == [Rejected(1, "event 1: field 'value': not a decimal: 'x'", batch[1])]
    avro = _raw_avro(codec, USAGE_EVENT_BATCH, {"events": [usage(), usage(meter="")]})
    good, bad = codec.usage_events_lenient(avro)
    assert len(good) == 1
    assert bad[0].index == 1
    assert "must not be empty" in bad[0].reason
    with pytest.raises(DecodeError, match="missing field 'meter'"):
        codec.usage_events_lenient(jbytes(json_event_without("meter")))
    good, bad = codec.token_events_lenient(jbytes([token(), {**token(), "model": ""}]))
    assert len(good) == 1
    assert bad[0].index == 1
