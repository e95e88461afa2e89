"""Kafka clients other than confluent-kafka against the embedded broker (issue 11), so the
README can say which ones work: kafka-python and kafkajs produce and consume, and read the
Avro values the producer client wrote byte for byte. (aiokafka is covered by every worker
test: it is Faust's client. Debian's kcat, librdkafka 2.0.2, cannot connect: see README.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from meterline.client import MeterlineProducer, UsageEvent
from meterline.embedded.tansu import TansuBroker
from meterline.settings import Settings
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams.partitioning import home_partition

pytestmark = pytest.mark.integration

PARTITIONS = 3
T0 = 1_767_225_600_000

KAFKAJS_SCRIPT = r"""
const { Kafka, logLevel } = require("kafkajs");
const [broker, produceTopic, readTopic, readCount] = process.argv.slice(2);
const kafka = new Kafka({
  clientId: "meterline-test",
  brokers: [broker],
  logLevel: logLevel[process.env.KAFKAJS_LOG || "NOTHING"], // KAFKAJS_LOG=INFO to debug
});
(async () => {
  // kafkajs's idempotent producer asks InitProducerId v1, which Tansu answers with an
  // unknown server error (librdkafka's newer version works): report it, go on without.
  let idempotent = "ok";
  try {
    const probe = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await probe.connect();
    await probe.disconnect();
  } catch (e) { idempotent = String(e.message || e); }
  const producer = kafka.producer();
  await producer.connect();
  const sent = await producer.send({
    topic: produceTopic,
    acks: -1,
    messages: Array.from({ length: 6 }, (_, i) => ({ key: `c${i % 3}`, value: `js-${i}` })),
  });
  await producer.disconnect();
  // Tansu completes a group join after half the session timeout: keep it short.
  const consumer = kafka.consumer({
    groupId: `js-${Date.now()}`, sessionTimeout: 6000, heartbeatInterval: 1000,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [produceTopic, readTopic], fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout, got ${got.length}`)), 60000);
    consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        got.push({
          topic, partition, key: message.key.toString(), value: message.value.toString("hex"),
        });
        if (got.length >= 6 + Number(readCount)) { clearTimeout(timer); resolve(); }
      },
    });
  });
  await consumer.disconnect();
  console.log(JSON.stringify({ sent: sent.length, got, idempotent }));
  process.exit(0); // the failed idempotent probe leaves a socket open that would keep node up
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.fixture(scope="module")
def avro_topic(tansu: TansuBroker) -> tuple[str, list[UsageEvent]]:
    """A topic holding five usage events written by the producer client (Avro)."""
    topic = f"clients-avro-{uuid.uuid4().hex[:8]}"
    tansu.create_topics([topic], partitions=PARTITIONS)
    events = [
        UsageEvent(
            event_id=f"a{i}",
            customer_id=f"c{i % 3}",
            meter="api_calls",
            value=Decimal("1.25"),
            timestamp=T0,
        )
        for i in range(5)
    ]
    with MeterlineProducer(tansu.bootstrap, usage_topic=topic, settings=Settings()) as producer:
        producer.send_many(events)
    return topic, events


def _decoded_ids(values: list[bytes]) -> list[str]:
    codec = Codec(registry_from_settings(""))
    return sorted(e["event_id"] for v in values for e in codec.usage_events(v))


def test_kafka_python_produces_and_consumes(
    tansu: TansuBroker, avro_topic: tuple[str, list[UsageEvent]]
) -> None:
    read_topic, events = avro_topic
    topic = f"clients-kp-{uuid.uuid4().hex[:8]}"
    tansu.create_topics([topic], partitions=PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=tansu.bootstrap, acks="all")
    try:
        for i in range(6):
            producer.send(topic, key=f"c{i % 3}".encode(), value=f"kp-{i}".encode()).get(30)
    finally:
        producer.close(10)
    consumer = KafkaConsumer(
        topic,
        read_topic,
        bootstrap_servers=tansu.bootstrap,
        group_id=f"kp-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20_000,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
    )
    got: dict[str, list[tuple[str, int, bytes]]] = {topic: [], read_topic: []}
    try:
        for msg in consumer:
            got[msg.topic].append((msg.key.decode(), msg.partition, msg.value))
            if len(got[topic]) == 6 and len(got[read_topic]) == len(events):
                break
    finally:
        consumer.close()
    assert sorted(v.decode() for _, _, v in got[topic]) == [f"kp-{i}" for i in range(6)]
    # kafka-python's default partitioner is Java's murmur2: the worker's home partition.
    assert all(p == home_partition(k, PARTITIONS) for k, p, _ in got[topic])
    assert _decoded_ids([v for _, _, v in got[read_topic]]) == [e.event_id for e in events]


def _npm_install(into: Path) -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node/npm not installed: the kafkajs client cannot be tried")
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "kafkajs@2.2.4"],
        cwd=into,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0 or not (into / "node_modules" / "kafkajs").is_dir():
        pytest.skip(f"npm could not fetch kafkajs (offline?): {done.stderr.strip()[-300:]}")


def test_kafkajs_produces_and_consumes(
    tansu: TansuBroker, avro_topic: tuple[str, list[UsageEvent]], tmp_path: Path
) -> None:
    read_topic, events = avro_topic
    _npm_install(tmp_path)
    topic = f"clients-js-{uuid.uuid4().hex[:8]}"
    tansu.create_topics([topic], partitions=PARTITIONS)
    script = tmp_path / "roundtrip.js"
    script.write_text(KAFKAJS_SCRIPT)
    done = subprocess.run(
        ["node", str(script), tansu.bootstrap, topic, read_topic, str(len(events))],
        cwd=tmp_path,
        env={**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Not asserted either way (a Tansu fix would make it work); README states the outcome.
    print(f"kafkajs idempotent producer on Tansu: {result['idempotent']}")
    assert result["sent"] >= 1
    mine = [m for m in result["got"] if m["topic"] == topic]
    assert sorted(bytes.fromhex(m["value"]).decode() for m in mine) == [f"js-{i}" for i in range(6)]
    # kafkajs's default partitioner is Java-compatible murmur2 too.
    assert all(m["partition"] == home_partition(m["key"], PARTITIONS) for m in mine)
    theirs = [bytes.fromhex(m["value"]) for m in result["got"] if m["topic"] == read_topic]
    assert _decoded_ids(theirs) == [e.event_id for e in events]
