"""The producer client and `meterline produce` against the embedded broker: single events and
envelopes are acknowledged, read back and decoded as the worker decodes them; `meterline
produce` reports acknowledged counts when the broker is up and fails fast, naming the count,
when it is stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from meterline.client import MeterlineProducer, TokenEvent, UsageEvent
from meterline.embedded.tansu import TansuBroker
from meterline.settings import Settings
from schemas.codec import Codec
from schemas.names import TOKEN_EVENT_BATCH, USAGE_EVENT, USAGE_EVENT_BATCH
from schemas.registry_choice import registry_from_settings
from streams.partitioning import home_partition

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000


def _read(bootstrap: str, topic: str, messages: int) -> list[tuple[str, int, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    # assign(), not subscribe(): no group join, which Tansu completes only after half the
    # session timeout.
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out: list[tuple[str, int, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < messages and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append((msg.key().decode(), msg.partition(), msg.value()))
    finally:
        consumer.close()
    return out


def _topics(tansu: TansuBroker) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    usage, tokens = f"client-usage-{suffix}", f"client-tokens-{suffix}"
    tansu.create_topics([usage, tokens], partitions=4)
    return usage, tokens


def test_single_events_and_envelopes_are_acknowledged_and_read_back(tansu: TansuBroker) -> None:
    usage_topic, token_topic = _topics(tansu)
    codec = Codec(registry_from_settings(""))
    usage = [
        UsageEvent(
            event_id=f"u{i}",
            customer_id=f"cust-{i % 3}",
            meter="api_calls",
            value=Decimal("0.000000000001") * (i + 1),
            timestamp=T0 + i,
        )
        for i in range(30)
    ]
    token = [
        TokenEvent(
            event_id=f"t{i}",
            customer_id=f"cust-{i % 2}",
            model="gpt-4o",
            provider="openai",
            input_tokens=1000 + i,
            output_tokens=10,
            cached_input_tokens=100,
            cache_write_tokens=i,
            reasoning_tokens=2,
            timestamp=T0,
        )
        for i in range(5)
    ]
    common = {"usage_topic": usage_topic, "token_topic": token_topic, "settings": Settings()}
    with MeterlineProducer(tansu.bootstrap, **common) as single:  # type: ignore[arg-type]
        single.send_many(usage[:10])
    # Leaving the block flushed (raising on any undelivered record) and closed.
    assert single.last_report is not None and single.last_report.acknowledged == 10
    with MeterlineProducer(tansu.bootstrap, batch_size=4, **common) as batched:  # type: ignore[arg-type]
        batched.send_many([*usage[10:], *token])
        report = batched.flush()
    assert report.ok and report.acknowledged == 25
    # usage[10:]: 20 events over 3 customers, envelopes of up to 4 -> 7,7,6 -> 2+2+2 each
    # plus the partial ones; tokens: 3 and 2 -> 1+1 envelopes.
    assert report.messages < report.sent

    seen: dict[str, Decimal] = {}
    singles = envelopes = 0
    for key, partition, value in _read(tansu.bootstrap, usage_topic, 10 + 6):
        name, record = codec.decode(value)
        events = [record] if name == USAGE_EVENT else record["events"]
        singles += name == USAGE_EVENT
        envelopes += name == USAGE_EVENT_BATCH
        for event in events:
            assert event["customer_id"] == key  # keyed by customer
            assert partition == home_partition(key, 4)  # murmur2: the worker's home partition
            seen[event["event_id"]] = event["value"]
    assert singles == 10 and envelopes == 6
    assert seen == {e.event_id: e.value for e in usage}
    tokens_read = _read(tansu.bootstrap, token_topic, 2)
    decoded = [codec.decode(v) for _, _, v in tokens_read]
    assert {name for name, _ in decoded} == {TOKEN_EVENT_BATCH}
    got = sorted(
        (e["event_id"], e["cached_input_tokens"], e["cache_write_tokens"], e["reasoning_tokens"])
        for _, r in decoded
        for e in r["events"]
    )
    assert got == [(f"t{i}", 100, i, 2) for i in range(5)]


def _produce(broker: str, path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "meterline", "produce", *args, str(path)],
        env={**os.environ, "METERLINE_BROKER": broker, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, time.monotonic() - started


def test_meterline_produce_reports_acknowledged_counts_then_fails_fast(
    tansu: TansuBroker, tmp_path: Path
) -> None:
    # `produce` encodes usage events (and batches them) only for the usage topic's own name;
    # this test is the only one on the session broker to write there.
    usage_topic = "meterline.usage"
    tansu.create_topics([usage_topic], partitions=4)
    run = uuid.uuid4().hex[:8]
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "event_id": f"{run}-{i}",
                    "customer_id": f"c{i % 4}",
                    "meter": "calls",
                    "value": "1.5",
                    "timestamp": T0,
                }
            )
            + "\n"
            for i in range(250)
        )
    )
    done, _ = _produce(tansu.bootstrap, path, usage_topic)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"published 250 records to {usage_topic} (acknowledged" in done.stdout
    done, _ = _produce(tansu.bootstrap, path, usage_topic, "--batch", "100")
    assert done.returncode == 0, done.stdout + done.stderr
    # 4 customers of 62-63 events: one envelope of up to 100 each.
    assert f"published 250 records to {usage_topic} in 4 messages" in done.stdout
    codec = Codec(registry_from_settings(""))
    names = [codec.decode(v)[0] for _, _, v in _read(tansu.bootstrap, usage_topic, 254)]
    assert sorted(names) == [USAGE_EVENT] * 250 + [USAGE_EVENT_BATCH] * 4

    stopped = TansuBroker(tmp_path / "stopped")
    with stopped:
        address = stopped.bootstrap
    done, elapsed = _produce(address, path, "meterline.usage")
    assert done.returncode == 1
    assert elapsed < 15
    assert "nothing was published: 250 records NOT acknowledged" in done.stdout
