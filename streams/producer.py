"""Publishing with confluent-kafka: keyed by customer_id, murmur2 like Java clients (our home
partition), idempotent so a client retry does not duplicate a record."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer

from schemas.codec import Codec
from streams import topics

USAGE_EVENT = "meterline.UsageEvent"
USAGE_BATCH = "meterline.UsageEventBatch"
TOKEN_EVENT = "meterline.TokenEvent"


def make_producer(bootstrap: str, **overrides: Any) -> Producer:
    config = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
    }
    config.update(overrides)
    return Producer(config)


def send(producer: Producer, topic: str, key: str | None, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key.encode() if key is not None else None, value=value)
            return
        except BufferError:
            # Local queue full: let librdkafka drain instead of failing the publish.
            producer.poll(0.05)


def produce_lines(
    producer: Producer, codec: Codec, topic: str, lines: Iterable[str], as_json: bool = False
) -> int:
    """Publishes JSON lines. Usage and token events are validated and sent as Avro (unless
    ``as_json``); other topics go as JSON, which every Meterline topic accepts."""
    sent = 0
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON: {exc}") from exc
        key = record.get("customer_id") if isinstance(record, dict) else None
        if as_json or topic not in (topics.USAGE, topics.TOKENS):
            value = line.encode()
        elif topic == topics.USAGE:
            (event,) = codec.usage_events(line.encode())
            value = codec.encode(USAGE_EVENT, event)
        else:
            (event,) = codec.token_events(line.encode())
            value = codec.encode(TOKEN_EVENT, event)
        send(producer, topic, key, value)
        sent += 1
        if sent % 10000 == 0:
            producer.poll(0)
    producer.flush(60)
    return sent
