"""Issue 3 acceptance: 50,000 mixed usage and token events over three simulated days for 20
customers, 5% duplicates, 3% late beyond grace, a price change and a meter added mid-run, a
worker SIGKILL and restart; minute, hour, day and month figures in ClickHouse equal a plain
reference exactly."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics
from streams.producer import TOKEN_EVENT, USAGE_EVENT, make_producer, send
from tests.integration.worker_logs import assert_no_offset_gaps

pytestmark = pytest.mark.integration


DAY = 86_400_000
MINUTE = 60_000
N = 50_000
CUSTOMERS = [f"lora-{i:02d}" for i in range(20)]
MODELS = ["gpt-4o", "claude-sonnet", "llama-70b"]

# Meter definitions as they stand at the end of the run (catalog file + the one added).
METERS: dict[str, dict[str, Any]] = {
    m["code"]: m for m in json.loads(DEFAULT_CATALOG_PATH.read_text())["meters"]
}
NEW_METER = {
    "code": "gpu_seconds",
    "aggregation": "sum",
    "value_field": "value",
    "group_by": ["region"],
}
METERS["gpu_seconds"] = NEW_METER
BASE_PRICES = {p["model"]: p for p in json.loads(DEFAULT_CATALOG_PATH.read_text())["model_prices"]}
MARKUP = Decimal("0.2")


def build_stream(start: int) -> tuple[list[tuple[str, dict]], list[dict], dict]:
    """(published sequence of (kind, record), unique events, price change)."""
    r = random.Random(2026)
    span = 3 * DAY
    unique: list[tuple[str, dict]] = []
    for i in range(N):
        ts = start + i * span // N + r.randint(-20_000, 20_000)
        if r.random() < 0.03:
            ts -= r.randint(30, 240) * MINUTE  # far behind the stream: late past grace
        customer = r.choice(CUSTOMERS)
        if i % 10 < 3:
            unique.append(
                (
                    "tokens",
                    {
                        "event_id": f"t-{i}",
                        "customer_id": customer,
                        "model": r.choice(MODELS),
                        "provider": "p",
                        # Includes the cached tokens (at most 500), as TokenEvent says.
                        "input_tokens": r.randint(0, 5000) + 500,
                        "output_tokens": r.randint(0, 2000),
                        "cached_input_tokens": r.randint(0, 500),
                        "timestamp": ts,
                        "dimensions": {},
                    },
                )
            )
            continue
        meter = r.choice([*METERS])
        dims = {
            "region": r.choice(["eu", "us"]),
            "model": r.choice(["sdxl", "flux"]),
            "user_id": f"u{r.randint(0, 40)}",
        }
        unique.append(
            (
                "usage",
                {
                    "event_id": f"u-{i}",
                    "customer_id": customer,
                    "meter": meter,
                    "value": Decimal(r.randint(0, 100_000)) / 1000,
                    "timestamp": ts,
                    "dimensions": dims,
                },
            )
        )
    published = list(unique)
    for _ in range(int(N * 0.05)):
        k = r.randrange(len(unique))
        # A repeat arrives a little after the original, as a client retry would.
        published.insert(min(len(published), k + r.randint(1, 500)), unique[k])
    price_change = {
        "type": "model_price",
        "model": "gpt-4o",
        "provider": "openai",
        "input_per_million": "3.125",
        "output_per_million": "12.5",
        "cached_input_per_million": "1.5",
        "effective_from": start + DAY + DAY // 2,
    }
    return published, [e for _, e in unique], price_change


def publish(bootstrap: str, published: list[tuple[str, dict]], price_change: dict) -> None:
    codec = Codec(registry_from_settings(""))
    java_like = make_producer(bootstrap)
    crc32 = make_producer(bootstrap, partitioner="consistent")
    half = len(published) // 2
    for i, (kind, record) in enumerate(published):
        if i == half:
            java_like.flush(30)
            for change in (dict(NEW_METER, type="meter"), price_change):
                body = dict(change, change_id=f"c-{i}-{change['type']}", at=int(time.time() * 1000))
                send(java_like, topics.CATALOG, None, json.dumps(body).encode())
        topic, schema = (
            (topics.USAGE, USAGE_EVENT) if kind == "usage" else (topics.TOKENS, TOKEN_EVENT)
        )
        producer = crc32 if i % 7 == 3 else java_like
        send(producer, topic, record["customer_id"], codec.encode(schema, record))
        if i % 5000 == 0:
            java_like.poll(0)
            time.sleep(0.05)
    java_like.flush(60)
    crc32.flush(60)


def buckets(ts: int) -> dict[str, int]:
    d = datetime.fromtimestamp(ts / 1000, tz=UTC)
    month = int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)
    return {
        "minute": ts // MINUTE * MINUTE,
        "hour": ts // 3_600_000 * 3_600_000,
        "day": ts // DAY * DAY,
        "month": month,
    }


def usage_reference(events: list[dict]) -> dict[tuple, tuple[Decimal, int]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for e in events:
        if e.get("meter") is None:
            continue
        meter = METERS[e["meter"]]
        dims = tuple(sorted((k, v) for k, v in e["dimensions"].items() if k in meter["group_by"]))
        for window, start in buckets(e["timestamp"]).items():
            groups[(e["customer_id"], e["meter"], dims, window, start)].append(e)
    out = {}
    for key, evs in groups.items():
        m = METERS[key[1]]
        agg, field = m["aggregation"], m["value_field"]
        values = [e["value"] if field == "value" else e["dimensions"].get(field) for e in evs]
        if agg == "count":
            v = Decimal(len(evs))
        elif agg == "unique_count":
            v = Decimal(len({x for x in values if x is not None}))
        elif agg == "min":
            v = min(values)
        elif agg == "max":
            v = max(values)
        elif agg == "latest":
            v = max(evs, key=lambda e: (e["timestamp"], e["event_id"]))["value"]
        else:
            v = sum(values, Decimal(0))
        out[key] = (v, len(evs))
    return out


def token_reference(events: list[dict], price_change: dict) -> dict[tuple, tuple]:
    def price(model: str, ts: int) -> dict:
        if model == "gpt-4o" and ts >= price_change["effective_from"]:
            return price_change
        return BASE_PRICES[model]

    acc: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, Decimal(0), Decimal(0)])
    for e in events:
        if "model" not in e:
            continue
        p = price(e["model"], e["timestamp"])
        cost = (
            (e["input_tokens"] - e["cached_input_tokens"]) * Decimal(p["input_per_million"])
            + e["output_tokens"] * Decimal(p["output_per_million"])
            + e["cached_input_tokens"] * Decimal(p["cached_input_per_million"])
        ) / Decimal(1_000_000)
        for window, start in buckets(e["timestamp"]).items():
            a = acc[(e["customer_id"], e["model"], window, start)]
            a[0] += e["input_tokens"]
            a[1] += e["output_tokens"]
            a[2] += e["cached_input_tokens"]
            a[3] += cost
            a[4] += cost * (1 + MARKUP)
    return {k: tuple(v) for k, v in acc.items()}


def read_usage(worker: WorkerProcess) -> dict[tuple, tuple[Decimal, int]]:
    rows = worker.sql(
        "SELECT customer_id, meter, dimensions, window, toUnixTimestamp64Milli(window_start), "
        "toString(value), events FROM usage_windows"
    )["rows"]
    return {
        (c, m, tuple(sorted(d.items())), w, int(s)): (Decimal(v), int(n))
        for c, m, d, w, s, v, n in rows
    }


def read_tokens(worker: WorkerProcess) -> dict[tuple, tuple]:
    rows = worker.sql(
        "SELECT customer_id, model, window, toUnixTimestamp64Milli(window_start), input_tokens, "
        "output_tokens, cached_input_tokens, toString(cost), toString(billed) FROM token_usage"
    )["rows"]
    return {
        (c, m, w, int(s)): (int(i), int(o), int(ci), Decimal(cost), Decimal(billed))
        for c, m, w, s, i, o, ci, cost, billed in rows
    }


def test_mixed_stream_with_crash_matches_reference_at_every_window_size(tmp_path: Path) -> None:
    start = (int(time.time() * 1000) // DAY - 4) * DAY
    published, unique, price_change = build_stream(start)
    expected_usage = usage_reference(unique)
    expected_tokens = token_reference(unique, price_change)
    with EmbeddedStack(tmp_path / "stack", partitions=4) as stack:
        env = {"METERLINE_CATALOG_FILE": str(DEFAULT_CATALOG_PATH)}
        worker = stack.start_worker(**env)
        publisher = threading.Thread(
            target=publish, args=(stack.broker.bootstrap, published, price_change)
        )
        publisher.start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if (worker.health() or {}).get("usage", {}).get("counted", 0) >= N * 0.4:
                break
            time.sleep(0.05)
        worker.kill()
        publisher.join()
        worker = stack.start_replacement(**env)

        deadline = time.monotonic() + 420
        got_usage: dict = {}
        got_tokens: dict = {}
        while time.monotonic() < deadline:
            got_usage, got_tokens = read_usage(worker), read_tokens(worker)
            if got_usage == expected_usage and got_tokens == expected_tokens:
                break
            time.sleep(2)
        stored = worker.sql(
            "SELECT (SELECT count() FROM usage_events FINAL), "
            "(SELECT count() FROM token_events FINAL)"
        )["rows"][0]
        print("raw events stored (usage, tokens):", stored, "health:", worker.health())
        missing = {k: v for k, v in expected_usage.items() if got_usage.get(k) != v}
        assert not missing, (
            f"{len(missing)} usage windows differ, e.g. "
            f"{[(k, v, got_usage.get(k)) for k, v in list(missing.items())[:3]]}"
        )
        assert got_usage.keys() == expected_usage.keys()
        assert got_tokens == expected_tokens
        for window in ("minute", "hour", "day", "month"):
            assert any(k[3] == window for k in got_usage)

        # The late events were handled as corrections of closed windows, and published.
        late_parts = worker.sql(
            "SELECT count() FROM usage_minute FINAL WHERE startsWith(part, 'late:')"
        )["rows"][0][0]
        assert int(late_parts) > 0
        dead = worker.sql("SELECT count() FROM dlq FINAL")["rows"][0][0]
        assert int(dead) == 0
        assert_no_offset_gaps(tmp_path / "stack")
