"""Typed input of the processor: where each record came from and what it is.

Events stay the dicts fastavro decodes (``UsageRecord`` / ``TokenRecord`` name their shape for
the type checker at no cost per event); a model object per event is the per-message cost this
pipeline avoids.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypedDict


class InputKind(StrEnum):
    USAGE = "usage"
    TOKENS = "tokens"
    ACCOUNTS = "accounts"
    PAYMENTS = "payments"

    @property
    def is_event(self) -> bool:
        return self in (InputKind.USAGE, InputKind.TOKENS)


class UsageRecord(TypedDict):
    event_id: str
    customer_id: str
    meter: str
    value: Decimal
    timestamp: int
    dimensions: dict[str, str]


class TokenRecord(TypedDict):
    event_id: str
    customer_id: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int  # part of input_tokens (TokenEvent.avsc says exactly)
    timestamp: int
    dimensions: dict[str, str]
    cache_write_tokens: int  # part of input_tokens
    reasoning_tokens: int  # part of output_tokens


@dataclass(frozen=True, slots=True)
class BillingInput:
    """An account command or payment outcome as it was decoded: ``encoding`` is the Avro
    schema name, or "json"."""

    customer_id: str
    encoding: str
    value: Any


@dataclass(frozen=True, slots=True)
class Origin:
    """The Kafka message a record came in: what a dead letter must name."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}"


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One record of a customer's share of a batch. ``source`` is the topic-partition the
    record was read from (applied offsets are kept per source); ``index`` is its place inside
    a batch envelope, so ``(source, offset, index)`` names it uniquely."""

    kind: InputKind
    origin: Origin
    index: int
    body: Any  # UsageRecord | TokenRecord | BillingInput

    @property
    def source(self) -> str:
        return self.origin.source

    @property
    def offset(self) -> int:
        return self.origin.offset

    @property
    def ref(self) -> str:
        return f"{self.origin.source}@{self.origin.offset}.{self.index}"


@dataclass(frozen=True, slots=True)
class Reject:
    origin: Origin
    reason: str


@dataclass(frozen=True, slots=True)
class Forward:
    """A record that arrived on a partition other than its customer's home: re-sent there so
    each customer has one writer. ``record`` is None for account commands and payments, which
    are forwarded as the bytes they came in."""

    kind: InputKind
    customer_id: str
    home: int
    record: UsageRecord | TokenRecord | None
    origin: Origin
