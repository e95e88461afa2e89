"""Decimals and timestamps convert exactly or are refused; values written with a first
schema still decode."""

from __future__ import annotations

import calendar
import io
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    ACCOUNT_COMMAND,
    PAYMENT_OUTCOME,
    USAGE_EVENT,
)
from schemas.codec import Codec, DecodeError, EncodeError
from schemas.registry import FileRegistry
from tests.unit.codec.samples import SAMPLES, T0, jbytes, json_event, usage

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
    (as_string,) = codec.usage_events(jbytes(json_event(value=str(value))))
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
        codec.usage_events(jbytes(json_event(value=str(value))))


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
    (ev,) = codec.usage_events(jbytes(json_event(timestamp=local.isoformat())))
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
