"""``GET /ledger|payments|alerts|invoices/{customer}``: one customer's rows of a billing table,
filtered and newest first."""

from __future__ import annotations

from dataclasses import dataclass

from sinks.queries.common import ALL_TIME, SqlQuery, TimeRange, Where, identifier
from sinks.queries.tables import TableInfo

__all__ = ["ColumnFilter", "CustomerRowsQuery", "customer_rows_sql"]

_DIRECTIONS = ("ASC", "DESC")


@dataclass(frozen=True)
class ColumnFilter:
    """Rows whose ``column``, as text, is one of ``values``; no values: no filter."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class CustomerRowsQuery:
    table: TableInfo
    customer: str
    time_column: str  # [from, to) applies to it
    time: TimeRange = ALL_TIME
    filters: tuple[ColumnFilter, ...] = ()
    order: tuple[str, ...] = ()  # "column" or "column ASC|DESC"
    limit: int = 100


def _order_term(term: str) -> str:
    column, *direction = term.split()
    if len(direction) > 1 or (direction and direction[0].upper() not in _DIRECTIONS):
        raise ValueError(f"not an ORDER BY term: {term!r}")
    return " ".join([identifier(column), *direction])


def customer_rows_sql(q: CustomerRowsQuery) -> SqlQuery:
    """``SELECT *`` of the customer's rows, at most ``limit + 1`` (the extra row says the answer
    was cut). Time range, filters and order terms on columns the table lacks are skipped, so
    a later schema change degrades to fewer filters rather than a failing query."""
    table = q.table
    where = Where()
    where.add("customer_id = {customer:String}", customer=q.customer)
    if q.time_column in table.columns:
        where.time_range(q.time_column, q.time, epoch_ms=table.is_epoch_ms(q.time_column))
    for i, f in enumerate(q.filters):
        if f.values and f.column in table.columns:
            where.add(
                f"has({{f{i}:Array(String)}}, toString({identifier(f.column)}))",
                **{f"f{i}": list(f.values)},
            )
    used = [_order_term(o) for o in q.order if o.split()[0] in table.columns]
    order_sql = f"ORDER BY {', '.join(used)}" if used else ""
    sql = f"SELECT * FROM {table.source} WHERE {where.sql()} {order_sql} LIMIT {{limit:UInt32}}"
    return SqlQuery(sql, {**where.params, "limit": q.limit + 1})
