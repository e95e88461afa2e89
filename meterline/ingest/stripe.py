"""Stripe-compatible meter events → UsageEvent, answered in Stripe's shapes.

- v1 ``POST /v1/billing/meter_events``, form-encoded: ``event_name``,
  ``payload[stripe_customer_id]``, ``payload[value]``, ``identifier``, ``timestamp`` (Unix
  seconds). Answer: the ``billing.meter_event`` object.
- v2 ``POST /v2/billing/meter_event_stream``, JSON ``{"events": [{event_name, payload,
  identifier, timestamp (RFC 3339)}]}``, at most 100 events, as Stripe limits it. Answer:
  ``{}``.

``event_name`` is the meter code, ``payload.stripe_customer_id`` the customer (Stripe's default
customer mapping key), ``payload.value`` the quantity (Stripe's default value key), every
other payload key a dimension, ``identifier`` the event id. Like Stripe, a missing
identifier gets a generated one (v1: the ``Idempotency-Key`` header when given), so only an
identified event is safe to retry. Errors: ``{"error": {"type": "invalid_request_error",
"code", "message", "param"}}`` with Stripe's status codes; a request with several bad events
names the first in ``message``/``param`` and lists all in ``meterline_errors``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from meterline.ingest.records import FieldError, RecordError, dimension_text
from schemas.validate import MAX_LONG, iso_to_ms, show, to_decimal

CUSTOMER_KEY = "stripe_customer_id"
VALUE_KEY = "value"
V2_MAX_EVENTS = 100
_EVENT_KEYS = frozenset({"event_name", "payload", "identifier", "timestamp"})


def new_identifier() -> str:
    return f"mev_{uuid.uuid4().hex}"


def form_event(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A v1 form body (``payload[key]=value`` pairs) as the JSON-shaped event."""
    event: dict[str, Any] = {}
    payload: dict[str, str] = {}
    for key, value in pairs:
        if key.startswith("payload[") and key.endswith("]"):
            inner = key[len("payload[") : -1]
            if not inner or "[" in inner or "]" in inner:
                raise FieldError(f"Invalid hash parameter: {key}", key)
            payload[inner] = value
        elif key in _EVENT_KEYS and key != "payload":
            event[key] = value
        else:
            raise FieldError(f"Received unknown parameter: {key}", key, "parameter_unknown")
    if payload:
        event["payload"] = payload
    return event


def _seconds_to_ms(value: Any, param: str) -> int:
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 12:
        value = int(value)
    if type(value) is int and 0 <= value <= MAX_LONG // 1000:
        return value * 1000
    raise FieldError(
        f"Invalid timestamp: must be an integer Unix timestamp, got {show(value)}", param
    )


def timestamp_ms(value: Any, param: str, now_ms: int) -> int:
    """Unix seconds (v1, an integer or its digits) or RFC 3339 text (v2); absent = now."""
    if value is None or value == "":
        return now_ms
    if type(value) is str and not (value.isascii() and value.isdigit()):
        try:
            return iso_to_ms(value, param)
        except ValueError as exc:
            raise FieldError(str(exc), param) from None
    return _seconds_to_ms(value, param)


def to_usage(
    event: Any, index: int, now_ms: int, *, prefix: str = "", identifier: str | None = None
) -> dict[str, Any]:
    """One meter event → a UsageEvent candidate; ``prefix`` names the event's position in
    error params (``events[3].``)."""
    if type(event) is not dict:
        raise FieldError(f"Invalid object: expected a meter event, got {show(event)}", prefix[:-1])
    for key in event:
        if key not in _EVENT_KEYS:
            raise FieldError(
                f"Received unknown parameter: {prefix}{key}", prefix + key, "parameter_unknown"
            )
    name = event.get("event_name")
    if type(name) is not str or not name:
        raise _missing_or_invalid(name, prefix + "event_name")
    payload = event.get("payload")
    if type(payload) is not dict:
        raise _missing_or_invalid(payload, prefix + "payload", "an object")
    customer = payload.get(CUSTOMER_KEY)
    if type(customer) is not str or not customer:
        raise _missing_or_invalid(customer, f"{prefix}payload[{CUSTOMER_KEY}]")
    param_value = f"{prefix}payload[{VALUE_KEY}]"
    if payload.get(VALUE_KEY) is None:
        raise _missing_or_invalid(None, param_value)
    try:
        value = to_decimal(payload[VALUE_KEY], param_value)
    except ValueError as exc:
        raise FieldError(str(exc), param_value) from None
    dimensions: dict[str, str] = {}
    for key, raw in payload.items():
        if key in (CUSTOMER_KEY, VALUE_KEY):
            continue
        try:
            text = dimension_text(raw, f"{prefix}payload[{key}]")
        except ValueError as exc:
            raise FieldError(str(exc), f"{prefix}payload[{key}]") from None
        if text is not None:
            dimensions[key] = text
    ident = event.get("identifier")
    if ident is None or ident == "":
        ident = identifier or new_identifier()
        event["identifier"] = ident  # echoed in the v1 answer
    elif type(ident) is not str:
        raise _missing_or_invalid(ident, prefix + "identifier")
    return {
        "event_id": ident,
        "customer_id": customer,
        "meter": name,
        "value": value,
        "timestamp": timestamp_ms(event.get("timestamp"), prefix + "timestamp", now_ms),
        "dimensions": dimensions,
    }


def _missing_or_invalid(value: Any, param: str, expected: str = "a non-empty string") -> FieldError:
    if value is None:
        return FieldError(f"Missing required param: {param}.", param, "parameter_missing")
    return FieldError(f"Invalid {param}: expected {expected}, got {show(value)}", param)


# --------------------------------------------------------------------------- answers


def meter_event_object(event: dict[str, Any], timestamp_ms_: int, now_ms: int) -> dict[str, Any]:
    """Stripe's ``billing.meter_event`` (v1 answer); times in Unix seconds."""
    return {
        "object": "billing.meter_event",
        "created": now_ms // 1000,
        "event_name": event["event_name"],
        "identifier": event["identifier"],
        "livemode": False,
        "payload": event["payload"],
        "timestamp": timestamp_ms_ // 1000,
    }


def error_body(
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    type_: str = "invalid_request_error",
    errors: list[RecordError] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    if errors and len(errors) > 1:
        error["meterline_errors"] = [e.as_json() for e in errors]
    return {"error": error}


def invalid_body(errors: list[RecordError]) -> dict[str, Any]:
    first = errors[0]
    return error_body(
        first.reason, code=first.code or "parameter_invalid", param=first.param, errors=errors
    )
