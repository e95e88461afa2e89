"""HTTP API served by the worker (Faust's web server, bound to 127.0.0.1 by default).

The worker owns the embedded ClickHouse (chDB allows one process per data directory), so
analytics go through here: ``meterline sql`` posts to ``/sql`` while a worker runs, and the
dashboard at ``/`` reads the JSON endpoints below.

Endpoints (all JSON unless noted; errors are ``{"error": "..."}`` with 400 for bad parameters,
401 for a missing or unknown key, 403 for a key outside its scope, 404 for a missing billing
table or record, 500 for a failed query). Who may call what: meterline/api/auth.py; the
OpenAPI 3.1 description of all of it: ``openapi.json`` beside this file, served at
``/openapi.json``. Listings answer
``{"columns": [...], "rows": [[...]], "truncated": bool, ...}`` (``format=tsv`` for TSV);
times are ``from``/``to`` as epoch ms or ISO-8601 (naive = in ``tz``), half-open [from, to).

* ``GET /openapi.json`` — the OpenAPI 3.1 description of all of this (openapi).
* ``GET /health`` — readiness and pipeline counters (views_ops).
* ``GET /metrics`` — Prometheus text (views_ops, metrics).
* ``POST /sql[?format=json|tsv]`` — the body is run as one read-only statement within the
  limits profile (views_ops, sinks/readonly_sql.py); admin keys only.
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

from typing import Any

from meterline.api import dashboard, openapi, views_billing, views_ops, views_usage
from meterline.api.auth import ApiAuth, ApiKeysRequired, load_auth
from meterline.api.context import ApiContext
from meterline.api.errors import install_json_errors
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
from sinks.readonly_sql import ReadOnlySql, SqlLimits

__all__ = [
    "WINDOWS",
    "ApiAuth",
    "ApiKeysRequired",
    "ApiRuntime",
    "WindowQuery",
    "api_dsn",
    "parse_dimensions",
    "parse_instant",
    "parse_limit",
    "parse_tz",
    "parse_window_query",
    "read_only_sql",
    "register_api",
]


def api_dsn(settings: Any) -> str:
    """The ClickHouse the API reads through: ``api_clickhouse_dsn`` (docker-compose gives it a
    read-only user) or the worker's own. getattr: a stand-in settings object in tests has
    only ``clickhouse_dsn``."""
    return str(getattr(settings, "api_clickhouse_dsn", "") or settings.clickhouse_dsn)


def read_only_sql(settings: Any) -> ReadOnlySql:
    """``POST /sql``'s connection and limits from the ``sql_*`` settings."""
    defaults = SqlLimits()
    limits = SqlLimits(
        **{
            name: int(getattr(settings, f"sql_{name}", getattr(defaults, name)))
            for name in SqlLimits.__dataclass_fields__
        }
    )
    return ReadOnlySql(api_dsn(settings), limits)


def register_api(runtime: ApiRuntime, auth: ApiAuth | None = None) -> None:
    """Mounts every endpoint on ``runtime.app``'s web server; call before the app starts.

    ``auth`` defaults to the keys of ``runtime.settings``; raises ApiKeysRequired when there
    are none and the web server would listen beyond loopback."""
    settings = runtime.settings
    ctx = ApiContext(
        runtime=runtime,
        store=AnalyticsStore(api_dsn(settings), read_only_sql(settings)),
        registry=pipeline_registry(runtime.usage),
        auth=auth if auth is not None else load_auth(settings),
    )
    for register in (
        openapi.register,
        views_ops.register,
        views_usage.register,
        views_billing.register,
        dashboard.register,
    ):
        register(runtime.app, ctx)
    # Any: the aiohttp application lives on Faust's concrete web driver only.
    web: Any = runtime.app.web
    install_json_errors(web.web_app)
