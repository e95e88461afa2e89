"""HTTP ingestion on the embedded stack (Tansu + worker + chDB), all on loopback: CloudEvents
single and batch, a duplicate, a batch with a bad record (400, none of it counted), Stripe v1
and v2 meter events and one feed per AI gateway reach usage_windows / token_events /
token_usage; a token event for a model with no price goes to the DLQ (the worker's check)."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Consumer

import meterline
from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.embedded.tansu import TansuBroker, free_port
from meterline.ingest import register_ingest
from meterline.ingest.server import BackgroundServer
from meterline.settings import Settings
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics
from streams.admin import ensure_topics
from tests.unit.ingest import payloads as p

pytestmark = pytest.mark.integration

CATALOG = (Path(meterline.__file__).parent / "data" / "catalog.json").resolve()
KEY = {"Authorization": "Bearer test-key"}
CE_ONE = {**KEY, "Content-Type": "application/cloudevents+json"}
CE_BATCH = {**KEY, "Content-Type": "application/cloudevents-batch+json"}


def ce(event_id: str, customer: str, meter: str, value: str, ms: int, **dims: str) -> dict:
    return {"specversion": "1.0", "id": event_id, "source": "it", "type": meter,
            "subject": customer, "time": ms, "data": {"value": value, **dims}}  # fmt: skip


def wait_rows(worker: WorkerProcess, sql: str, want: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    got: Any = None
    while time.monotonic() < deadline:
        got = worker.sql(sql)["rows"]
        if got == want:
            return got
        time.sleep(0.5)
    pytest.fail(f"{sql}\n  got  {got}\n  want {want}")


def post(client: httpx.Client, path: str, status: int, **kwargs: Any) -> dict:
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    return r.json()


def test_http_ingestion_end_to_end(tmp_path: Path) -> None:
    now = time.time_ns() // 1_000_000
    t0 = now - 120_000
    with EmbeddedStack(tmp_path / "stack", partitions=2) as stack:
        worker = stack.start_worker(METERLINE_CATALOG_FILE=str(CATALOG))
        settings = Settings(
            broker=stack.broker.bootstrap, partitions=2, ingest_keys={"test-key": "*"}
        )
        with (
            BackgroundServer(settings, free_port()) as server,
            httpx.Client(base_url=server.url, timeout=60) as http,
        ):
            # CloudEvents: one event, then a batch over two customers.
            single = ce("s1", "acme", "api_calls", "1", t0)
            post(http, "/v1/events", 202, json=single, headers=CE_ONE)
            batch = [ce(f"b{i}", "acme", "api_calls", "1", t0 + i) for i in range(6)] + [
                ce(f"g{i}", "globex", "image_generations", "2", t0 + i, model=m)
                for i, m in enumerate(["sd", "sd", "flux", "flux"])
            ]
            body = post(http, "/v1/events", 202, json=batch, headers=CE_BATCH)
            assert body == {"accepted": 10, "messages": 2, "topic": "meterline.usage"}
            # The same event again: accepted, counted once.
            post(http, "/v1/events", 202, json=single, headers=CE_ONE)
            # A batch with one bad record: 400, and its good record is not published either.
            bad = [ce("x1", "acme", "api_calls", "1", t0), ce("x2", "acme", "api_calls", "x", t0)]
            problem = post(http, "/v1/events", 400, json=bad, headers=CE_BATCH)
            assert problem["errors"][0]["index"] == 1
            assert http.post("/v1/events", json=single).status_code == 401  # no key

            # Stripe v1 (form) and v2 (event stream), an undeclared meter: sum of values.
            form = {**p.STRIPE_V1_FORM, "timestamp": str(t0 // 1000)}
            post(http, "/v1/billing/meter_events", 200, data=form, headers=KEY)
            v2 = [
                {**copy.deepcopy(p.STRIPE_V2_EVENT), "timestamp": None},
                {"event_name": "ai_search_api", "identifier": "v2-b",
                 "payload": {"stripe_customer_id": "cus_NciAYcXfLnqBoz", "value": "5"}},
            ]  # fmt: skip
            post(http, "/v2/billing/meter_event_stream", 200, json={"events": v2}, headers=KEY)

            # Gateway feeds, one each (models priced by the catalog), and an unpriced model.
            openrouter = copy.deepcopy(p.OPENROUTER_RESPONSE)
            openrouter.update(model="openai/gpt-4o", created=t0 // 1000)
            openrouter["usage"]["prompt_tokens_details"] = {"cached_tokens": 94}
            headers = {**KEY, "X-Meterline-Customer": "acme"}
            post(http, "/v1/feeds/openrouter", 202, json=openrouter, headers=headers)
            helicone = {**p.HELICONE_ENHANCED, "user_id": "acme", "model": "gpt-4o"}
            post(http, "/v1/feeds/helicone", 202, json=helicone, headers=KEY)
            logs = [
                {**p.CLOUDFLARE_LOG, "model": "gpt-4o", "created_at": t0,
                 "metadata": {"customer_id": "acme"}},
                {**p.CLOUDFLARE_LOG, "id": "cf-unpriced", "created_at": t0,
                 "metadata": {"customer_id": "acme"}},  # gpt-4o-mini: not in the catalog
                {**p.CLOUDFLARE_LOG, "id": "cf-cache-hit", "cached": True},
            ]  # fmt: skip
            body = post(http, "/v1/feeds/cloudflare", 202, json={"result": logs}, headers=KEY)
            assert (body["accepted"], body["skipped"][0]["id"]) == (2, "cf-cache-hit")
            vercel = [
                p.vercel_event(t, v, f"vc-{t}") for t, v in (("input", "300"), ("output", "40"))
            ]
            for event in vercel:
                event["timestamp"] = None
                event["payload"]["model"] = "anthropic/claude-sonnet"
            post(http, "/v1/feeds/vercel", 202, json={"events": vercel}, headers=KEY)

        wait_rows(
            worker,
            "SELECT customer_id, meter, toString(sum(value)), toUInt64(sum(events)) "
            "FROM usage_windows WHERE window = 'day' GROUP BY customer_id, meter "
            "ORDER BY customer_id, meter",
            [
                ["acme", "api_calls", "7", 7],
                ["cus_12345678", "ai_search_api", "25", 1],
                ["cus_NciAYcXfLnqBoz", "ai_search_api", "30", 2],
                ["globex", "image_generations", "8", 4],
            ],
        )
        wait_rows(
            worker,
            "SELECT event_id, customer_id, model, provider, input_tokens, output_tokens, "
            "cached_input_tokens FROM token_events FINAL ORDER BY event_id",
            [
                ["01JGWX9Y2Z3A4B5C6D7E8F9G0H", "acme", "gpt-4o", "openai", 120, 30, 0],
                ["550e8400-e29b-41d4-a716-446655440000", "acme", "gpt-4o", "openai", 10, 15, 0],
                ["gen-1767225600-AbCdEf", "acme", "gpt-4o", "openai", 194, 2, 94],
                ["vc-input", "cus_abc123", "claude-sonnet", "anthropic", 300, 0, 0],
                ["vc-output", "cus_abc123", "claude-sonnet", "anthropic", 0, 40, 0],
            ],
        )
        wait_rows(
            worker,
            "SELECT model, toUInt64(sum(input_tokens)), toUInt64(sum(output_tokens)) "
            "FROM token_usage WHERE window = 'day' GROUP BY model ORDER BY model",
            [["claude-sonnet", 300, 40], ["gpt-4o", 324, 47]],
        )
        dlq = wait_rows(
            worker,
            "SELECT count() FROM dlq WHERE topic = 'meterline.tokens' "
            "AND position(reason, 'gpt-4o-mini') > 0",
            [[1]],
        )
        assert dlq == [[1]]


def test_503_when_no_broker_acknowledges(tmp_path: Path) -> None:
    # A real librdkafka producer pointed at a loopback port where nothing listens.
    settings = Settings(broker=f"127.0.0.1:{free_port()}", ingest_ack_timeout_seconds=2)
    with (
        BackgroundServer(settings, free_port()) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        started = time.monotonic()
        r = http.post(
            "/v1/events", json=ce("z1", "acme", "api_calls", "1", time.time_ns() // 10**6)
        )
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert "1 of 1 records not acknowledged" in r.json()["detail"]
        assert time.monotonic() - started < 10


def test_register_ingest_owns_a_publisher_when_given_none(tmp_path: Path) -> None:
    # How `meterline proxy` may mount the routes: no publisher passed, the app's own
    # KafkaPublisher lives as long as the app; the record is read back from the topic.
    with TansuBroker(tmp_path / "logs") as broker:
        ensure_topics(broker.bootstrap, 1, names=[topics.USAGE])
        app = web.Application()
        register_ingest(app, settings=Settings(broker=broker.bootstrap), host="127.0.0.1")

        async def scenario() -> int:
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                event = ce("own-1", "acme", "api_calls", "1", time.time_ns() // 1_000_000)
                r = await client.post("/v1/events", json=event, headers=CE_ONE)
                return r.status

        assert asyncio.run(scenario()) == 202
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "it-own",
                             "auto.offset.reset": "earliest"})  # fmt: skip
        try:
            consumer.subscribe([topics.USAGE])
            deadline, message = time.monotonic() + 30, None
            while message is None and time.monotonic() < deadline:
                message = consumer.poll(1.0)
            assert message is not None and message.error() is None
            codec = Codec(registry_from_settings(""))
            assert [e["event_id"] for e in codec.usage_events(message.value())] == ["it:own-1"]
        finally:
            consumer.close()
