"""A Faust app with the API mounted on a stand-in runtime (no broker, no ClickHouse), and
a way to call it in process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from aiohttp.test_utils import TestClient, TestServer

from meterline.api import register_api
from streams.runtime.introspection import disable_faust_index


@dataclass
class Stats:
    events_in: int = 1
    counted: int = 1
    duplicates: int = 0
    replayed: int = 0
    late: int = 0
    forwarded: int = 0
    rejected: int = 0
    rows_written: int = 1
    last_flush_ms: int = 0
    process_seconds: float = 0.0
    checkpoint_seconds: float = 0.0
    publishes: int = 0
    publish_seconds: float = 0.0


@dataclass
class Counter:
    count: int = 0
    size: int = 0


@dataclass
class Usage:
    stats: Stats = field(default_factory=Stats)
    dlq: Counter = field(default_factory=Counter)
    index: Counter = field(default_factory=Counter)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    lock_since: float = 0.0
    accounts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Settings:
    clickhouse_dsn: str = "http://127.0.0.1:1/unused"  # never reached by these tests
    web_host: str = "127.0.0.1"
    api_keys: str = ""
    api_keys_file: Path | None = None
    api_metrics_require_key: bool = False
    sql_allow_writes: bool = False


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


_apps = 0


def runtime(settings: Settings | None = None) -> Runtime:
    global _apps
    _apps += 1
    app = faust.App(
        f"api-standin-{_apps}", broker="kafka://127.0.0.1:1", web_bind="127.0.0.1", web_port=1
    )
    rt = Runtime(app, settings or Settings())
    register_api(rt)
    return rt


def web_app(app: faust.App) -> Any:
    web: Any = app.web
    return web.web_app


def call(rt: Runtime, fn: Callable[[TestClient], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        async with TestClient(TestServer(web_app(rt.app))) as client:
            return await fn(client)

    return asyncio.run(run())
