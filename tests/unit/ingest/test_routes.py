"""The ingest routes on an aiohttp test server with a stand-in publisher (no broker): what
is published (decoded back with the project codec), the answers' shapes and every 4xx/503."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from meterline.ingest import IngestConfig, NotAcknowledged, register_ingest
from meterline.ingest.auth import Keys
from meterline.metering.windows import EventTimeLimits
from meterline.settings import Settings
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics
from tests.unit.ingest import payloads as p

CODEC = Codec(registry_from_settings(""))
CE_BATCH = {"Content-Type": "application/cloudevents-batch+json"}
CE_ONE = {"Content-Type": "application/cloudevents+json"}
ADMIN = {"Authorization": "Bearer admin-key"}


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[str, bytes]]]] = []
        self.fail = False

    async def publish(self, topic: str, messages: Sequence[tuple[str, bytes]], timeout: float):
        if self.fail:
            raise NotAcknowledged(len(messages), len(messages), "no acknowledgement within 1 s")
        self.sent.append((topic, list(messages)))

    def events(self, topic: str) -> list[dict[str, Any]]:
        decode = CODEC.usage_events if topic == topics.USAGE else CODEC.token_events
        out = []
        for t, messages in self.sent:
            for key, value in messages if t == topic else ():
                evs = decode(value)
                assert {e["customer_id"] for e in evs} == {key}  # keyed by customer
                out.extend(evs)
        return out


def ce(i: int, customer: str = "acme", **extra: Any) -> dict[str, Any]:
    now = time.time_ns() // 1_000_000
    return {"specversion": "1.0", "id": f"e{i}", "source": "app", "type": "api_calls",
            "subject": customer, "time": now, "data": {"value": "1"}, **extra}  # fmt: skip


def run(
    scenario: Callable[[TestClient, FakePublisher], Awaitable[Any]],
    keys: dict[str, str] | None = None,
    secret: str = "",
    max_body: int = 1 << 20,
) -> Any:
    publisher = FakePublisher()
    config = IngestConfig(
        Keys({"admin-key": "*", "acme-key": "acme"} if keys is None else keys),
        EventTimeLimits(),
        ack_timeout=1.0,
        max_body_bytes=max_body,
        helicone_secret=secret,
    )
    app = web.Application()
    register_ingest(app, publisher, settings=Settings(), config=config, codec=CODEC)

    async def go() -> Any:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client, publisher)

    return asyncio.run(go())


def test_cloudevents_single_and_batch_are_published_per_customer() -> None:
    async def scenario(client: TestClient, pub: FakePublisher) -> None:
        r = await client.post("/v1/events", data=json.dumps(ce(1)), headers={**CE_ONE, **ADMIN})
        assert r.status == 202
        assert await r.json() == {"accepted": 1, "messages": 1, "topic": topics.USAGE}
        batch = [ce(i, customer=f"c{i % 3}") for i in range(2, 12)]
        r = await client.post("/v1/events", data=json.dumps(batch), headers={**CE_BATCH, **ADMIN})
        assert (await r.json())["messages"] == 3  # one envelope per customer
        events = pub.events(topics.USAGE)
        assert len(events) == 11 and events[0]["event_id"] == "app:e1"

    run(scenario)


def test_a_bad_record_rejects_the_batch_naming_each_record() -> None:
    async def scenario(client: TestClient, pub: FakePublisher) -> None:
        batch = [ce(1), ce(2, subject=""), ce(3, data={"value": "1.0000000000001"}), ce(4)]
        batch[3]["time"] = "2020-01-01T00:00:00Z"
        r = await client.post("/v1/events", data=json.dumps(batch), headers={**CE_BATCH, **ADMIN})
        body = await r.json()
        assert r.status == 400 and r.content_type == "application/problem+json"
        assert body["detail"] == "3 of 4 records are invalid; nothing was published"
        reasons = {e["index"]: e["reason"] for e in body["errors"]}
        assert "field 'subject' (the customer)" in reasons[1]
        assert "more than 12 fractional digits" in reasons[2]
        assert "in the past" in reasons[3]
        assert pub.sent == []

    run(scenario)


@pytest.mark.parametrize(
    ("headers", "body", "status", "detail"),
    [
        (CE_ONE, b"{", 400, "invalid JSON"),
        ({"Content-Type": "text/plain"}, b"x", 415, "content type 'text/plain'"),
        (CE_BATCH, json.dumps(ce(1)).encode(), 400, "must be a JSON array"),
        (CE_ONE, json.dumps([ce(1)]).encode(), 400, "must be one CloudEvent object"),
    ],
)
def test_unreadable_bodies(headers: dict, body: bytes, status: int, detail: str) -> None:
    async def scenario(client: TestClient, _pub: FakePublisher) -> tuple[int, dict]:
        r = await client.post("/v1/events", data=body, headers={**headers, **ADMIN})
        return r.status, await r.json()

    got_status, got = run(scenario)
    assert got_status == status and detail in got["detail"]


def test_keys_401_403_and_scoped_keys() -> None:
    async def scenario(client: TestClient, pub: FakePublisher) -> list[int]:
        body = json.dumps([ce(1, "acme"), ce(2, "globex")])
        statuses = []
        for headers in ({}, {"Authorization": "Bearer nope"}, {"X-Api-Key": "acme-key"}):
            r = await client.post("/v1/events", data=body, headers={**CE_BATCH, **headers})
            statuses.append(r.status)
        r = await client.post(
            "/v1/events",
            data=json.dumps(ce(3, "acme")),
            headers={**CE_ONE, "X-Api-Key": "acme-key"},
        )
        statuses.append(r.status)
        assert len(pub.events(topics.USAGE)) == 1
        return statuses

    assert run(scenario) == [401, 401, 403, 202]


def test_503_when_the_broker_does_not_acknowledge() -> None:
    async def scenario(client: TestClient, pub: FakePublisher) -> None:
        pub.fail = True
        r = await client.post("/v1/events", data=json.dumps(ce(1)), headers={**CE_ONE, **ADMIN})
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert "retry the same request" in (await r.json())["detail"]
        events = {"events": [{**p.STRIPE_V2_EVENT, "timestamp": None}]}
        r = await client.post("/v2/billing/meter_event_stream", json=events, headers=ADMIN)
        assert r.status == 503 and (await r.json())["error"]["type"] == "api_error"

    run(scenario)


def test_413_on_a_body_over_the_limit() -> None:
    async def scenario(client: TestClient, _pub: FakePublisher) -> int:
        body = json.dumps([ce(i) for i in range(200)])
        r = await client.post("/v1/events", data=body, headers={**CE_BATCH, **ADMIN})
        return r.status

    assert run(scenario, max_body=4096) == 413


def test_stripe_v1_and_v2_answer_in_stripes_shapes() -> None:
    now_s = time.time_ns() // 1_000_000_000

    async def scenario(client: TestClient, pub: FakePublisher) -> None:
        form = {**p.STRIPE_V1_FORM, "timestamp": str(now_s - 60)}
        r = await client.post("/v1/billing/meter_events", data=form, headers=ADMIN)
        body = await r.json()
        assert r.status == 200, body
        assert body["object"] == "billing.meter_event" and body["identifier"] == "identifier_123"
        assert body["payload"] == {"value": "25", "stripe_customer_id": "cus_NciAYcXfLnqBoz"}
        assert body["timestamp"] == now_s - 60 and body["livemode"] is False

        missing_customer = {"event_name": "x", "payload[value]": "1"}
        r = await client.post("/v1/billing/meter_events", data=missing_customer, headers=ADMIN)
        assert r.status == 400
        assert (await r.json())["error"] == {
            "type": "invalid_request_error",
            "message": "Missing required param: payload[stripe_customer_id].",
            "code": "parameter_missing",
            "param": "payload[stripe_customer_id]",
        }
        r = await client.post("/v1/billing/meter_events", data={**form, "foo": "1"}, headers=ADMIN)
        assert (await r.json())["error"]["code"] == "parameter_unknown"

        event = {**p.STRIPE_V2_EVENT, "timestamp": None}
        bad = {**event, "payload": {"stripe_customer_id": "c", "value": "abc"}}
        r = await client.post("/v2/billing/meter_event_stream", json={"events": [event, bad, bad]},
                              headers=ADMIN)  # fmt: skip
        error = (await r.json())["error"]
        assert r.status == 400 and error["param"] == "events[1].payload[value]"
        assert [e["index"] for e in error["meterline_errors"]] == [1, 2]
        r = await client.post("/v2/billing/meter_event_stream", json={"events": [event] * 101},
                              headers=ADMIN)  # fmt: skip
        assert r.status == 400 and "at most 100" in (await r.json())["error"]["message"]
        r = await client.post("/v2/billing/meter_event_stream", json={"events": [event]},
                              headers={"Authorization": "Bearer nope"})  # fmt: skip
        assert r.status == 401 and "error" in await r.json()
        r = await client.post("/v2/billing/meter_event_stream", json={"events": [event]},
                              headers=ADMIN)  # fmt: skip
        assert r.status == 200 and await r.json() == {}
        ids = [e["event_id"] for e in pub.events(topics.USAGE)]
        assert ids == ["identifier_123", "idmp_12345678"]

    run(scenario)


def test_feeds_publish_token_events_and_name_a_missing_customer() -> None:
    async def scenario(client: TestClient, pub: FakePublisher) -> None:
        record = {**p.OPENROUTER_RESPONSE, "created": time.time_ns() // 1_000_000_000}
        r = await client.post("/v1/feeds/openrouter", json=record, headers=ADMIN)
        body = await r.json()
        assert r.status == 400 and "X-Meterline-Customer" in body["errors"][0]["reason"]
        headers = {**ADMIN, "X-Meterline-Customer": "acme"}
        r = await client.post("/v1/feeds/openrouter", json=[record], headers=headers)
        assert r.status == 202 and (await r.json())["topic"] == topics.TOKENS
        log = {**p.CLOUDFLARE_LOG, "created_at": time.time_ns() // 1_000_000}
        page = {"result": [log, {**log, "id": "hit", "cached": True}], "success": True}
        r = await client.post("/v1/feeds/cloudflare", json=page, headers=ADMIN)
        body = await r.json()
        assert body["accepted"] == 1 and body["skipped"][0]["id"] == "hit"
        vercel = p.vercel_event("cached_write", "42", "v-1")
        vercel["timestamp"] = None
        r = await client.post("/v1/feeds/vercel", json={"events": [vercel]}, headers=ADMIN)
        assert r.status == 202
        events = pub.events(topics.TOKENS)
        assert [e["event_id"] for e in events] == [record["id"], log["id"], "v-1"]
        assert events[2]["cache_write_tokens"] == 42 == events[2]["input_tokens"]

    run(scenario)


def test_helicone_signature_replaces_the_key() -> None:
    secret = "whsec"

    async def scenario(client: TestClient, pub: FakePublisher) -> list[int]:
        body = json.dumps(p.HELICONE_ENHANCED).encode()
        good = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        statuses = []
        for signature in (None, "00" * 32, good):
            headers = {"Content-Type": "application/json"}
            if signature:
                headers["Helicone-Signature"] = signature
            r = await client.post("/v1/feeds/helicone", data=body, headers=headers)
            statuses.append(r.status)
        assert pub.events(topics.TOKENS)[0]["customer_id"] == "user-123"
        return statuses

    assert run(scenario, secret=secret) == [401, 401, 202]


def test_open_routes_only_on_loopback() -> None:
    settings = Settings(ingest_keys={})
    assert IngestConfig.from_settings(settings, "127.0.0.1").keys.required is False
    assert IngestConfig.from_settings(settings, "::1").keys.required is False
    with pytest.raises(ValueError, match="beyond loopback"):
        IngestConfig.from_settings(settings, "0.0.0.0")
    keyed = Settings(ingest_keys={"k": "*"})
    assert IngestConfig.from_settings(keyed, "0.0.0.0").keys.required is True


def test_413_on_too_many_records() -> None:
    async def scenario(client: TestClient, _pub: FakePublisher) -> tuple[int, str]:
        body = json.dumps([{}] * 10_001)
        r = await client.post("/v1/events", data=body, headers={**CE_BATCH, **ADMIN})
        return r.status, (await r.json())["detail"]

    assert run(scenario, max_body=1 << 24) == (413, "10001 records; at most 10000 per request")
