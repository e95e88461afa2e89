"""Analyst SQL from the HTTP API (``POST /sql``): read-only, bounded, local.

Three layers, because no single one is enough on chDB (measured on chDB 4.4 / ClickHouse
26.9, see tests/unit/api/test_readonly_sql.py and tests/integration/test_api_security.py):

1. ClickHouse itself parses the statement (``formatQuerySingleLine``, the SQL passed as a
   bound parameter so nothing is spliced in) and rejects multi-statements and syntax errors;
   what it prints back has no comments, heredocs or odd quoting, and is what runs.
2. :func:`check_statement` allows only reading statements (SELECT, WITH, SHOW, DESCRIBE,
   EXPLAIN, EXISTS) and refuses every function that reaches files, URLs, other servers or
   the host process, and ``INTO OUTFILE``. Needed because ``readonly=1`` on chDB still lets
   the scalar ``file('/etc/passwd')`` read files, ``INTO OUTFILE`` write them,
   ``KILL QUERY`` stop the worker's own queries and chDB's ``python()`` read process memory.
3. The query runs with ``readonly=1`` and the limits profile (:class:`SqlLimits`, all
   ``*_overflow_mode=throw``), on a connection of its own: so it can neither write nor raise
   its own limits (a ``SETTINGS`` clause or ``SET`` is refused in readonly mode). On chDB the
   settings are SET once on a dedicated handle (session state is per handle, so the worker's
   own writes on other handles are unaffected, and per-query settings cannot be used: the
   client's restore-after-query SET would fail on a readonly session); on a server they go
   with every query, on top of the read-only user docker-compose gives the API.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks.client import SharedClient, connect
from sinks.query import query_rows

__all__ = [
    "DENIED_FUNCTIONS",
    "READ_STATEMENTS",
    "ForbiddenSql",
    "ReadOnlySql",
    "SqlError",
    "SqlLimits",
    "check_statement",
    "error_kind",
]

# Statements that only read. Everything else (INSERT, CREATE, DROP, ALTER, SET, KILL, SYSTEM,
# OPTIMIZE, USE, ...) is refused before it reaches the engine.
READ_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})

# Table functions (and the scalar file()) that read or write outside the store's own tables,
# lower-cased: ClickHouse resolves some function names case-insensitively. From
# system.table_functions of chDB 4.4 plus server-only ones; *cluster names are refused by
# _is_denied too.
DENIED_FUNCTIONS = frozenset(
    {
        "file", "filecluster", "filesystem", "url", "urlcluster", "s3", "s3cluster", "gcs",
        "oss", "cosn", "hdfs", "hdfscluster", "azureblobstorage", "azureblobstoragecluster",
        "remote", "remotesecure", "cluster", "clusterallreplicas", "mysql", "postgresql",
        "mongodb", "redis", "sqlite", "jdbc", "odbc", "input", "executable", "dictionary",
        "ytsaurus", "bigquery", "hive", "loop", "prometheusquery", "prometheusqueryrange",
        "arrowflight", "arrowstream", "python", "eval", "catboostevaluate", "s3queue",
    }
)  # fmt: skip
# Data-lake families (deltaLake, deltaLakeS3, icebergLocal, paimonHDFS, hudiCluster, ...).
_DENIED_PREFIXES = ("deltalake", "iceberg", "paimon", "hudi")

# Error names ClickHouse raises when a limit of the profile is hit.
_LIMIT_ERRORS = frozenset(
    {
        "TOO_MANY_ROWS", "TOO_MANY_BYTES", "TOO_MANY_ROWS_OR_BYTES", "TIMEOUT_EXCEEDED",
        "MEMORY_LIMIT_EXCEEDED", "TOO_SLOW", "TOO_MANY_COLUMNS", "TOO_DEEP_SUBQUERIES",
    }
)  # fmt: skip
_READ_ONLY_ERRORS = frozenset({"READONLY", "ACCESS_DENIED", "NOT_ENOUGH_PRIVILEGES"})
_ERROR_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<quoted>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>[0-9][0-9A-Za-z_.+\-]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


class SqlError(ValueError):
    """A statement the engine could not run; ``kind`` is ``sql`` or ``limit``."""

    def __init__(self, message: str, kind: str = "sql", name: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name


class ForbiddenSql(SqlError):
    """A statement refused because it would write, or reach beyond the store."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message, "read_only", name)


def _tokens(sql: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for m in _TOKEN_RE.finditer(sql):
        kind = m.lastgroup or "other"
        if kind == "space":
            continue
        text = m.group()
        if kind == "quoted":
            kind, text = "word", text[1:-1]  # a quoted identifier names what a bare one does
        out.append((kind, text))
    return out


def _is_denied(name: str) -> bool:
    lower = name.lower()
    return (
        lower in DENIED_FUNCTIONS
        or lower.startswith(_DENIED_PREFIXES)
        or lower.endswith(("cluster", "clusterallreplicas"))
    )


def check_statement(sql: str) -> None:
    """Raises :class:`ForbiddenSql` unless ``sql`` (as ClickHouse formatted it) only reads
    the store's own tables."""
    tokens = _tokens(sql)
    if not tokens:
        raise SqlError("empty statement: send one SELECT in the request body")
    first = tokens[0][1].upper() if tokens[0][0] == "word" else tokens[0][1]
    if first != "(" and first not in READ_STATEMENTS:
        raise ForbiddenSql(
            f"{first} is not allowed: /sql is read-only ({', '.join(sorted(READ_STATEMENTS))} only)"
        )
    for i, (kind, text) in enumerate(tokens):
        if kind == "other" and text == ";":
            raise ForbiddenSql("one statement per request")
        if kind != "word":
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if nxt == ("other", "(") and _is_denied(text):
            raise ForbiddenSql(
                f"{text}() is not allowed: /sql never reaches files, URLs or other servers"
            )
        if text.upper() == "INTO" and nxt[0] == "word" and nxt[1].upper() == "OUTFILE":
            raise ForbiddenSql("INTO OUTFILE is not allowed: /sql never writes files")


def error_kind(exc: Exception) -> tuple[str, str | None]:
    """(``read_only`` | ``limit`` | ``sql``, ClickHouse's error name) of an engine error."""
    message = str(exc).strip()
    name = getattr(exc, "name", None)
    if not isinstance(name, str) or not name:
        m = _ERROR_NAME_RE.search(message)
        name = m.group(1) if m else None
    if name in _READ_ONLY_ERRORS:
        return "read_only", name
    if name in _LIMIT_ERRORS:
        return "limit", name
    return "sql", name


@dataclass(frozen=True)
class SqlLimits:
    """The limits profile of ``/sql`` (``METERLINE_SQL_*`` settings)."""

    max_result_rows: int = 100_000
    max_result_bytes: int = 100_000_000
    max_execution_time: int = 30  # seconds
    max_rows_to_read: int = 1_000_000_000
    max_memory_usage: int = 1_000_000_000

    def settings(self) -> dict[str, Any]:
        return {
            "max_result_rows": self.max_result_rows,
            "max_result_bytes": self.max_result_bytes,
            "max_execution_time": self.max_execution_time,
            "max_rows_to_read": self.max_rows_to_read,
            "max_memory_usage": self.max_memory_usage,
            # throw, not "break": a silently cut result would read as the whole answer.
            "result_overflow_mode": "throw",
            "read_overflow_mode": "throw",
            "timeout_overflow_mode": "throw",
        }


_LANE = "sql-readonly"
_prepared: weakref.WeakSet[SharedClient] = weakref.WeakSet()
_prepare_lock = threading.Lock()
_run_lock = threading.Lock()


def _literal(value: Any) -> str:
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


class ReadOnlySql:
    def __init__(self, dsn: str, limits: SqlLimits | None = None) -> None:
        self.dsn = dsn
        self.limits = limits or SqlLimits()

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    def _client(self) -> SharedClient:
        client = connect(self.dsn, lane=_LANE)
        if self.embedded:
            with _prepare_lock:
                if client not in _prepared:
                    self._prepare_session(client)
                    _prepared.add(client)
        return client

    def _prepare_session(self, client: SharedClient) -> None:
        # Limits first: once readonly=1 is set, no setting of this handle can change again.
        with client.lock:
            for name, value in {**self.limits.settings(), "readonly": 1}.items():
                client.command(f"SET {name} = {_literal(value)}")
            check = "SELECT value FROM system.settings WHERE name = 'readonly'"
            _, rows = query_rows(client, check)
            if not rows or str(rows[0][0]) != "1":  # never run analyst SQL on a writable handle
                raise RuntimeError("could not make the /sql connection read-only")

    def _reset(self, client: SharedClient) -> None:
        # chDB leaves the rest of a result that failed mid-stream (a result limit hit after
        # the first blocks) in the handle, and the next query on it reads that as garbage:
        # a fresh handle (prepared again on next use) starts clean. Only this lane's handle
        # closes; the engine and the worker's handles stay open.
        if self.embedded:
            with _prepare_lock:
                _prepared.discard(client)
                client.close()

    def _query_settings(self) -> Mapping[str, Any] | None:
        # A server connection has no session: readonly and the limits go with each query.
        return None if self.embedded else {"readonly": 1, **self.limits.settings()}

    def run(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Columns and rows of ``sql``; raises :class:`SqlError` (or :class:`ForbiddenSql`)
        with a message fit for the caller."""
        # One statement at a time: the lane is serialised anyway, and a reset handle must not
        # be closed under another request's query.
        with _run_lock:
            return self._run(sql)

    def _run(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        client = self._client()
        settings = self._query_settings()
        try:
            _, rows = query_rows(
                client, "SELECT formatQuerySingleLine({q:String})", {"q": sql}, settings=settings
            )
        except ClickHouseError as exc:
            raise SqlError(f"not a valid statement: {_short(exc)}") from None
        formatted = str(rows[0][0])
        check_statement(formatted)
        try:
            return query_rows(client, formatted, settings=settings)
        except ClickHouseError as exc:
            self._reset(client)
            kind, name = error_kind(exc)
            if kind == "read_only":
                raise ForbiddenSql(f"not allowed on /sql: {_short(exc)}", name) from None
            raise SqlError(_short(exc), kind, name) from None


def _short(exc: Exception) -> str:
    # chDB repeats "Code: N. DB::Exception:" once per layer; keep the innermost message.
    text = " ".join(str(exc).split())
    parts = re.split(r"Code: \d+\. DB::Exception: ", text)
    return (parts[-1] if parts[-1] else text).strip()[:2000]
