"""`meterline ingest`: the ingestion routes alone, on 127.0.0.1 unless told otherwise, and
the same app run on a background thread (tests, the benchmark)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import uvloop
from aiohttp import web

from meterline.ingest.publisher import KafkaPublisher, Publisher
from meterline.ingest.routes import register_ingest
from meterline.settings import Settings


def build_app(settings: Settings, publisher: Publisher, host: str) -> web.Application:
    # The routes bound their own body reads (METERLINE_INGEST_MAX_BODY_BYTES); aiohttp's
    # own limit is set above it so that theirs is the one that answers, with a clear 413.
    app = web.Application(client_max_size=settings.ingest_max_body_bytes + 1024)
    register_ingest(app, publisher, settings=settings, host=host)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/health", health)
    return app


def run_ingest(settings: Settings, host: str, port: int, announce: Any = print) -> None:
    """Serves until interrupted; raises BrokerUnreachable (no broker) or ValueError (keys
    missing beyond loopback) before listening."""
    publisher = KafkaPublisher.from_settings(settings)
    try:
        app = build_app(settings, publisher, host)
        publisher.check_reachable()
        announce(f"ingest  http://{host}:{port}  (broker {settings.broker})")
        # uvloop, as the worker runs: less loop overhead per request.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        web.run_app(app, host=host, port=port, print=None, access_log=None)
    finally:
        publisher.close()


class BackgroundServer:
    """The ingest app on its own event loop thread, bound to 127.0.0.1:``port``."""

    def __init__(self, settings: Settings, port: int, publisher: Publisher | None = None) -> None:
        self.settings = settings
        self.port = port
        self.own_publisher = publisher is None
        self.publisher: Publisher = publisher or KafkaPublisher.from_settings(settings)
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        app = build_app(self.settings, self.publisher, "127.0.0.1")
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(30)
            self._runner = None
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        if self.own_publisher and isinstance(self.publisher, KafkaPublisher):
            self.publisher.close()

    def __enter__(self) -> BackgroundServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
