"""Operations endpoints: ``/health``, ``/debug/consumer``, ``/metrics`` and ``POST /sql``."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import faust
from clickhouse_connect.driver.exceptions import ClickHouseError
from faust.exceptions import ConsumerNotStarted
from faust.web import Request, Response
from faust.web.exceptions import ValidationError
from prometheus_client import generate_latest

from meterline.api.context import ApiContext, ApiView
from meterline.api.params import check_params, parse_format, request_query
from meterline.api.responses import table_response
from sinks.readonly_sql import ForbiddenSql, SqlError

__all__ = ["ConsumerDebug", "Health", "Metrics", "Sql", "register"]


def _tps(value: Any) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in (value or ()))


class Health(ApiView):
    """Readiness and pipeline counters."""

    async def get(self, request: Request) -> Response:
        # Any: table recovery and the consumer thread live on Faust's concrete classes only.
        app: Any = self.ctx.runtime.app
        usage = self.ctx.runtime.usage
        try:
            assigned = app.consumer.assignment() if app.consumer else set()
        except ConsumerNotStarted:  # the web server comes up first: up, not ready
            assigned = set()
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
                "state_store_bytes": self.ctx.runtime.state_store_bytes(),
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
    """The request body is run as one read-only statement; ``format=json|tsv``.

    Refused statements (writes, functions reaching files, URLs or servers) are 403, SQL
    errors and hit limits 400, each ``{"error", "reason"}`` with ``reason`` one of
    ``read_only``, ``sql``, ``limit`` (and ClickHouse's error name when there is one).
    ``mode=write`` runs it on a writable connection instead, only where the API allows it
    (the embedded test stack; see ApiAuth.sql_writes)."""

    async def post(self, request: Request) -> Response:
        query = request_query(request)
        check_params(query, ("format", "mode"))
        fmt = parse_format(query)
        mode = query.get("mode", "read")
        if mode not in ("read", "write"):
            raise ValidationError(f"mode: {mode!r} is not read or write")
        body = await request.read()
        try:
            sql = body.decode("utf-8").strip()
        except UnicodeDecodeError:
            return self.json({"error": "the body is not UTF-8 text", "reason": "sql"}, status=400)
        if mode == "write":
            return await self._write(sql, fmt)
        try:
            result = await self.ctx.store.analyst_sql(sql)
        except SqlError as exc:  # the analyst's SQL error is the answer, not a crash
            error: dict[str, Any] = {"error": str(exc), "reason": exc.kind}
            if exc.name:
                error["clickhouse_error"] = exc.name
            return self.json(error, status=403 if isinstance(exc, ForbiddenSql) else 400)
        except ClickHouseError as exc:  # the store itself failed: not the statement's fault
            return self.json({"error": f"ClickHouse unavailable: {exc}"}, status=503)
        return table_response(self, result, fmt, {})

    async def _write(self, sql: str, fmt: str) -> Response:
        if not self.ctx.auth.sql_writes:
            error = "mode=write is off: /sql is read-only (METERLINE_SQL_ALLOW_WRITES)"
            return self.json({"error": error, "reason": "read_only"}, status=403)
        try:
            result = await self.ctx.store.writable_sql(sql)
        except Exception as exc:  # the statement's error is the answer, not a crash
            return self.json({"error": str(exc), "reason": "sql"}, status=400)
        return table_response(self, result, fmt, {})


def register(app: faust.App, ctx: ApiContext) -> None:
    app.page("/health")(Health.bound(ctx))
    app.page("/debug/consumer")(ConsumerDebug.bound(ctx))
    app.page("/metrics")(Metrics.bound(ctx))
    app.page("/sql")(Sql.bound(ctx))
