"""HTTP API served by the worker (Faust's web server, bound to 127.0.0.1 by default).

The worker owns the embedded ClickHouse (chDB allows one process per data directory), so
analytics go through here: ``meterline sql`` posts to ``/sql`` while a worker runs, and the
dashboard at ``/`` reads the JSON endpoints below.

Endpoints (all JSON unless noted; errors are ``{"error": "..."}`` with 400 for bad parameters,
404 for a missing billing table or record, 500 for a failed query). Listings answer
``{"columns": [...], "rows": [[...]], "truncated": bool, ...}`` (``format=tsv`` for TSV);
times are ``from``/``to`` as epoch ms or ISO-8601 (naive = in ``tz``), half-open [from, to).

* ``GET /health`` — readiness and pipeline counters (views_ops).
* ``GET /metrics`` — Prometheus text (views_ops, metrics).
* ``POST /sql[?format=json|tsv]`` — the body is run as SQL (views_ops).
* ``GET /usage/{customer}`` — ``usage_windows_tz``: window, meter (repeatable), from, to, tz,
  ``dim.<key>=<value>`` (repeatable), limit, format (views_usage).
* ``GET /tokens/{customer}`` — ``token_usage_tz``: window, model (repeatable), from, to, tz,
  limit, format (views_usage).
* ``GET /customers`` — customers seen in usage_events / token_events with totals: prefix, limit
  (views_usage).
* ``GET /balance/{customer}`` — the ``balances`` row as an object (views_billing).
* ``GET /ledger/{customer}`` (kind, grant_id), ``GET /payments/{customer}`` (status,
  processor), ``GET /alerts/{customer}`` (kind) — newest first; from, to, tz, limit, format.
* ``GET /invoices/{customer}`` — invoice lines plus ``invoices`` (one summary each):
  invoice_id, from, to (on period_start), tz, limit, format.
* ``GET /invoices/{customer}/preview`` — the open period's invoice as if it closed now.
* ``GET /`` — the dashboard (``meterline/web/dashboard.html``, HTML).

Every value from a request reaches ClickHouse as a bound ``{name:Type}`` parameter: the SQL is
built in ``sinks/queries/``, which concatenates only fixed fragments and code-chosen names.
Nothing here imports ``streams`` at run time; what the API needs of the worker is the
``ApiRuntime`` protocol (ports).
"""

from __future__ import annotations

from meterline.api import dashboard, views_billing, views_ops, views_usage
from meterline.api.context import ApiContext
from meterline.api.metrics import pipeline_registry
from meterline.api.params import (
    WINDOWS,
    WindowQuery,
    parse_dimensions,
    parse_instant,
    parse_limit,
    parse_tz,
    parse_window_query,
)
from meterline.api.ports import ApiRuntime
from meterline.api.store import AnalyticsStore

__all__ = [
    "WINDOWS",
    "ApiRuntime",
    "WindowQuery",
    "parse_dimensions",
    "parse_instant",
    "parse_limit",
    "parse_tz",
    "parse_window_query",
    "register_api",
]


def register_api(runtime: ApiRuntime) -> None:
    """Mounts every endpoint on ``runtime.app``'s web server; call before the app starts."""
    ctx = ApiContext(
        runtime=runtime,
        store=AnalyticsStore(runtime.settings.clickhouse_dsn),
        registry=pipeline_registry(runtime.usage),
    )
    for register in (
        views_ops.register,
        views_usage.register,
        views_billing.register,
        dashboard.register,
    ):
        register(runtime.app, ctx)
