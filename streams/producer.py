"""Publishing with confluent-kafka: keyed by customer_id, murmur2 like Java clients (our home
partition), idempotent so a client retry does not duplicate a record."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

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


def send(
    producer: Producer, topic: str, key: str | None, value: bytes, on_delivery: Any = None
) -> None:
    encoded = key.encode() if key is not None else None
    while True:
        try:
            if on_delivery is None:
                producer.produce(topic, key=encoded, value=value)
            else:
                producer.produce(topic, key=encoded, value=value, on_delivery=on_delivery)
            return
        except BufferError:
            # Local queue full: let librdkafka drain instead of failing the publish.
            producer.poll(0.05)


class BrokerUnreachable(RuntimeError):
    """Nothing was sent: no broker answered at the configured address."""


@dataclass(slots=True)
class DeliveryReport:
    """What the broker acknowledged of a publish, from librdkafka's delivery reports (a
    record handed to ``produce`` is only queued; only its report says it was written)."""

    sent: int = 0
    acknowledged: int = 0
    # (line number, error) of every record the broker did not acknowledge.
    failed: list[tuple[int, str]] = field(default_factory=list)
    unreported: int = 0  # still queued or in flight when the flush timed out

    @property
    def undelivered(self) -> int:
        return len(self.failed) + self.unreported

    @property
    def ok(self) -> bool:
        return self.undelivered == 0 and self.acknowledged == self.sent

    def callback(self, line: int) -> Any:
        def done(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self.acknowledged += 1
            else:
                self.failed.append((line, err.str()))

        return done


def check_reachable(producer: Producer, bootstrap: str, timeout: float = 5.0) -> None:
    """Fails fast when no broker answers, instead of queueing records that can only time
    out (a forgotten METERLINE_BROKER points at 127.0.0.1:9092, where nothing may listen)."""
    try:
        producer.list_topics(timeout=timeout)
    except KafkaException as exc:
        error = exc.args[0]
        why = error.str() if isinstance(error, KafkaError) else str(error)
        raise BrokerUnreachable(
            f"no Kafka broker answered at {bootstrap} within {timeout:.0f} s ({why}); "
            "set METERLINE_BROKER (meterline dev prints it)"
        ) from None


def produce_lines(
    producer: Producer,
    codec: Codec,
    topic: str,
    lines: Iterable[str],
    as_json: bool = False,
    flush_timeout: float = 30.0,
) -> DeliveryReport:
    """Publishes JSON lines and waits for the broker's acknowledgements. Usage and token
    events are validated and sent as Avro (unless ``as_json``); other topics go as JSON,
    which every Meterline topic accepts. Raises ``ValueError`` on a bad line before sending
    anything more; the report says which records were acknowledged."""
    report = DeliveryReport()
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
        send(producer, topic, key, value, on_delivery=report.callback(number))
        report.sent += 1
        if report.sent % 10000 == 0:
            producer.poll(0)
    report.unreported = producer.flush(flush_timeout)
    return report
