"""meterline.api mounted on a Faust app with a stand-in runtime (the ApiRuntime protocol, no
broker, no ClickHouse): every route is there, and the endpoints that answer from the worker's
memory or from the request alone answer as the worker's do."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer

from meterline.api import register_api
from streams.runtime.introspection import disable_faust_index, faust_index_enabled

ROUTES = {
    ("GET", "/health"),
    ("GET", "/debug/consumer"),
    ("GET", "/metrics"),
    ("POST", "/sql"),
    ("GET", "/usage/{customer}"),
    ("GET", "/tokens/{customer}"),
    ("GET", "/customers"),
    ("GET", "/balance/{customer}"),
    ("GET", "/ledger/{customer}"),
    ("GET", "/payments/{customer}"),
    ("GET", "/alerts/{customer}"),
    ("GET", "/invoices/{customer}"),
    ("GET", "/invoices/{customer}/preview"),
    ("GET", "/"),
}


@dataclass
class Stats:
    events_in: int = 12
    counted: int = 10
    duplicates: int = 2
    replayed: int = 0
    late: int = 1
    forwarded: int = 0
    rejected: int = 0
    rows_written: int = 7
    last_flush_ms: int = 1_500
    process_seconds: float = 0.5
    checkpoint_seconds: float = 0.25
    publishes: int = 4
    publish_seconds: float = 0.75


@dataclass
class Counter:
    count: int = 3
    size: int = 42


@dataclass
class Invoice:
    customer: str

    def to_dict(self) -> dict[str, Any]:
        return {"customer_id": self.customer, "amount_due": "1.5"}


@dataclass
class Account:
    customer: str

    def preview_invoice(self) -> Invoice | None:
        return Invoice(self.customer) if self.customer == "acme" else None


@dataclass
class OpenAccount:
    account: Account


@dataclass
class Usage:
    stats: Stats = field(default_factory=Stats)
    dlq: Counter = field(default_factory=Counter)
    index: Counter = field(default_factory=Counter)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    lock_since: float = 0.0
    accounts: dict[str, OpenAccount] = field(default_factory=dict)


@dataclass
class Settings:
    clickhouse_dsn: str = "http://127.0.0.1:1/unused"  # never reached by these endpoints


@dataclass
class Runtime:
    app: faust.App
    settings: Settings = field(default_factory=Settings)
    usage: Usage = field(default_factory=Usage)

    def consumer_state(self) -> dict[str, Any]:
        return {"active": []}

    def free_web_root(self) -> None:
        disable_faust_index(self.app)

    def state_store_bytes(self) -> int:
        return 0


def runtime(name: str) -> Runtime:
    app = faust.App(name, broker="kafka://127.0.0.1:1", web_bind="127.0.0.1", web_port=1)
    usage = Usage(accounts={c: OpenAccount(Account(c)) for c in ("acme", "globex")})
    rt = Runtime(app, usage=usage)
    register_api(rt)
    return rt


def web_app(app: faust.App) -> Any:
    web: Any = app.web  # the aiohttp driver, whose aiohttp application serves the routes
    return web.web_app


def routes(app: faust.App) -> set[tuple[str, str]]:
    return {
        (r.method, r.resource.canonical)
        for r in web_app(app).router.routes()
        if r.method != "HEAD" and r.resource is not None
    }


def test_every_route_is_mounted_and_faust_index_dropped() -> None:
    app = runtime("api-routes").app
    assert routes(app) >= ROUTES
    assert not faust_index_enabled(app)


def test_two_apps_keep_their_own_views() -> None:
    # Faust writes view_path and the context onto the class: each app needs its own.
    first, second = runtime("api-a"), runtime("api-b")
    views = {id(v) for rt in (first, second) for v in rt.app.web.views.values()}
    assert len(views) == 2 * len(first.app.web.views)


def call(rt: Runtime, fn: Callable[[TestClient], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        async with TestClient(TestServer(web_app(rt.app))) as client:
            return await fn(client)

    return asyncio.run(run())


def test_memory_and_request_only_endpoints() -> None:
    rt = runtime("api-calls")

    async def scenario(client: TestClient) -> None:
        metrics = await (await client.get("/metrics")).text()
        assert "meterline_usage_counted_total 10.0" in metrics
        assert "meterline_dlq_sent_total 3.0" in metrics
        assert "meterline_dedup_ids 42.0" in metrics
        assert "meterline_last_flush_timestamp_seconds 1.5" in metrics

        preview = await client.get("/invoices/acme/preview")
        assert preview.status == 200
        assert await preview.json() == {"customer_id": "acme", "amount_due": "1.5"}
        for customer in ("globex", "nobody"):  # no open period / no account
            missing = await client.get(f"/invoices/{customer}/preview")
            assert missing.status == 404
            assert (await missing.json())["error"] == f"no open billing period for {customer!r}"

        page = await client.get("/")
        assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
        assert "<svg" in await page.text()

    call(rt, scenario)


@pytest.mark.parametrize(
    ("path", "params", "error"),
    [
        ("/usage/acme", {"window": "week"}, "window: 'week' is not one of"),
        ("/usage/acme", {"meters": "x"}, "unknown parameter(s) meters; allowed: format"),
        ("/tokens/acme", {"dim.model": "x"}, "token_usage has no dimensions"),
        ("/customers", {"limit": "many"}, "limit: 'many' is not an integer"),
        ("/balance/acme", {"x": "1"}, "unknown parameter(s) x; allowed: none"),
        ("/ledger/acme", {"seq": "1"}, "unknown parameter(s) seq;"),
        ("/invoices/acme", {"format": "xml"}, "format: 'xml' is not json or tsv"),
    ],
)
def test_bad_parameters_are_400_before_any_query(path: str, params: dict, error: str) -> None:
    rt = runtime("api-400")

    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        response = await client.get(path, params=params)
        return response.status, await response.json()

    status, body = call(rt, scenario)
    assert status == 400
    assert body["error"].startswith(error)
