"""Operations endpoints: ``/health``, ``/debug/consumer``, ``/metrics`` and ``POST /sql``."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import faust
from faust.web import Request, Response
from prometheus_client import generate_latest

from meterline.api.context import ApiContext, ApiView
from meterline.api.params import parse_format, request_query
from meterline.api.responses import table_response

__all__ = ["ConsumerDebug", "Health", "Metrics", "Sql", "register"]


def _tps(value: Any) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in (value or ()))


class Health(ApiView):
    """Readiness and pipeline counters."""

    async def get(self, request: Request) -> Response:
        # Any: table recovery and the consumer thread live on Faust's concrete classes only.
        app: Any = self.ctx.runtime.app
        usage = self.ctx.runtime.usage
        assigned = app.consumer.assignment() if app.consumer else set()
        ready = (
            bool(assigned)
            and not getattr(app, "rebalancing", False)
            and app.tables.recovery.completed.is_set()
            and not app.tables.recovery.in_recovery
        )
        return self.json(
            {
                "status": "ok",
                "ready": ready,
                "assigned": _tps(assigned),
                "usage": asdict(usage.stats),
                "dlq_sent": usage.dlq.count,
                "dedup_ids": usage.index.size,
            }
        )


class ConsumerDebug(ApiView):
    """Where consumption stands, for diagnosing a worker that stopped consuming."""

    async def get(self, request: Request) -> Response:
        runtime = self.ctx.runtime
        usage = runtime.usage
        # Faust's and aiokafka's internals are read by the runtime, which owns them.
        info = dict(runtime.consumer_state())
        info["lock_held_s"] = time.monotonic() - usage.lock_since if usage.lock_since else 0.0
        return self.json(info)


class Metrics(ApiView):
    """Prometheus text."""

    async def get(self, request: Request) -> Response:
        body = generate_latest(self.ctx.registry)
        return self.bytes(body, content_type="text/plain; version=0.0.4")


class Sql(ApiView):
    """The request body is run as SQL; ``format=json|tsv``."""

    async def post(self, request: Request) -> Response:
        sql = (await request.text()).strip()
        fmt = parse_format(request_query(request))
        try:
            result = await self.ctx.store.analyst_sql(sql)
        except Exception as exc:  # the analyst's SQL error is the answer, not a crash
            return self.json({"error": str(exc)}, status=400)
        return table_response(self, result, fmt, {})


def register(app: faust.App, ctx: ApiContext) -> None:
    app.page("/health")(Health.bound(ctx))
    app.page("/debug/consumer")(ConsumerDebug.bound(ctx))
    app.page("/metrics")(Metrics.bound(ctx))
    app.page("/sql")(Sql.bound(ctx))
