"""HTTP API served by the worker (Faust's web server, bound to 127.0.0.1 by default).

The worker owns the embedded ClickHouse (chDB allows one process per data directory), so
analytics go through here: ``meterline sql`` posts to ``/sql`` while a worker runs."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from sinks.query import query_rows, to_json, to_tsv

if TYPE_CHECKING:
    from streams.app import Runtime

USAGE_SQL = """
SELECT customer_id, meter, dimensions, window, window_start, value, events
FROM usage_windows
WHERE customer_id = {customer:String} AND window = {window:String}
  AND window_start >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')
  AND window_start < fromUnixTimestamp64Milli({end:Int64}, 'UTC')
  AND ({meter:String} = '' OR meter = {meter:String})
ORDER BY meter, window_start
"""


class _PipelineCollector:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Any:
        stats = self.runtime.usage.stats
        for name in (
            "events_in",
            "counted",
            "duplicates",
            "replayed",
            "late",
            "forwarded",
            "rejected",
            "rows_written",
        ):
            c = CounterMetricFamily(f"meterline_usage_{name}", f"usage pipeline: {name}")
            c.add_metric([], getattr(stats, name))
            yield c
        g = GaugeMetricFamily("meterline_dedup_ids", "event ids remembered for dedup")
        g.add_metric([], self.runtime.usage.index.size)
        yield g


def register_api(runtime: Runtime) -> None:
    app = runtime.app
    registry = CollectorRegistry()
    registry.register(_PipelineCollector(runtime))  # type: ignore[arg-type]

    async def run_sql(sql: str, params: dict | None = None) -> tuple[list[str], list[tuple]]:
        return await asyncio.to_thread(query_rows, runtime.clickhouse, sql, params)

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
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
                    "assigned": sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
                    "usage": asdict(runtime.usage.stats),
                    "dlq_sent": runtime.usage.dlq.count,
                }
            )

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(registry), content_type="text/plain; version=0.0.4")

    @app.page("/sql")
    class Sql(View):
        async def post(self, request: Request) -> Response:
            sql = (await request.text()).strip()
            fmt = request.query.get("format", "json")
            try:
                columns, rows = await run_sql(sql)
            except Exception as exc:  # the analyst's SQL error is the answer, not a crash
                return self.json({"error": str(exc)}, status=400)
            if fmt == "tsv":
                return self.text(to_tsv(columns, rows))
            return self.bytes(to_json(columns, rows).encode(), content_type="application/json")

    @app.page("/usage/{customer}")
    class Usage(View):
        async def get(self, request: Request, customer: str) -> Response:
            q = request.query
            params = {
                "customer": customer,
                "window": q.get("window", "hour"),
                "start": int(q.get("from", 0)),
                "end": int(q.get("to", 2**62)),
                "meter": q.get("meter", ""),
            }
            columns, rows = await run_sql(USAGE_SQL, params)
            return self.bytes(to_json(columns, rows).encode(), content_type="application/json")
