"""The pipeline's outbound records on Faust's producer: dead letters, forwards to a
customer's home partition, closed windows, and billing's top-up requests, alerts and
invoices. Everything rides one producer, so one flush makes all of it durable."""

from __future__ import annotations

import json
from typing import Any

import faust

from meterline.processor.inputs import Forward, InputKind, Reject
from schemas.codec import Codec
from schemas.names import TOKEN_EVENT, USAGE_EVENT
from streams.dead_letters import DeadLetters
from streams.topics import AGGREGATES, ALERTS, INVOICES, REHOME, TOPUPS

EVENT_SCHEMA = {InputKind.USAGE: USAGE_EVENT, InputKind.TOKENS: TOKEN_EVENT}


def to_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), default=str).encode()


class FaustOutputs:
    def __init__(self, app: faust.App, codec: Codec, dead_letters: DeadLetters) -> None:
        self.app = app
        self.codec = codec
        self.dlq = dead_letters
        self.forwarded = 0

        def raw(name: str) -> Any:
            return app.topic(name, key_serializer="raw", value_serializer="raw")

        self._aggregates = raw(AGGREGATES)
        self._rehome = {InputKind(kind): raw(name) for kind, name in REHOME.items()}
        self._outbound = {"topups": raw(TOPUPS), "alerts": raw(ALERTS), "invoices": raw(INVOICES)}

    async def dead_letter(self, reject: Reject) -> None:
        await self.dlq.reject(reject.origin, reject.reason)

    async def forward(self, forward: Forward) -> None:
        self.forwarded += 1
        # An envelope may hold several customers: usage and token events are re-encoded one
        # by one; account commands and payments are single records, forwarded as they came.
        if forward.record is not None:
            value = self.codec.encode(EVENT_SCHEMA[forward.kind], forward.record)
        else:
            value = forward.origin.value
        await self._rehome[forward.kind].send(
            key=forward.customer_id.encode(), value=value, partition=forward.home
        )

    async def aggregate(self, customer: str, record: dict[str, Any]) -> None:
        await self._aggregates.send(key=customer.encode(), value=json.dumps(record).encode())

    async def outbound(self, kind: str, customer: str, record: dict[str, Any]) -> None:
        await self._outbound[kind].send(key=customer.encode(), value=to_json(record))

    async def flush(self) -> None:
        await self.app.producer.flush()
