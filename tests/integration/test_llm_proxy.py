"""`meterline proxy` end to end: the official openai and anthropic SDKs (sync and streaming)
through the proxy to a local fake upstream replaying the providers' response shapes, on the
embedded stack. The TokenEvents reach ClickHouse with the right counts; bytes and bodies pass
through unchanged; a client gone mid-stream is billed; a broker that is down spools the usage,
which is published once when it is back; the spend gate refuses a customer at balance 0 with
402 and lets it through after a credit purchase. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from meterline.embedded.relay import Relay
from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from meterline.proxy.fake_upstream import USAGE, FakeUpstream
from streams import topics
from streams.producer import make_producer, send
from tests.integration.llm_proxy_support import (
    ProxyProcess,
    published_token_ids,
    wait_balance,
)

pytestmark = pytest.mark.integration

KEYS = {"ml_a": "px-a", "ml_b": "px-b", "ml_g": "px-gated"}
# What each (api, scenario) of the fake upstream must be billed as: input (all),
# output (all), cached reads, cache writes, reasoning.
EXPECTED = {
    ("chat", "plain"): (1117, 46, 0, 0, 0),
    ("chat", "cached"): (2006, 300, 1920, 0, 192),
    ("responses", "plain"): (36, 87, 0, 0, 0),
    ("responses", "cached"): (2006, 900, 1920, 0, 640),
    ("messages", "plain"): (25, 15, 0, 0, 0),
    ("messages", "cached"): (50 + 2051 + 1800, 503, 1800, 2051, 0),
}
assert set(EXPECTED) == {(a, s) for a in USAGE for s in USAGE[a]}


class Env:
    def __init__(
        self,
        stack: EmbeddedStack,
        worker: WorkerProcess,
        upstream: FakeUpstream,
        proxy: ProxyProcess,
        spooling: ProxyProcess,
        relay: Relay,
    ) -> None:
        self.stack, self.worker, self.upstream = stack, worker, upstream
        self.proxy, self.spooling, self.relay = proxy, spooling, relay
        self.sent: list[tuple[str, str, str]] = []  # (customer, model, api:scenario)


def proxy_env(
    stack: EmbeddedStack, upstream: FakeUpstream, worker: WorkerProcess, spool: Path, broker: str
) -> dict[str, str]:
    return {
        **stack.env(),
        "METERLINE_BROKER": broker,
        "METERLINE_PROXY_KEYS": json.dumps(KEYS),
        "METERLINE_PROXY_OPENAI_URL": upstream.url,
        "METERLINE_PROXY_ANTHROPIC_URL": upstream.url,
        "METERLINE_PROXY_OPENAI_API_KEY": "sk-upstream-openai",
        "METERLINE_PROXY_ANTHROPIC_API_KEY": "sk-upstream-anthropic",
        "METERLINE_PROXY_SPEND_GATE": json.dumps(["px-gated"]),
        "METERLINE_PROXY_BALANCE_TTL_SECONDS": "1",
        "METERLINE_PROXY_WORKER_URL": worker.url,
        "METERLINE_PROXY_SPOOL_DIR": str(spool),
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("llm-proxy")
    started: list[Any] = []
    try:
        stack = EmbeddedStack(tmp / "stack", partitions=2).start()
        started.append(stack)
        worker = stack.start_worker(METERLINE_CATALOG_FILE=str(DEFAULT_CATALOG_PATH))
        upstream = FakeUpstream().start()
        started.append(upstream)
        proxy = ProxyProcess(
            proxy_env(stack, upstream, worker, tmp / "spool-a", stack.broker.bootstrap),
            tmp / "logs" / "proxy-a.log",
        )
        started.append(proxy)
        proxy.start()
        relay = Relay((stack.broker.host, stack.broker.port))
        started.append(relay)
        spooling = ProxyProcess(
            proxy_env(stack, upstream, worker, tmp / "spool-b", relay.address),
            tmp / "logs" / "proxy-b.log",
        )
        started.append(spooling)
        spooling.start()
        yield Env(stack, worker, upstream, proxy, spooling, relay)
    finally:
        for thing in reversed(started):
            thing.stop()


def oai(url: str, key: str = "ml_a") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def ant(url: str, key: str = "ml_a") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)


def scenario(name: str) -> dict[str, str]:
    return {"x-fake-scenario": name}


MSG = [{"role": "user", "content": "Hello"}]


def test_sdk_traffic_is_billed_with_the_right_counts(env: Env) -> None:
    url = env.proxy.url
    o, a = oai(url), ant(url)
    sent = env.sent

    r = o.chat.completions.create(model="gpt-4o", messages=MSG)
    assert r.id.startswith("chatcmpl-") and r.choices[0].message.content == "Hello! How can I help?"
    sent.append(("px-a", "gpt-4o", "chat:plain"))

    # Streamed without asking for usage: the proxy asks for it and hides the usage chunk.
    chunks = list(
        o.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, extra_headers=scenario("cached")
        )
    )
    assert all(c.usage is None for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"
    sent.append(("px-a", "gpt-4o", "chat:cached"))

    # Asked for by the client: the usage chunk reaches it.
    chunks = list(
        o.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 1117
    sent.append(("px-a", "gpt-4o", "chat:plain"))

    resp = o.responses.create(model="gpt-4o", input="Hello", extra_headers=scenario("cached"))
    assert resp.id.startswith("resp_") and resp.usage is not None
    sent.append(("px-a", "gpt-4o", "responses:cached"))

    with o.responses.stream(model="gpt-4o", input="Hello") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == "Hello! How can I help?" and final.usage is not None
    sent.append(("px-a", "gpt-4o", "responses:plain"))

    m = a.messages.create(
        model="claude-sonnet", max_tokens=64, messages=MSG, extra_headers=scenario("cached")
    )
    assert m.id.startswith("msg_") and m.usage.cache_creation_input_tokens == 2051
    sent.append(("px-a", "claude-sonnet", "messages:cached"))

    with a.messages.stream(model="claude-sonnet", max_tokens=64, messages=MSG) as ms:
        assert "".join(ms.text_stream) == "Hello! How can I help?"
        assert ms.get_final_message().usage.output_tokens == 15
    sent.append(("px-a", "claude-sonnet", "messages:plain"))

    # Upstream keys are the configured ones; the Meterline key never leaves the proxy.
    for rec in env.upstream.received:
        assert "ml_a" not in json.dumps(rec.headers)
        assert rec.headers.get("Authorization") == "Bearer sk-upstream-openai" or (
            rec.headers.get("x-api-key") == "sk-upstream-anthropic"
        )


def _ids(raw: bytes) -> bytes:
    return re.sub(rb"(msg|resp|chatcmpl)_?-?fake\d+", rb"ID", raw)


def test_bytes_and_bodies_pass_through_unchanged(env: Env) -> None:
    body = {"model": "claude-sonnet", "max_tokens": 64, "stream": True, "messages": MSG}
    headers = {"x-api-key": "ml_a", "anthropic-version": "2023-06-01"}
    via = httpx.post(f"{env.proxy.url}/v1/messages", json=body, headers=headers, timeout=30)
    direct = httpx.post(f"{env.upstream.url}/v1/messages", json=body, headers=headers, timeout=30)
    assert via.status_code == direct.status_code == 200
    assert _ids(via.content) == _ids(direct.content)
    env.sent.append(("px-a", "claude-sonnet", "messages:plain"))

    # Tools and an inline image go upstream byte for byte.
    image = base64.b64encode(bytes(range(256)) * 64).decode()
    raw = json.dumps(
        {
            "model": "gpt-4o",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image? \u00e9"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{image}"},
                        },
                    ],
                }
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "temperature": 0.70,
        },
        ensure_ascii=False,
    ).encode()
    r = httpx.post(
        f"{env.proxy.url}/v1/chat/completions",
        content=raw,
        headers={"Authorization": "Bearer ml_a", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert env.upstream.received[-1].body == raw
    env.sent.append(("px-a", "gpt-4o", "chat:plain"))


def test_client_gone_mid_stream_is_billed(env: Env) -> None:
    before = env.upstream.completed_streams
    body = {"model": "gpt-4o", "stream": True, "messages": MSG}
    headers = {"Authorization": "Bearer ml_a", **scenario("cached"), "x-fake-delay-ms": "300"}
    with httpx.stream(
        "POST", f"{env.proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as r:
        assert r.status_code == 200
        next(r.iter_raw())  # the first event, then hang up
    env.sent.append(("px-a", "gpt-4o", "chat:cached"))
    deadline = time.monotonic() + 20
    while env.upstream.completed_streams == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert env.upstream.completed_streams == before + 1  # the proxy read it to the end


def test_broker_down_spools_then_publishes_once(env: Env) -> None:
    r = oai(env.spooling.url, "ml_b").chat.completions.create(
        model="gpt-4o", messages=MSG, extra_headers=scenario("cached")
    )
    env.sent.append(("px-b", "gpt-4o", "chat:cached"))
    h = env.spooling.health()
    assert h is not None and h["spooled"] == 1 and h["delivered"] == 0
    time.sleep(3)  # nothing answers: it stays spooled (and republish rounds change nothing)
    assert env.spooling.health()["spooled"] == 1  # type: ignore[index]
    env.relay.start()
    h = env.spooling.wait_health(lambda h: h["spooled"] == 0, timeout=90)
    assert h["delivered"] >= 1
    # Published to Kafka exactly once.
    assert published_token_ids(env.stack.broker.bootstrap, {"px-b"})[r.id] == 1


def test_spend_gate_refuses_at_zero_and_passes_after_a_purchase(env: Env) -> None:
    now = int(time.time() * 1000)
    d = datetime.fromtimestamp(now / 1000, tz=UTC)
    anchor = int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)
    producer = make_producer(env.stack.broker.bootstrap)
    customer = "px-gated"

    def command(cmd: dict[str, Any]) -> None:
        send(producer, topics.ACCOUNTS, customer, json.dumps(cmd).encode())
        assert producer.flush(30) == 0

    # On the Lora plan, its recurring credits voided: balance 0, no auto top-up.
    command(
        {
            "type": "upsert",
            "customer_id": customer,
            "at": now,
            "plan_id": "lora-pro",
            "billing_anchor": anchor,
            "tz": "UTC",
        }
    )
    command(
        {
            "type": "void",
            "customer_id": customer,
            "at": now + 1,
            "grant_id": f"plan:{customer}:{anchor}:0",
        }
    )
    wait_balance(env.worker, customer, lambda b: b == "0")
    time.sleep(1.5)  # past the gate's TTL

    with pytest.raises(openai.APIStatusError) as e:
        oai(env.proxy.url, "ml_g").chat.completions.create(model="gpt-4o", messages=MSG)
    assert e.value.status_code == 402
    assert e.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as ea:
        ant(env.proxy.url, "ml_g").messages.create(
            model="claude-sonnet", max_tokens=8, messages=MSG
        )
    assert ea.value.status_code == 402
    assert ea.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    # An ungated customer is not affected.
    oai(env.proxy.url, "ml_b").chat.completions.create(model="gpt-4o", messages=MSG)
    env.sent.append(("px-b", "gpt-4o", "chat:plain"))

    # Paid credits arrive: the gate opens once the balance is read again.
    command(
        {
            "type": "grant",
            "customer_id": customer,
            "at": now + 2,
            "grant_id": "bought-1",
            "amount": "10.00",
            "category": "paid",
        }
    )
    wait_balance(env.worker, customer, lambda b: b != "0")
    time.sleep(1.5)
    r = oai(env.proxy.url, "ml_g").chat.completions.create(model="gpt-4o", messages=MSG)
    assert r.id.startswith("chatcmpl-")
    env.sent.append(("px-gated", "gpt-4o", "chat:plain"))


def test_token_events_reach_clickhouse(env: Env) -> None:
    want: dict[tuple[str, str], list[int]] = {}
    for customer, model, kind in env.sent:
        api, scen = kind.split(":")
        acc = want.setdefault((customer, model), [0, 0, 0, 0, 0, 0])
        for i, v in enumerate(EXPECTED[(api, scen)]):
            acc[i] += v
        acc[5] += 1
    assert len(env.sent) >= 11, "run the whole module: the earlier tests send the traffic"
    q = (
        "SELECT customer_id, model, sum(input_tokens), sum(output_tokens), "
        "sum(cached_input_tokens), sum(cache_write_tokens), sum(reasoning_tokens), count() "
        "FROM token_events FINAL WHERE customer_id LIKE 'px-%' GROUP BY customer_id, model "
        "ORDER BY customer_id, model"
    )
    deadline = time.monotonic() + 90
    got: dict[tuple[str, str], list[int]] = {}
    while time.monotonic() < deadline:
        rows = env.worker.sql(q)["rows"]
        got = {(r[0], r[1]): [int(x) for x in r[2:]] for r in rows}
        if sum(v[5] for v in got.values()) >= len(env.sent):
            break
        time.sleep(0.5)
    assert got == want
    # And the analyst surface: token_usage by day, input in the all-input meaning.
    usage = env.worker.sql(
        "SELECT customer_id, model, sum(input_tokens), sum(output_tokens), "
        "sum(cached_input_tokens) FROM token_usage WHERE window = 'day' AND customer_id "
        "LIKE 'px-%' GROUP BY customer_id, model ORDER BY customer_id, model"
    )["rows"]
    assert {(r[0], r[1]): [int(x) for x in r[2:]] for r in usage} == {
        k: v[:3] for k, v in want.items()
    }
