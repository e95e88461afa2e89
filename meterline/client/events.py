"""Typed inputs of the producer client: one usage event, one LLM token event.

Plain frozen dataclasses rather than pydantic models: the client turns each into the dict the
codec encodes, so a model's validation pass per event would only repeat the codec's (which
rejects floats, bad decimals and negative counts with a message naming the field)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

__all__ = ["Event", "TokenEvent", "UsageEvent", "now_ms", "to_ms"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_ms(value: int | datetime) -> int:
    """Epoch milliseconds from an int (already ms) or an aware datetime, in integer arithmetic
    so no float rounding moves an event across a window boundary."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp: a naive datetime is ambiguous; give it a tzinfo")
        # Aware datetimes subtract across zones exactly; // truncates sub-ms digits.
        return (value - _EPOCH) // _MS
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _new_id() -> str:
    # Made once, when the event object is built: resending the same object keeps its id, so
    # the worker counts it once however often it is retried.
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageEvent:
    """One raw usage event for ``meterline.usage``. ``value`` must be exact (Decimal, int or
    decimal text): a float is refused by the encoder, never rounded."""

    customer_id: str
    meter: str
    value: Decimal | int | str
    timestamp: int | datetime = field(default_factory=now_ms)
    event_id: str = field(default_factory=_new_id)
    dimensions: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The dict in the Avro schema's shape (schemas/avro/UsageEvent.avsc)."""
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "meter": self.meter,
            "value": self.value,
            "timestamp": to_ms(self.timestamp),
            "dimensions": self.dimensions,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenEvent:
    """LLM token usage of one request for ``meterline.tokens``.

    Counts follow schemas/avro/TokenEvent.avsc: ``input_tokens`` and ``output_tokens`` are
    totals; ``cached_input_tokens`` and ``cache_write_tokens`` are parts of the input,
    ``reasoning_tokens`` part of the output (all optional, default 0)."""

    customer_id: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    timestamp: int | datetime = field(default_factory=now_ms)
    event_id: str = field(default_factory=_new_id)
    dimensions: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The dict in the Avro schema's shape (schemas/avro/TokenEvent.avsc)."""
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "model": self.model,
            "provider": self.provider,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "timestamp": to_ms(self.timestamp),
            "dimensions": self.dimensions,
        }


Event = UsageEvent | TokenEvent
