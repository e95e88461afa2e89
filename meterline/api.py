"""HTTP API served by the worker (Faust's web server, bound to 127.0.0.1 by default).

The worker owns the embedded ClickHouse (chDB allows one process per data directory), so
analytics go through here: ``meterline sql`` posts to ``/sql`` while a worker runs, and the
dashboard at ``/`` reads the JSON endpoints below.

Endpoints (all JSON unless noted; errors are ``{"error": "..."}`` with 400 for bad parameters,
404 for a missing billing table or record, 500 for a failed query). Listings answer
``{"columns": [...], "rows": [[...]], "truncated": bool, ...}`` (``format=tsv`` for TSV);
times are ``from``/``to`` as epoch ms or ISO-8601 (naive = in ``tz``), half-open [from, to).

* ``GET /health`` — readiness and pipeline counters.
* ``GET /metrics`` — Prometheus text.
* ``POST /sql[?format=json|tsv]`` — the body is run as SQL.
* ``GET /usage/{customer}`` — ``usage_windows_tz``: window, meter (repeatable), from, to, tz,
  ``dim.<key>=<value>`` (repeatable), limit, format.
* ``GET /tokens/{customer}`` — ``token_usage_tz``: window, model (repeatable), from, to, tz,
  limit, format.
* ``GET /customers`` — customers seen in usage_events / token_events with totals: prefix, limit.
* ``GET /balance/{customer}`` — the ``balances`` row as an object.
* ``GET /ledger/{customer}`` (kind, grant_id), ``GET /payments/{customer}`` (status,
  processor), ``GET /alerts/{customer}`` (kind) — newest first; from, to, tz, limit, format.
* ``GET /invoices/{customer}`` — invoice lines plus ``invoices`` (one summary each):
  invoice_id, from, to (on period_start), tz, limit, format.
* ``GET /`` — the dashboard (``meterline/web/dashboard.html``, HTML).

Every value from a request reaches ClickHouse as a bound ``{name:Type}`` parameter; only
fixed SQL fragments chosen by this module are concatenated.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from clickhouse_connect.driver.exceptions import ClickHouseError
from faust.web import Request, Response, View
from faust.web.exceptions import NotFound, ServerError, ValidationError
from multidict import MultiMapping
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from sinks.client import AnyClient, connect
from sinks.query import query_rows, to_json, to_tsv

if TYPE_CHECKING:
    from streams.app import Runtime

__all__ = [
    "WINDOWS",
    "WindowQuery",
    "parse_dimensions",
    "parse_instant",
    "parse_limit",
    "parse_tz",
    "parse_window_query",
    "register_api",
    "tokens_sql",
    "usage_sql",
]

WINDOWS = ("minute", "hour", "day", "month")
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000
DIM_PREFIX = "dim."
DASHBOARD = Path(__file__).parent / "web" / "dashboard.html"
# Spelled out because an empty result from chDB carries no column names, and a client should
# see the same shape with or without rows. The first seven are the pre-existing /usage shape.
USAGE_COLUMNS = (
    "customer_id",
    "meter",
    "dimensions",
    "window",
    "window_start",
    "value",
    "events",
    "aggregation",
)
TOKENS_COLUMNS = (
    "customer_id",
    "model",
    "window",
    "window_start",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost",
    "markup",
    "billed",
    "events",
)
CUSTOMERS_COLUMNS = (
    "customer_id",
    "events",
    "meters",
    "meter_codes",
    "token_events",
    "models",
    "first_event",
    "last_event",
)

# DateTime64(3) holds 1900-01-01 .. 2299-12-31; outside it ClickHouse wraps silently and
# clickhouse-connect cannot even decode the result, so such bounds are refused up front.
_MIN_MS = -2_208_988_800_000
_MAX_MS = 10_413_791_999_999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS_RE = re.compile(r"-?\d{1,16}")
# Zone names as tzdata spells them; checked on top of the zone list so that nothing odd
# (quotes, '..', absolute paths) ever reaches ZoneInfo or ClickHouse.
_TZ_NAME_RE = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
# Engines whose rows stay duplicated or unsummed until a merge: read them with FINAL.
_FINAL_ENGINES = (
    "ReplacingMergeTree",
    "CollapsingMergeTree",
    "SummingMergeTree",
    "AggregatingMergeTree",
)

T = TypeVar("T")


# --- request parsing (pure; raises faust's ValidationError, which Faust answers with 400) ---


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    # Reads the tz database from disk: once per process is enough.
    return frozenset(zoneinfo.available_timezones())


def parse_tz(text: str | None) -> tuple[str, zoneinfo.ZoneInfo]:
    """The IANA zone name and its ZoneInfo; UTC when absent."""
    name = (text or "UTC").strip()
    if not _TZ_NAME_RE.fullmatch(name) or name not in _known_zones():
        raise ValidationError(f"unknown time zone {name!r}: use an IANA name like Europe/Berlin")
    return name, zoneinfo.ZoneInfo(name)


def parse_instant(text: str, tz: zoneinfo.ZoneInfo, name: str) -> int:
    """Epoch milliseconds from epoch ms digits or ISO-8601; a naive ISO time is read in ``tz``
    (so ``from=2025-03-01`` with ``tz=Europe/Berlin`` is Berlin's midnight)."""
    text = text.strip()
    if _EPOCH_MS_RE.fullmatch(text):
        ms = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                f"{name}: {text!r} is neither epoch milliseconds nor ISO-8601"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        # timedelta arithmetic is exact; .timestamp() goes through a float.
        ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ValidationError(f"{name}: {text!r} is outside 1900-01-01 .. 2299-12-31")
    return ms


def parse_limit(text: str | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if text is None or text.strip() == "":
        return default
    try:
        limit = int(text)
    except ValueError:
        raise ValidationError(f"limit: {text!r} is not an integer") from None
    if not 1 <= limit <= maximum:
        raise ValidationError(f"limit: must be between 1 and {maximum}")
    return limit


def parse_dimensions(query: MultiMapping[str]) -> list[tuple[str, list[str]]]:
    """``dim.<key>=<value>`` filters: keys are ANDed, repeated values of one key ORed."""
    dims: dict[str, list[str]] = {}
    for name, value in query.items():
        if name.startswith(DIM_PREFIX):
            key = name[len(DIM_PREFIX) :]
            if not key:
                raise ValidationError("dim.<key>=<value>: the key is empty")
            dims.setdefault(key, []).append(value)
    return sorted(dims.items())


def _check_params(query: MultiMapping[str], allowed: Iterable[str], dims: bool = False) -> None:
    # A mistyped parameter would otherwise be ignored and answer a different question.
    known = set(allowed)
    unknown = sorted(
        {k for k in query if k not in known and not (dims and k.startswith(DIM_PREFIX))}
    )
    if unknown:
        extra = ", dim.<key>" if dims else ""
        raise ValidationError(
            f"unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(known)) or 'none'}{extra}"
        )


def _repeated(query: MultiMapping[str], name: str) -> list[str]:
    # An empty value means "no filter", as `meterline usage` sends meter= by default.
    return sorted({v for v in query.getall(name, []) if v != ""})


def _format(query: MultiMapping[str]) -> str:
    fmt = query.get("format", "json")
    if fmt not in ("json", "tsv"):
        raise ValidationError(f"format: {fmt!r} is not json or tsv")
    return fmt


@dataclass(frozen=True)
class WindowQuery:
    """The common parameters of /usage and /tokens, validated."""

    window: str
    tz: str
    start_ms: int | None
    end_ms: int | None
    limit: int
    fmt: str

    def meta(self) -> dict[str, Any]:
        return {"window": self.window, "tz": self.tz, "from": self.start_ms, "to": self.end_ms}


def parse_window_query(query: MultiMapping[str]) -> WindowQuery:
    window = query.get("window", "hour")
    if window not in WINDOWS:
        raise ValidationError(f"window: {window!r} is not one of {', '.join(WINDOWS)}")
    tz_name, tz = parse_tz(query.get("tz"))
    start = parse_instant(query["from"], tz, "from") if query.get("from") else None
    end = parse_instant(query["to"], tz, "to") if query.get("to") else None
    if start is not None and end is not None and start >= end:
        raise ValidationError("from must be earlier than to")
    return WindowQuery(window, tz_name, start, end, parse_limit(query.get("limit")), _format(query))


def _time_filters(
    column: str, start_ms: int | None, end_ms: int | None, *, epoch_ms: bool = False
) -> tuple[list[str], dict[str, Any]]:
    """Half-open [from, to) on ``column``; ``epoch_ms`` for an integer column of epoch ms."""
    where: list[str] = []
    params: dict[str, Any] = {}
    for bound, op, value in (("start", ">=", start_ms), ("end", "<", end_ms)):
        if value is None:
            continue
        rhs = (
            f"{{{bound}:Int64}}"
            if epoch_ms
            else f"fromUnixTimestamp64Milli({{{bound}:Int64}}, 'UTC')"
        )
        where.append(f"{column} {op} {rhs}")
        params[bound] = value
    return where, params


def usage_sql(
    customer: str,
    q: WindowQuery,
    meters: Sequence[str] = (),
    dims: Sequence[tuple[str, Sequence[str]]] = (),
) -> tuple[str, dict[str, Any]]:
    """One row per (meter, dimension set, window). Windows whose start lies in [from, to).

    Dimension filters match the dimensions usage_windows reports, i.e. the meter's group-by
    keys: a key the meter does not group by is not in the row and matches only ''."""
    where = ["customer_id = {customer:String}", "window = {window:String}"]
    params: dict[str, Any] = {"customer": customer, "window": q.window, "tz": q.tz}
    time_where, time_params = _time_filters("window_start", q.start_ms, q.end_ms)
    where += time_where
    params.update(time_params)
    if meters:
        where.append("has({meters:Array(String)}, meter)")
        params["meters"] = list(meters)
    for i, (key, values) in enumerate(dims):
        where.append(f"has({{dv{i}:Array(String)}}, dimensions[{{dk{i}:String}}])")
        params[f"dk{i}"] = key
        params[f"dv{i}"] = list(values)
    # One row more than asked tells the caller that the answer was cut.
    params["limit"] = q.limit + 1
    sql = f"""
SELECT {", ".join(USAGE_COLUMNS)}
FROM usage_windows_tz(tz = {{tz:String}})
WHERE {" AND ".join(where)}
ORDER BY meter, toString(dimensions), window_start
LIMIT {{limit:UInt32}}
"""
    return sql, params


def tokens_sql(
    customer: str, q: WindowQuery, models: Sequence[str] = ()
) -> tuple[str, dict[str, Any]]:
    where = ["customer_id = {customer:String}", "window = {window:String}"]
    params: dict[str, Any] = {"customer": customer, "window": q.window, "tz": q.tz}
    time_where, time_params = _time_filters("window_start", q.start_ms, q.end_ms)
    where += time_where
    params.update(time_params)
    if models:
        where.append("has({models:Array(String)}, model)")
        params["models"] = list(models)
    params["limit"] = q.limit + 1
    sql = f"""
SELECT {", ".join(TOKENS_COLUMNS)}
FROM token_usage_tz(tz = {{tz:String}})
WHERE {" AND ".join(where)}
ORDER BY model, window_start
LIMIT {{limit:UInt32}}
"""
    return sql, params


# Customers with token events only are customers too; the UNION keeps both counts exact
# (FINAL: an unmerged replayed insert is not a second event).
CUSTOMERS_SQL = """
SELECT customer_id,
       sum(n_usage) AS events,
       length(groupUniqArrayArray(m)) AS meters,
       arraySort(groupUniqArrayArray(m)) AS meter_codes,
       sum(n_tokens) AS token_events,
       arraySort(groupUniqArrayArray(t)) AS models,
       min(first_ts) AS first_event,
       max(last_ts) AS last_event
FROM
(
    SELECT customer_id, count() AS n_usage, groupUniqArray(toString(meter)) AS m,
           toUInt64(0) AS n_tokens, CAST([], 'Array(String)') AS t,
           min(timestamp) AS first_ts, max(timestamp) AS last_ts
    FROM usage_events FINAL
    WHERE startsWith(customer_id, {prefix:String})
    GROUP BY customer_id
    UNION ALL
    SELECT customer_id, toUInt64(0), CAST([], 'Array(String)'), count(),
           groupUniqArray(toString(model)), min(timestamp), max(timestamp)
    FROM token_events FINAL
    WHERE startsWith(customer_id, {prefix:String})
    GROUP BY customer_id
)
GROUP BY customer_id
ORDER BY customer_id
LIMIT {limit:UInt32}
"""

TABLE_ENGINE_SQL = """
SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = {table:String}
"""
TABLE_COLUMNS_SQL = """
SELECT name, type FROM system.columns
WHERE database = currentDatabase() AND table = {table:String}
ORDER BY position
"""


@dataclass(frozen=True)
class _Table:
    name: str
    engine: str
    columns: dict[str, str]  # name -> ClickHouse type

    @property
    def source(self) -> str:
        # Only table names fixed in this module get here, never request input.
        final = " FINAL" if self.engine.endswith(_FINAL_ENGINES) else ""
        return f"{self.name}{final}"

    def is_epoch_ms(self, column: str) -> bool:
        """Integer epoch ms rather than DateTime64 (the billing writer may store either)."""
        return "Int" in self.columns.get(column, "")


def _json_body(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], extra: Mapping[str, Any]
) -> bytes:
    body = to_json(columns, rows)
    if not extra:
        return body.encode()
    # to_json writes exactly one object: splice the extra keys into it rather than decode
    # and re-encode up to MAX_LIMIT rows.
    return (body[:-1] + ", " + json.dumps(dict(extra), ensure_ascii=False)[1:]).encode()


def _records(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as objects, values converted exactly as to_json converts them."""
    return [
        dict(zip(columns, row, strict=True)) for row in json.loads(to_json(columns, rows))["rows"]
    ]


def _invoice_summaries(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per invoice, in the order of its first line; amount_due from its
    ``amount_due`` summary line (see meterline/billing/invoice.py), None if it has none."""
    invoices: dict[str, dict[str, Any]] = {}
    for line in records:
        inv_id = str(line.get("invoice_id", ""))
        inv = invoices.setdefault(
            inv_id,
            {
                "invoice_id": inv_id,
                "period_start": line.get("period_start"),
                "period_end": line.get("period_end"),
                "amount_due": None,
                "lines": 0,
            },
        )
        if "currency" in line:
            inv["currency"] = line["currency"]
        inv["lines"] += 1
        if line.get("kind") == "amount_due":
            inv["amount_due"] = line.get("amount")
    return list(invoices.values())


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
        d = CounterMetricFamily("meterline_dlq_sent", "records sent to meterline.dlq")
        d.add_metric([], self.runtime.usage.dlq.count)
        yield d
        g = GaugeMetricFamily("meterline_dedup_ids", "event ids remembered for dedup")
        g.add_metric([], self.runtime.usage.index.size)
        yield g
        f = GaugeMetricFamily(
            "meterline_last_flush_timestamp_seconds", "wall clock of the last ClickHouse write"
        )
        f.add_metric([], stats.last_flush_ms / 1000)
        yield f


def _disable_faust_index(app: Any) -> None:
    """Faust mounts its own ``{"status": "OK"}`` page at ``/`` when the server starts; aiohttp
    refuses a second GET route there and the worker would die at start, so that blueprint
    is dropped here, before the server applies it."""
    blueprints = app.web.blueprints
    blueprints._enabled = [
        (prefix, bp)
        for prefix, bp in blueprints._enabled
        if bp != "faust.web.apps.production_index:blueprint"
    ]


def register_api(runtime: Runtime) -> None:
    app = runtime.app
    registry = CollectorRegistry()
    registry.register(_PipelineCollector(runtime))  # type: ignore[arg-type]
    _disable_faust_index(app)
    dsn = runtime.settings.clickhouse_dsn

    def analytics() -> AnyClient:
        # Its own lane (own client and lock on the same store): analyst and dashboard
        # queries never wait for the sink's inserts, nor hold them up.
        return connect(dsn, lane="api")

    async def in_thread(fn: Callable[[], T]) -> T:
        # chDB and clickhouse-connect block: keep them off the event loop Faust runs on.
        try:
            return await asyncio.to_thread(fn)
        except ClickHouseError as exc:
            raise ServerError(f"query failed: {exc}") from exc

    async def run_sql(
        sql: str, params: dict[str, Any] | None = None, columns: Sequence[str] = ()
    ) -> tuple[list[str], list]:
        """``columns``: the names to report when the result is empty and has none."""
        names, rows = await in_thread(lambda: query_rows(analytics(), sql, params))
        return names or list(columns), rows

    async def describe(table: str) -> _Table | None:
        def lookup() -> _Table | None:
            client = analytics()
            _, engines = query_rows(client, TABLE_ENGINE_SQL, {"table": table})
            if not engines:
                return None
            _, cols = query_rows(client, TABLE_COLUMNS_SQL, {"table": table})
            return _Table(table, str(engines[0][0]), {str(n): str(t) for n, t in cols})

        info = await in_thread(lookup)
        if info is not None and "customer_id" not in info.columns:
            raise ServerError(f"table {table} has no customer_id column")
        return info

    async def billing_table(table: str) -> _Table:
        info = await describe(table)
        if info is None:
            raise NotFound(
                f"table {table} does not exist: billing is not running on this store yet",
                table=table,
            )
        return info

    def table_response(
        view: View, columns: list[str], rows: list, fmt: str, extra: Mapping[str, Any]
    ) -> Response:
        if fmt == "tsv":
            return view.text(to_tsv(columns, rows))
        return view.bytes(_json_body(columns, rows, extra), content_type="application/json")

    def cut(rows: list, limit: int) -> tuple[list, bool]:
        return (rows[:limit], True) if len(rows) > limit else (rows, False)

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
                    "dedup_ids": runtime.usage.index.size,
                }
            )

    @app.page("/debug/consumer")
    class ConsumerDebug(View):
        """Where consumption stands, for diagnosing a worker that stopped consuming."""

        async def get(self, request: Request) -> Response:
            consumer = app.consumer

            def tps(value: Any) -> list[str]:
                return sorted(f"{tp.topic}/{tp.partition}" for tp in (value or ()))

            info: dict[str, Any] = {
                "producer_buffer": app.producer.buffer.size,
                "flow_control_active": app.flow_control.is_active(),
                "paused": tps(getattr(consumer, "_paused_partitions", None)),
                "held_back": tps(getattr(consumer, "_buffered_partitions", None)),
                "active": tps(getattr(consumer, "_active_partitions", None)),
                "rebalancing": bool(getattr(app, "rebalancing", False)),
                "in_recovery": app.tables.recovery.in_recovery,
                "lock_held_s": (
                    time.monotonic() - runtime.usage.lock_since if runtime.usage.lock_since else 0.0
                ),
            }
            try:
                thread = consumer._thread
                aio = thread._ensure_consumer()
                info["aiokafka_paused"] = tps(aio.paused())
                assignment = aio._fetcher._subscriptions.subscription.assignment
                info["positions"] = {
                    f"{tp.topic}/{tp.partition}": assignment.state_value(tp).position
                    for tp in aio.assignment()
                }
            except Exception as exc:  # diagnostics must not fail the page
                info["aiokafka_error"] = repr(exc)
            return self.json(info)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(registry), content_type="text/plain; version=0.0.4")

    @app.page("/sql")
    class Sql(View):
        async def post(self, request: Request) -> Response:
            sql = (await request.text()).strip()
            fmt = _format(request.query)
            try:
                columns, rows = await asyncio.to_thread(lambda: query_rows(analytics(), sql))
            except Exception as exc:  # the analyst's SQL error is the answer, not a crash
                return self.json({"error": str(exc)}, status=400)
            return table_response(self, columns, rows, fmt, {})

    @app.page("/usage/{customer}")
    class Usage(View):
        async def get(self, request: Request, customer: str) -> Response:
            query = request.query
            _check_params(
                query, ("window", "meter", "from", "to", "tz", "limit", "format"), dims=True
            )
            q = parse_window_query(query)
            sql, params = usage_sql(customer, q, _repeated(query, "meter"), parse_dimensions(query))
            columns, rows = await run_sql(sql, params, USAGE_COLUMNS)
            rows, truncated = cut(rows, q.limit)
            return table_response(self, columns, rows, q.fmt, {**q.meta(), "truncated": truncated})

    @app.page("/tokens/{customer}")
    class Tokens(View):
        async def get(self, request: Request, customer: str) -> Response:
            query = request.query
            if any(k.startswith(DIM_PREFIX) for k in query):
                raise ValidationError(
                    "token_usage has no dimensions: dim.<key> filters apply to /usage only"
                )
            _check_params(query, ("window", "model", "from", "to", "tz", "limit", "format"))
            q = parse_window_query(query)
            sql, params = tokens_sql(customer, q, _repeated(query, "model"))
            columns, rows = await run_sql(sql, params, TOKENS_COLUMNS)
            rows, truncated = cut(rows, q.limit)
            return table_response(self, columns, rows, q.fmt, {**q.meta(), "truncated": truncated})

    @app.page("/customers")
    class Customers(View):
        async def get(self, request: Request) -> Response:
            query = request.query
            _check_params(query, ("prefix", "limit", "format"))
            limit = parse_limit(query.get("limit"), default=1000)
            fmt = _format(query)
            columns, rows = await run_sql(
                CUSTOMERS_SQL,
                {"prefix": query.get("prefix", ""), "limit": limit + 1},
                CUSTOMERS_COLUMNS,
            )
            rows, truncated = cut(rows, limit)
            return table_response(self, columns, rows, fmt, {"truncated": truncated})

    async def customer_rows(
        table: _Table,
        customer: str,
        query: MultiMapping[str],
        *,
        time_column: str,
        filters: Sequence[str],
        order: Sequence[str],
        default_limit: int,
    ) -> tuple[list[str], list, bool]:
        """Rows of one customer from a billing table: [from, to) on ``time_column``, exact
        matches on ``filters`` (each repeatable), newest first as ``order`` says. Columns the
        table lacks are skipped, so a later schema change degrades to fewer filters."""
        _, tz = parse_tz(query.get("tz"))
        start = parse_instant(query["from"], tz, "from") if query.get("from") else None
        end = parse_instant(query["to"], tz, "to") if query.get("to") else None
        if start is not None and end is not None and start >= end:
            raise ValidationError("from must be earlier than to")
        limit = parse_limit(query.get("limit"), default=default_limit)
        where = ["customer_id = {customer:String}"]
        params: dict[str, Any] = {"customer": customer, "limit": limit + 1}
        if time_column in table.columns:
            time_where, time_params = _time_filters(
                time_column, start, end, epoch_ms=table.is_epoch_ms(time_column)
            )
            where += time_where
            params.update(time_params)
        for i, column in enumerate(filters):
            values = _repeated(query, column)
            if values and column in table.columns:
                # Column names come from this module; the values are bound.
                where.append(f"has({{f{i}:Array(String)}}, toString({column}))")
                params[f"f{i}"] = values
        used = [o for o in order if o.split()[0] in table.columns]
        order_sql = f"ORDER BY {', '.join(used)}" if used else ""
        columns, rows = await run_sql(
            f"SELECT * FROM {table.source} WHERE {' AND '.join(where)} {order_sql} "
            "LIMIT {limit:UInt32}",
            params,
            list(table.columns),
        )
        rows, truncated = cut(rows, limit)
        return columns, rows, truncated

    def billing_page(
        path: str,
        table_name: str,
        *,
        time_column: str,
        filters: Sequence[str],
        order: Sequence[str],
        default_limit: int = 100,
    ) -> None:
        """A listing endpoint over one billing table: columns/rows JSON or TSV."""

        async def get(self: View, request: Request, customer: str) -> Response:
            query = request.query
            _check_params(query, ("from", "to", "tz", "limit", "format", *filters))
            fmt = _format(query)
            table = await billing_table(table_name)
            columns, rows, truncated = await customer_rows(
                table,
                customer,
                query,
                time_column=time_column,
                filters=filters,
                order=order,
                default_limit=default_limit,
            )
            return table_response(self, columns, rows, fmt, {"truncated": truncated})

        view = type(f"{table_name.title().replace('_', '')}View", (View,), {"get": get})
        app.page(path)(view)

    @app.page("/balance/{customer}")
    class Balance(View):
        async def get(self, request: Request, customer: str) -> Response:
            _check_params(request.query, ())
            table = await billing_table("balances")
            order = "ORDER BY at DESC" if "at" in table.columns else ""
            columns, rows = await run_sql(
                f"SELECT * FROM {table.source} WHERE customer_id = {{customer:String}} "
                f"{order} LIMIT 1",
                {"customer": customer},
            )
            if not rows:
                raise NotFound(f"no balance recorded for customer {customer!r}", table="balances")
            return self.bytes(
                json.dumps(_records(columns, rows)[0], ensure_ascii=False).encode(),
                content_type="application/json",
            )

    # Newest first; seq orders ledger entries written within one millisecond.
    billing_page(
        "/ledger/{customer}",
        "credit_ledger",
        time_column="at",
        filters=("kind", "grant_id"),
        order=("at DESC", "seq DESC"),
    )
    billing_page(
        "/payments/{customer}",
        "payments",
        time_column="at",
        filters=("status", "processor"),
        order=("at DESC", "payment_id"),
    )
    billing_page(
        "/alerts/{customer}",
        "alerts",
        time_column="at",
        filters=("kind",),
        order=("at DESC", "alert_id"),
    )

    @app.page("/invoices/{customer}")
    class Invoices(View):
        async def get(self, request: Request, customer: str) -> Response:
            query = request.query
            _check_params(query, ("invoice_id", "from", "to", "tz", "limit", "format"))
            fmt = _format(query)
            lines_table = await billing_table("invoice_lines")
            columns, rows, truncated = await customer_rows(
                lines_table,
                customer,
                query,
                time_column="period_start",
                filters=("invoice_id",),
                order=("period_start DESC", "invoice_id", "line_no"),
                default_limit=1000,
            )
            if fmt == "tsv":
                return self.text(to_tsv(columns, rows))
            # Status and payments live in `invoices` (when the billing writer has it); the
            # lines alone still give period and amount due.
            headers = await describe("invoices")
            if headers is not None:
                inv_columns, inv_rows, _ = await customer_rows(
                    headers,
                    customer,
                    query,
                    time_column="period_start",
                    filters=("invoice_id",),
                    order=("period_start DESC", "invoice_id"),
                    default_limit=1000,
                )
                # version is the writer's ReplacingMergeTree bookkeeping, not invoice data.
                summaries = [
                    {k: v for k, v in r.items() if k != "version"}
                    for r in _records(inv_columns, inv_rows)
                ]
            else:
                summaries = _invoice_summaries(_records(columns, rows))
            return self.bytes(
                _json_body(columns, rows, {"truncated": truncated, "invoices": summaries}),
                content_type="application/json",
            )

    @app.page("/invoices/{customer}/preview")
    class InvoicePreview(View):
        async def get(self, request: Request, customer: str) -> Response:
            # The live account is in this worker's memory (its single writer); read it under
            # the pipeline lock so it is not seen half-updated.
            async with runtime.usage.lock:
                state = runtime.usage.accounts.get(customer)
                invoice = state.account.preview_invoice() if state is not None else None
            if invoice is None:
                return self.json({"error": f"no open billing period for {customer!r}"}, status=404)
            return self.json(invoice.to_dict())

    @app.page("/")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            # Read per request (a few kB) so an edited page shows without a worker restart.
            page = await asyncio.to_thread(DASHBOARD.read_text, encoding="utf-8")
            return self.html(page, headers={"Cache-Control": "no-store"})
