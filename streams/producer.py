"""Publishing with confluent-kafka: keyed by customer_id, murmur2 like Java clients (our home
partition), idempotent so a client retry does not duplicate a record.

The building blocks; ``meterline.client.MeterlineProducer`` is the client with typed events,
envelopes and delivery accounting per record that ``meterline produce`` uses."""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from streams.kafka_security import kafka_config

USAGE_EVENT = "meterline.UsageEvent"
USAGE_BATCH = "meterline.UsageEventBatch"
TOKEN_EVENT = "meterline.TokenEvent"

log = logging.getLogger(__name__)


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


_DEAD_PRODUCER = frozenset(
    {
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
    }
)


class RenewingProducer:
    """An idempotent producer that outlives a fatal error.

    When records time out during a broker outage, librdkafka's idempotent producer must get
    a new producer epoch; a broker that refuses it (Tansu answers PRODUCER_FENCED) leaves the
    producer in a fatal state in which every later record fails. A long-running publisher
    (the proxy, HTTP ingestion) would then fail until restarted, so on a fatal error the
    poll thread replaces the producer; what the old one still held is purged, and each of
    those records' delivery report says it failed, so its owner sends it again.

    Threads: ``poll`` (which renews) runs on one poll thread; ``send`` from anywhere.
    """

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        self._bootstrap = bootstrap
        self._overrides = overrides
        self._fatal = threading.Event()
        self.renewals = 0
        self.producer = self._new()
        # Replaced producers, purged and polled until empty: a send that raced the renewal
        # may still land in one, and its report must come out all the same.
        self._retired: list[Producer] = []

    def _new(self) -> Producer:
        return make_producer(self._bootstrap, error_cb=self._on_error, **self._overrides)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.warning("Kafka producer fatal error, replacing the producer: %s", err.str())
            self._fatal.set()

    def note(self, err: KafkaError | None) -> None:
        """Delivery reports pass their error here: a fatal one renews the producer, and so
        does an error that says its producer id or epoch is no longer good (librdkafka does
        not always raise those as fatal; with Tansu every record then fails the same way)."""
        if err is not None and (err.fatal() or err.code() in _DEAD_PRODUCER):
            self._fatal.set()

    def send(self, topic: str, key: str | None, value: bytes, on_delivery: Any) -> None:
        """Raises KafkaException when the producer refuses the record (it is not queued)."""
        try:
            send(self.producer, topic, key, value, on_delivery=on_delivery)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.fatal():
                self._fatal.set()
            raise

    def poll(self, timeout: float) -> None:
        if self._fatal.is_set():
            old, self.producer = self.producer, self._new()
            self._fatal.clear()
            self.renewals += 1
            self._retired.append(old)
        for old in self._retired:
            old.purge()
            old.poll(0)  # the purged records' reports: failed, so their owners resend them
        self._retired = [old for old in self._retired if len(old) > 0]
        self.producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        return self.producer.flush(timeout)
