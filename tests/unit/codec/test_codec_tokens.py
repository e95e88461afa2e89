"""Token events, and JSON written out exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from schemas import (
    TOKEN_EVENT,
)
from schemas.codec import Codec, DecodeError, to_json_bytes
from tests.unit.codec.samples import T0, jbytes, token, usage

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
