"""Topic creation at start: idempotent, so every worker (and `meterline dev`) may call it."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams import topics
from streams.kafka_security import kafka_config


def ensure_topics(
    bootstrap: str,
    partitions: int,
    replication: int = 1,
    names: list[str] | None = None,
    timeout: float = 30.0,
) -> None:
    admin = AdminClient(kafka_config(bootstrap))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [n for n in (names or topics.ALL) if n not in existing]
    if not wanted:
        return
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=replication) for n in wanted],
        operation_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"could not create topic {name}: {exc}") from exc
