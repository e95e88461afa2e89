"""The API's access to ClickHouse: its own client lane, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from clickhouse_connect.driver.exceptions import ClickHouseError
from faust.web.exceptions import NotFound, ServerError

from sinks.client import AnyClient, connect
from sinks.queries import SqlQuery, TableInfo, table_columns_sql, table_engine_sql
from sinks.query import query_rows
from sinks.readonly_sql import ReadOnlySql

__all__ = ["AnalyticsStore", "ResultSet"]

T = TypeVar("T")


@dataclass(frozen=True)
class ResultSet:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False

    def limited(self, limit: int) -> ResultSet:
        """The first ``limit`` rows, ``truncated`` when there were more (the builders fetch
        ``limit + 1`` so that this can tell)."""
        if len(self.rows) > limit:
            return ResultSet(self.columns, self.rows[:limit], truncated=True)
        return self


class AnalyticsStore:
    def __init__(self, dsn: str, sql: ReadOnlySql | None = None) -> None:
        self.dsn = dsn
        # POST /sql: its own read-only connection, possibly as another (read-only) user.
        self.sql = sql or ReadOnlySql(dsn)

    def client(self) -> AnyClient:
        # Its own lane (own client and lock on the same store): analyst and dashboard
        # queries never wait for the sink's inserts, nor hold them up.
        return connect(self.dsn, lane="api")

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        # chDB and clickhouse-connect block: keep them off the event loop Faust runs on.
        try:
            return await asyncio.to_thread(fn)
        except ClickHouseError as exc:
            raise ServerError(f"query failed: {exc}") from exc

    async def rows(self, query: SqlQuery, columns: Sequence[str] = ()) -> ResultSet:
        """``columns``: the names to report when the result is empty and has none."""
        names, rows = await self._in_thread(
            lambda: query_rows(self.client(), query.sql, query.parameters)
        )
        return ResultSet(names or list(columns), rows)

    async def analyst_sql(self, sql: str) -> ResultSet:
        """Runs ``sql`` read-only, within the limits profile (sinks/readonly_sql.py); a
        refused or failed statement raises SqlError (ForbiddenSql) for the caller to report."""
        names, rows = await asyncio.to_thread(self.sql.run, sql)
        return ResultSet(names, rows)

    async def writable_sql(self, sql: str) -> ResultSet:
        """Runs ``sql`` as given on the API's own (writable) lane: POST /sql?mode=write,
        which only a keyless loopback API with METERLINE_SQL_ALLOW_WRITES allows."""
        names, rows = await asyncio.to_thread(lambda: query_rows(self.client(), sql))
        return ResultSet(names, rows)

    async def describe(self, table: str) -> TableInfo | None:
        """The table's engine and columns; None when it does not exist."""

        def lookup() -> TableInfo | None:
            client = self.client()
            _, engines = query_rows(client, *table_engine_sql(table))
            if not engines:
                return None
            _, cols = query_rows(client, *table_columns_sql(table))
            return TableInfo(table, str(engines[0][0]), {str(n): str(t) for n, t in cols})

        info = await self._in_thread(lookup)
        if info is not None and "customer_id" not in info.columns:
            raise ServerError(f"table {table} has no customer_id column")
        return info

    async def billing_table(self, table: str) -> TableInfo:
        """As :meth:`describe`, but a missing table is a 404 that names it."""
        info = await self.describe(table)
        if info is None:
            raise NotFound(
                f"table {table} does not exist: billing is not running on this store yet",
                table=table,
            )
        return info
