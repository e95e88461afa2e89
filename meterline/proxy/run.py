"""Building the proxy from settings and running it until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from meterline.proxy.callers import CallerPolicy, is_loopback
from meterline.proxy.publisher import Publisher
from meterline.proxy.server import Proxy
from meterline.settings import Settings

log = logging.getLogger(__name__)


class RefusedToListen(RuntimeError):
    """Beyond loopback without keys: anyone could spend any customer's credits."""


def check_bind(settings: Settings) -> None:
    if not is_loopback(settings.proxy_host) and not settings.proxy_keys:
        raise RefusedToListen(
            f"refusing to listen on {settings.proxy_host}: beyond loopback the proxy needs "
            "METERLINE_PROXY_KEYS (Meterline key → customer)"
        )


def build_proxy(settings: Settings) -> Proxy:
    check_bind(settings)
    spool_dir = settings.proxy_spool_dir or settings.data_dir / "proxy"
    policy = CallerPolicy(
        keys=dict(settings.proxy_keys),
        trust_customer_header=settings.proxy_trust_customer_header,
        provider_keys={
            "openai": settings.proxy_openai_api_key.get_secret_value(),
            "anthropic": settings.proxy_anthropic_api_key.get_secret_value(),
        },
    )
    worker = settings.proxy_worker_url or f"http://{settings.web_host}:{settings.web_port}"
    return Proxy(
        policy,
        {"openai": settings.proxy_openai_url, "anthropic": settings.proxy_anthropic_url},
        Publisher(
            settings.broker,
            settings.schema_registry_url,
            spool_dir,
            fsync=settings.proxy_spool_fsync,
            message_timeout_ms=int(settings.proxy_delivery_timeout_seconds * 1000),
        ),
        gate_customers=list(settings.proxy_spend_gate),
        api_url=worker,
        balance_ttl_seconds=settings.proxy_balance_ttl_seconds,
        worker_api_key=settings.proxy_worker_api_key.get_secret_value(),
    )


async def serve(settings: Settings, ready: Callable[[str], None] | None = None) -> None:
    proxy = build_proxy(settings)
    app = proxy.app()
    # The HTTP ingestion and gateway-feed routes (meterline/ingest/) are served beside the
    # pass-through, with their own acknowledged publisher and their own keys.
    from meterline.ingest import register_ingest

    try:
        register_ingest(app, settings=settings, host=settings.proxy_host)
    except ValueError as exc:  # beyond loopback without ingest keys
        raise RefusedToListen(str(exc)) from None
    # access_log off: a log line per request costs more than the proxy's own work.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.proxy_host, settings.proxy_port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        url = f"http://{settings.proxy_host}:{settings.proxy_port}"
        if ready is not None:
            ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()


def run_proxy(settings: Settings, ready: Callable[[str], None] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        import uvloop  # a faster loop: the proxy's added latency is mostly loop overhead
    except ImportError:  # pragma: no cover
        asyncio.run(serve(settings, ready))
    else:
        uvloop.run(serve(settings, ready))
