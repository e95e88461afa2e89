"""CloudEvents (structured JSON mode, single and batch) → UsageEvent, as OpenMeter's
``POST /api/v1/events`` takes them.

    {"specversion": "1.0", "id": "evt-1", "source": "my-app", "type": "api_calls",
     "subject": "acme", "time": "2026-01-01T12:00:00Z",
     "data": {"value": "3", "region": "eu"}}

- ``type`` is the meter code, ``subject`` the customer.
- ``data.value`` is the quantity (an exact decimal: a JSON number or a decimal string);
  absent means 1, one occurrence (count meters need no value).
- every other ``data`` member is a dimension (strings as they are, numbers as exact text,
  booleans as true/false); nested objects and lists are refused.
- ``time`` (RFC 3339 with an offset) is the event time; absent means when it was received.
- the event id is ``{source}:{id}``: CloudEvents makes source + id the identity of an event
  (two sources may reuse ids), so a retried event keeps it and is counted once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from meterline.ingest.records import dimension_text, optional_text, text
from schemas.validate import DecodeError, show, to_decimal, to_timestamp

CONTENT_SINGLE = "application/cloudevents+json"
CONTENT_BATCH = "application/cloudevents-batch+json"
SPEC_VERSION = "1.0"


def event_list(body: Any, content_type: str) -> list[Any]:
    """The CloudEvents of a request body: a batch is a JSON array, a single event an object
    (``application/json`` may carry either, as OpenMeter accepts)."""
    if content_type == CONTENT_BATCH:
        if type(body) is not list:
            raise DecodeError(f"{CONTENT_BATCH} must be a JSON array of CloudEvents")
        return body
    if content_type == CONTENT_SINGLE and type(body) is not dict:
        raise DecodeError(f"{CONTENT_SINGLE} must be one CloudEvent object")
    if type(body) is list:
        return body
    if type(body) is dict:
        return [body]
    raise DecodeError(f"expected a CloudEvent object or an array of them, got {show(body)}")


# The same few quantity texts ("1", "0.5") arrive over and over: their checked Decimals are
# kept (to_decimal is deterministic, so a kept one is what checking again would give).
_values: dict[str, Decimal] = {}


def to_usage(ce: Any, _index: int, now_ms: int) -> dict[str, Any]:
    if type(ce) is not dict:
        raise DecodeError(f"expected a CloudEvent object, got {show(ce)}")
    event_id, source, meter, customer = (
        ce.get("id"),
        ce.get("source"),
        ce.get("type"),
        ce.get("subject"),
    )
    # One test for the common, valid case; the field-by-field checks below only name the
    # first problem of a bad event (this runs per event: ~200 per HTTP request).
    if not (
        ce.get("specversion") == SPEC_VERSION
        and type(event_id) is str
        and type(source) is str
        and type(meter) is str
        and type(customer) is str
        and event_id
        and source
        and meter
        and customer
    ):
        _first_problem(ce)
    if "datacontenttype" in ce or "data_base64" in ce:
        _check_content_type(ce)
    data = ce.get("data")
    if data is None:
        data = {}
    elif type(data) is not dict:
        raise DecodeError(f"field 'data': expected a JSON object, got {show(data)}")
    dimensions: dict[str, str] = {}
    for key, raw in data.items():
        if type(raw) is str:
            dimensions[key] = raw
        elif key != "value":
            value = dimension_text(raw, f"data.{key}")
            if value is not None:
                dimensions[key] = value
    dimensions.pop("value", None)
    time = ce.get("time")
    raw = data.get("value", 1)
    value = _values.get(raw) if type(raw) is str else None
    if value is None:
        value = to_decimal(raw, "data.value")
        if type(raw) is str:
            if len(_values) >= 4096:
                _values.clear()
            _values[raw] = value
    return {
        "event_id": f"{source}:{event_id}",
        "customer_id": customer,
        "meter": meter,
        "value": value,
        "timestamp": now_ms if time is None else to_timestamp(time, "time"),
        "dimensions": dimensions,
    }


def _first_problem(ce: dict[str, Any]) -> None:
    version = ce.get("specversion")
    if version != SPEC_VERSION:
        raise DecodeError(f"field 'specversion': must be \"1.0\", got {show(version)}")
    text(ce, "id")
    text(ce, "source")
    text(ce, "type", "the meter code")
    text(ce, "subject", "the customer")


def _check_content_type(ce: dict[str, Any]) -> None:
    content_type = optional_text(ce, "datacontenttype")
    if content_type is not None and not content_type.startswith("application/json"):
        raise DecodeError(
            f"field 'datacontenttype': only application/json data is metered, got {content_type!r}"
        )
    if "data_base64" in ce:
        raise DecodeError("field 'data_base64': binary data cannot be metered; send JSON 'data'")
