"""Publishing with confluent-kafka: keyed by customer_id, murmur2 like Java clients (our home
partition), idempotent so a client retry does not duplicate a record.

The building blocks; ``meterline.client.MeterlineProducer`` is the client with typed events,
envelopes and delivery accounting per record that ``meterline produce`` uses."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from streams.kafka_security import kafka_config

USAGE_EVENT = "meterline.UsageEvent"
USAGE_BATCH = "meterline.UsageEventBatch"
TOKEN_EVENT = "meterline.TokenEvent"


def make_producer(bootstrap: str, **overrides: Any) -> Producer:
    config = {
        **kafka_config(bootstrap),
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
