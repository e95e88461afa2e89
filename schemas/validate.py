"""Validation and normalisation of records: pure functions, no I/O, no Kafka.

The usage and token checks run for every event (~10k/s per worker), so they are plain dict and
type checks, no model objects. Avro-decoded events already have the right Python types and only
need the checks Avro cannot express (non-empty ids, decimal precision, non-negative counts);
JSON events are rebuilt into fresh dicts of exactly the schema's fields.

Errors are :class:`DecodeError` with a message that names the field and shows the bad value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any, NamedTuple


class DecodeError(ValueError):
    """The data is invalid: dead-letter it with ``str(error)`` as the reason."""


class EncodeError(ValueError):
    """A record given to the encoder does not fit its schema."""


class Rejected(NamedTuple):
    """One bad event of an otherwise good batch."""

    index: int
    reason: str
    event: Any


SCALE = 12
PRECISION = 38
MAX_LONG = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# quantize() needs room for all 38 digits; the default context (28) would raise on big values.
_WIDE = Context(prec=100)
_LIMITS: dict[tuple[int, int], Decimal] = {}
_QUANTA: dict[int, Decimal] = {}
_LIMIT = Decimal(10) ** (PRECISION - SCALE)
_MISSING: Any = object()
_DIGITS = frozenset("0123456789")


def show(value: Any) -> str:
    """A bad value as the producer wrote it (JSON spelling for null/true/false), kept short."""
    if value is None:
        text = "null"
    elif value is True:
        text = "true"
    elif value is False:
        text = "false"
    elif isinstance(value, Decimal):
        text = str(value)
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return show(value)


# --------------------------------------------------------------------------- scalars


def _is_decimal_text(s: str) -> bool:
    # Decimal() also takes "1_000", "NaN", "Infinity" and non-ASCII digits; producers must not.
    t = s.strip()
    if t[:1] in ("+", "-"):
        t = t[1:]
    mantissa, _, exponent = t.replace("E", "e").partition("e")
    whole, _, frac = mantissa.partition(".")
    if not (whole or frac) or not set(whole) <= _DIGITS or not set(frac) <= _DIGITS:
        return False
    if exponent or t.endswith("e"):
        if exponent[:1] in ("+", "-"):
            exponent = exponent[1:]
        return bool(exponent) and set(exponent) <= _DIGITS
    return True


def to_decimal(value: Any, field: str, scale: int = SCALE, precision: int = PRECISION) -> Decimal:
    """An exact decimal with at most ``precision - scale`` integer and ``scale`` fractional
    digits, from a Decimal, an int or a decimal string. Extra fractional digits are rejected,
    never rounded (trailing zeros are not extra: 1.50000000000000 is 1.5)."""
    t = type(value)
    if t is Decimal:
        d = value
    elif t is int:
        d = Decimal(value)
    elif t is str:
        if not _is_decimal_text(value):
            raise DecodeError(f"field {field!r}: not a decimal: {show(value)}")
        d = Decimal(value)
    elif t is float:
        raise DecodeError(
            f"field {field!r}: float {value!r} is not exact; give a Decimal, an int or a string"
        )
    else:
        raise DecodeError(f"field {field!r}: not a decimal: {show(value)}")
    if not d.is_finite():
        raise DecodeError(f"field {field!r}: not a finite decimal: {show(value)}")
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -scale:
        quantum = _QUANTA.get(scale)
        if quantum is None:
            quantum = _QUANTA[scale] = Decimal(1).scaleb(-scale)
        q = d.quantize(quantum, context=_WIDE)
        if q != d:
            raise DecodeError(
                f"field {field!r}: more than {scale} fractional digits: {show(value)} "
                "(rejected, not rounded)"
            )
        d = q
    limit = _LIMITS.get((scale, precision))
    if limit is None:
        limit = _LIMITS[(scale, precision)] = Decimal(10) ** (precision - scale)
    if not -limit < d < limit:
        raise DecodeError(
            f"field {field!r}: more than {precision - scale} integer digits: {show(value)}"
        )
    return d


def iso_to_ms(text: str, field: str) -> int:
    """ISO-8601 with a UTC offset → ms since the epoch, in integer arithmetic. Digits below the
    millisecond are truncated (toward the past, like Java's Instant.toEpochMilli)."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DecodeError(
            f"field {field!r}: not a timestamp (ms since the epoch or ISO-8601): {show(text)}"
        ) from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise DecodeError(f"field {field!r}: ISO-8601 timestamp without a UTC offset: {show(text)}")
    return (dt - _EPOCH) // _MS


def to_timestamp(value: Any, field: str) -> int:
    """Milliseconds since the epoch from an int, an integral decimal, a digit string or an
    ISO-8601 string with an offset."""
    t = type(value)
    if t is int:
        ms = value
    elif t is str:
        s = value.strip()
        if not (s and set(s) <= _DIGITS):
            ms = iso_to_ms(s, field)
        elif len(s) <= 19:
            ms = int(s)
        else:  # int() of thousands of digits raises a plain ValueError; no long has > 19
            ms = -1
    elif t is Decimal and value.is_finite() and value == value.to_integral_value():
        ms = int(value)
    else:
        raise DecodeError(
            f"field {field!r}: not a timestamp (ms since the epoch or ISO-8601): {show(value)}"
        )
    if not 0 <= ms <= MAX_LONG:
        raise DecodeError(f"field {field!r}: timestamp out of range (before 1970?): {show(value)}")
    return ms


def to_count(value: Any, field: str) -> int:
    t = type(value)
    if t is int:
        n = value
    elif t is Decimal and value.is_finite() and value == value.to_integral_value():
        n = int(value)
    else:
        raise DecodeError(f"field {field!r}: expected a non-negative integer, got {show(value)}")
    if not 0 <= n <= MAX_LONG:
        raise DecodeError(f"field {field!r}: expected a non-negative integer, got {show(value)}")
    return n


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, _MISSING)
    if type(value) is str and value:
        return value
    if value is _MISSING:
        raise DecodeError(f"missing field {key!r}")
    if value == "":
        raise DecodeError(f"field {key!r}: must not be empty")
    raise DecodeError(f"field {key!r}: expected a non-empty string, got {show(value)}")


def _required(obj: dict[str, Any], key: str) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise DecodeError(f"missing field {key!r}")
    return value


def to_dimensions(value: Any, field: str = "dimensions") -> dict[str, str]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise DecodeError(f"field {field!r}: expected an object of strings, got {_kind(value)}")
    for k, v in value.items():
        if type(k) is not str:
            raise DecodeError(f"field {field!r}: key {show(k)} is not a string")
        if type(v) is not str:
            raise DecodeError(f"field '{field}.{k}': expected a string, got {show(v)}")
    return value


# --------------------------------------------------------------------------- usage events


def usage_event(obj: Any) -> dict[str, Any]:
    """A UsageEvent from JSON (or a Python dict given to the encoder), normalised."""
    if type(obj) is not dict:
        raise DecodeError(f"expected an event object, got {_kind(obj)}")
    return {
        "event_id": _text(obj, "event_id"),
        "customer_id": _text(obj, "customer_id"),
        "meter": _text(obj, "meter"),
        "value": to_decimal(_required(obj, "value"), "value"),
        "timestamp": to_timestamp(_required(obj, "timestamp"), "timestamp"),
        "dimensions": to_dimensions(obj.get("dimensions")),
    }


def check_usage_avro(ev: dict[str, Any]) -> dict[str, Any]:
    """A UsageEvent as fastavro decoded it: only what Avro types cannot promise is checked."""
    if ev["event_id"] and ev["customer_id"] and ev["meter"]:
        v = ev["value"]
        # fastavro does not enforce the decimal's precision: a foreign writer may exceed it.
        if -_LIMIT < v < _LIMIT and ev["timestamp"] >= 0:
            return ev
    # Slow path, only for bad events: find the first problem and say it.
    for key in ("event_id", "customer_id", "meter"):
        _text(ev, key)
    to_decimal(ev["value"], "value")
    to_timestamp(ev["timestamp"], "timestamp")
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- token events


# --------------------------------------------------------------------------- lists of events

Check = Callable[[Any], dict[str, Any]]


def each(items: Iterable[Any], check: Check) -> list[dict[str, Any]]:
    """All events or a DecodeError naming the first bad one by its index."""
    out: list[dict[str, Any]] = []
    append = out.append
    try:
        for item in items:
            append(check(item))
    except DecodeError as exc:
        raise DecodeError(f"event {len(out)}: {exc}") from None
    return out


def each_lenient(items: Iterable[Any], check: Check) -> tuple[list[dict[str, Any]], list[Rejected]]:
    good: list[dict[str, Any]] = []
    bad: list[Rejected] = []
    for i, item in enumerate(items):
        try:
            good.append(check(item))
        except DecodeError as exc:
            bad.append(Rejected(i, f"event {i}: {exc}", item))
    return good, bad


def json_event_list(obj: Any) -> tuple[list[Any], bool]:
    """The events of a JSON value (an event, a list of events or {"events": [...]}); the flag
    says whether it was a single event (whose errors need no index)."""
    if type(obj) is dict:
        if "events" not in obj:
            return [obj], True
        items = obj["events"]
        if type(items) is not list:
            raise DecodeError(f"field 'events': expected a list of events, got {_kind(items)}")
        return items, False
    if type(obj) is list:
        return obj, False
    raise DecodeError(f"expected an event object or a list of events, got {_kind(obj)}")


def json_events(obj: Any, check: Check) -> list[dict[str, Any]]:
    items, single = json_event_list(obj)
    return [check(items[0])] if single else each(items, check)


# --------------------------------------------------------------------------- JSON out


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Fixed-point text: "1E+3" or "0E-12" would trip up finance consumers.
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json_bytes(record: Any) -> bytes:
    """Compact UTF-8 JSON; Decimals as fixed-point strings (exact), bytes as base64,
    union tuples as [name, record]."""
    return json.dumps(
        record, default=_json_default, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
