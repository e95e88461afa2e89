"""From HTTP records to validated events and Kafka messages: the rules every ingest route
shares, pure (no aiohttp, no Kafka).

Validation is the Kafka input's: each mapped record goes through ``schemas.validate``
(``usage_event`` / ``token_event``, what the worker applies to JSON input) and through the
worker's event-time gate (``EventTimeLimits``, built from the same settings). What only the
worker can judge stays there: a token event for a model with no price in force is accepted
here and dead-lettered by the worker, which holds the live price book.

A request is all or nothing: one invalid record rejects the whole request (400, every bad
record named by index and reason) and nothing of it is published, so a client never has to
work out which part of a batch went in before retrying it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from meterline.metering.windows import EventTimeLimits
from meterline.settings import Settings
from schemas.codec import Codec
from schemas.names import TOKEN_EVENT, TOKEN_EVENT_BATCH, USAGE_EVENT, USAGE_EVENT_BATCH
from schemas.validate import DecodeError, show, usage_event
from schemas.validate_tokens import token_event
from streams import topics

# A request may carry at most this many records (a CloudEvents batch, a feed's list).
MAX_RECORDS = 10_000
# Events of one customer per envelope message: big enough to amortise the worker's
# per-message cost, small enough to stay far below Kafka's 1 MB message limit.
ENVELOPE_MAX = 500


class Skip(Exception):
    """A record that is valid but carries nothing to bill (a gateway cache hit, a failed
    request): answered as skipped, not published."""


class FieldError(DecodeError):
    """A DecodeError that names the request parameter at fault (Stripe's error ``param``)."""

    def __init__(self, message: str, param: str, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class RecordError:
    index: int
    id: str | None
    reason: str
    param: str | None = None
    code: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "reason": self.reason}


@dataclass(slots=True)
class Mapped:
    """A request's records: validated events, the skipped ones, and every error."""

    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[RecordError] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Kind:
    """Usage or tokens: the topic, the validator and the two schemas of one event kind."""

    name: str
    topic: str
    check: Callable[[Any], dict[str, Any]]
    single: str
    batch: str


USAGE = Kind("usage", topics.USAGE, usage_event, USAGE_EVENT, USAGE_EVENT_BATCH)
TOKENS = Kind("tokens", topics.TOKENS, token_event, TOKEN_EVENT, TOKEN_EVENT_BATCH)

# mapper(record, index, now_ms) -> candidate event dict (raises DecodeError or Skip).
Mapper = Callable[[Any, int, int], dict[str, Any]]


def limits_from_settings(settings: Settings) -> EventTimeLimits:
    """The worker's event-time gate (streams/usage_pipeline.py builds the same one)."""
    return EventTimeLimits(
        max_future_ms=settings.max_future_seconds * 1000,
        max_past_ms=settings.max_past_days * 86_400_000,
    )


def record_id(record: Any, *keys: str) -> str | None:
    """The record's own identifier, to name it in an error (first of ``keys`` present)."""
    if type(record) is dict:
        for key in keys:
            value = record.get(key)
            if type(value) is str and value:
                return value
    return None


def map_records(
    records: Sequence[Any],
    mapper: Mapper,
    kind: Kind,
    limits: EventTimeLimits,
    now_ms: int,
    id_keys: tuple[str, ...] = ("id",),
) -> Mapped:
    """Maps and validates every record (the caller bounds how many: ``MAX_RECORDS``);
    ``id_keys`` name the field that identifies a record in an error."""
    out = Mapped()
    check = kind.check
    for index, record in enumerate(records):
        try:
            event = check(mapper(record, index, now_ms))
            reason = limits.check(event["timestamp"], now_ms)
            if reason is not None:
                raise FieldError(reason, "timestamp")
        except Skip as why:
            out.skipped.append(RecordError(index, record_id(record, *id_keys), str(why)))
            continue
        except DecodeError as exc:
            param, code = getattr(exc, "param", None), getattr(exc, "code", None)
            out.errors.append(
                RecordError(index, record_id(record, *id_keys), str(exc), param, code)
            )
            continue
        out.events.append(event)
    return out


Encode = Callable[[dict[str, Any]], bytes]
EncodeMany = Callable[[Sequence[dict[str, Any]]], bytes]


def codec_encoders(codec: Codec, kind: Kind) -> tuple[Encode, EncodeMany]:
    return (
        lambda event: codec.encode(kind.single, event),
        lambda events: codec.encode(kind.batch, {"events": list(events)}),
    )


def encode_messages(
    events: Iterable[dict[str, Any]], single: Encode, batch: EncodeMany
) -> list[tuple[str, bytes]]:
    """One message per customer (per ``ENVELOPE_MAX`` events), keyed by the customer: an
    envelope of many events costs the worker one message, and the key puts it on the
    customer's home partition. A lone event goes as the single-event schema."""
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_customer.setdefault(event["customer_id"], []).append(event)
    messages: list[tuple[str, bytes]] = []
    for customer, evs in by_customer.items():
        for start in range(0, len(evs), ENVELOPE_MAX):
            chunk = evs[start : start + ENVELOPE_MAX]
            value = single(chunk[0]) if len(chunk) == 1 else batch(chunk)
            messages.append((customer, value))
    return messages


# --------------------------------------------------------------------------- field helpers


def text(obj: dict[str, Any], key: str, hint: str = "", name: str | None = None) -> str:
    """A required non-empty string field; the error names it as the client spells it
    (``name``, default ``key``) and says what it is for (``hint``)."""
    label = name or key
    extra = f" ({hint})" if hint else ""
    value = obj.get(key)
    if type(value) is str and value:
        return value
    if value is None:
        raise DecodeError(f"missing field {label!r}{extra}")
    raise DecodeError(f"field {label!r}{extra}: expected a non-empty string, got {show(value)}")


def optional_text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise DecodeError(f"field {key!r}: expected a string, got {show(value)}")
    return value


def dimension_text(value: Any, field_name: str) -> str | None:
    """A scalar as a dimension value: strings as they are, numbers in exact fixed-point
    text, booleans as true/false, null dropped; objects and lists are refused (a dimension
    is one string)."""
    t = type(value)
    if t is str:
        return value
    if value is None:
        return None
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is Decimal and value.is_finite():
        return format(value, "f")
    raise DecodeError(
        f"field {field_name!r}: a dimension must be a string, number or boolean, got {show(value)}"
    )


def split_model(slug: str) -> tuple[str | None, str]:
    """Gateways name models ``provider/model`` (``openai/gpt-4o``); the price book names
    the model alone, with its provider beside it."""
    provider, sep, model = slug.partition("/")
    return (provider, model) if sep and provider and model else (None, slug)
