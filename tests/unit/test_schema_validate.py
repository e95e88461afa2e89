"""The pure checks behind the codec (schemas.validate)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fastavro import parse_schema

from schemas.prepare import default_value, prepare
from schemas.validate import (
    DecodeError,
    show,
    to_count,
    to_decimal,
    to_timestamp,
    usage_event,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Decimal(1)),
        ("+1", Decimal(1)),
        ("-0", Decimal(0)),
        ("1.", Decimal(1)),
        (".5", Decimal("0.5")),
        ("2E+2", Decimal(200)),
        ("2e-12", Decimal("2E-12")),
        (" 7 ", Decimal(7)),
        ("00012.3400000000000000", Decimal("12.34")),
    ],
)
def test_decimal_text_accepted(text: str, expected: Decimal) -> None:
    assert to_decimal(text, "v") == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        ".",
        "-",
        "1e",
        "e5",
        "1.2.3",
        "1,5",
        "1_0",
        "0x10",
        "inf",
        "-Infinity",
        "sNaN",
        "١٢",
        "1e+",
        "--1",
        "1 2",
    ],
)
def test_decimal_text_rejected(text: str) -> None:
    with pytest.raises(DecodeError, match="field 'v': not a decimal"):
        to_decimal(text, "v")


def test_decimal_limits_follow_the_schema() -> None:
    assert to_decimal("123.45", "f", scale=2, precision=5) == Decimal("123.45")
    with pytest.raises(DecodeError, match="more than 2 fractional digits"):
        to_decimal("1.234", "f", scale=2, precision=5)
    with pytest.raises(DecodeError, match="more than 3 integer digits"):
        to_decimal("1000", "f", scale=2, precision=5)
    # 38 significant digits need more than the default 28-digit context.
    big = "99999999999999999999999999.999999999999"
    assert str(to_decimal(big + "000", "f")) == big


def test_timestamps_and_counts() -> None:
    assert to_timestamp(Decimal("5"), "t") == 5
    assert to_timestamp(" 42 ", "t") == 42
    with pytest.raises(DecodeError, match="not a timestamp"):
        to_timestamp(Decimal("NaN"), "t")
    assert to_count(Decimal("1E+3"), "n") == 1000
    with pytest.raises(DecodeError, match="non-negative integer"):
        to_count(Decimal("Infinity"), "n")


def test_usage_event_rebuilds_only_schema_fields() -> None:
    ev = usage_event(
        {
            "event_id": "e",
            "customer_id": "c",
            "meter": "m",
            "value": 1,
            "timestamp": 2,
            "extra": "dropped",
        }
    )
    assert set(ev) == {"event_id", "customer_id", "meter", "value", "timestamp", "dimensions"}
    with pytest.raises(DecodeError, match="field 'dimensions': key 1 is not a string"):
        usage_event(
            {
                "event_id": "e",
                "customer_id": "c",
                "meter": "m",
                "value": 1,
                "timestamp": 2,
                "dimensions": {1: "x"},
            }
        )


def test_show_keeps_messages_short() -> None:
    assert show(None) == "null"
    assert show(True) == "true"
    assert show("x" * 500).endswith("...")
    assert len(show("x" * 500)) == 80


_TWO_LOOKALIKES = parse_schema(
    {
        "type": "record",
        "name": "Holder",
        "namespace": "t",
        "fields": [
            {
                "name": "u",
                "type": [
                    {"type": "record", "name": "A", "fields": [{"name": "x", "type": "long"}]},
                    {"type": "record", "name": "B", "fields": [{"name": "x", "type": "long"}]},
                    "string",
                ],
            }
        ],
    },
    named_schemas={},
)


def _prep(datum: Any) -> Any:
    return prepare(_TWO_LOOKALIKES, datum, _TWO_LOOKALIKES["__named_schemas"])


def test_ambiguous_union_needs_a_tag() -> None:
    with pytest.raises(DecodeError, match=r"ambiguous, fits t.A, t.B; tag it"):
        _prep({"u": {"x": 1}})
    assert _prep({"u": ("t.B", {"x": 1})}) == {"u": ("t.B", {"x": 1})}
    assert _prep({"u": "plain"}) == {"u": "plain"}


def test_defaults_become_python_values() -> None:
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 12}
    # Avro writes a bytes default as the code points of the bytes: here 10**36 unscaled.
    raw = (10**36).to_bytes(16, "big", signed=True).decode("latin-1")
    assert default_value(decimal, raw, {}) == Decimal(10**24)
    assert default_value(decimal, "\u0000", {}) == 0
    assert default_value(decimal, "\u00ff", {}) == Decimal("-1E-12")
    assert default_value(["null", "long"], None, {}) is None
    assert default_value({"type": "array", "items": decimal}, ["\u0001"], {}) == [Decimal("1E-12")]
