"""``GET /balance/{customer}``: the customer's latest balance row."""

from __future__ import annotations

from dataclasses import dataclass

from sinks.queries.common import SqlQuery
from sinks.queries.tables import TableInfo

__all__ = ["BalanceQuery", "balance_sql"]


@dataclass(frozen=True)
class BalanceQuery:
    table: TableInfo  # `balances`, as found on the store
    customer: str


def balance_sql(q: BalanceQuery) -> SqlQuery:
    """At most one row: the newest by ``at`` when the table has that column."""
    order = "ORDER BY at DESC" if "at" in q.table.columns else ""
    sql = f"SELECT * FROM {q.table.source} WHERE customer_id = {{customer:String}} {order} LIMIT 1"
    return SqlQuery(sql, {"customer": q.customer})
