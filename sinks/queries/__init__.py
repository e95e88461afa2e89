"""Read SQL, one builder per module (what /usage, /tokens, /customers and the billing
endpoints run). Each builder is a pure function from a typed record to a :class:`SqlQuery`
whose request values are bound ``{name:Type}`` parameters."""

from sinks.queries.balance import BalanceQuery, balance_sql
from sinks.queries.common import SqlQuery, TimeRange
from sinks.queries.customer_rows import ColumnFilter, CustomerRowsQuery, customer_rows_sql
from sinks.queries.customers import CUSTOMERS_COLUMNS, CustomersQuery, customers_sql
from sinks.queries.tables import TableInfo, table_columns_sql, table_engine_sql
from sinks.queries.tokens import TOKENS_COLUMNS, TokensQuery, tokens_sql
from sinks.queries.usage import USAGE_COLUMNS, DimensionFilter, UsageQuery, usage_sql

__all__ = [
    "CUSTOMERS_COLUMNS",
    "TOKENS_COLUMNS",
    "USAGE_COLUMNS",
    "BalanceQuery",
    "ColumnFilter",
    "CustomerRowsQuery",
    "CustomersQuery",
    "DimensionFilter",
    "SqlQuery",
    "TableInfo",
    "TimeRange",
    "TokensQuery",
    "UsageQuery",
    "balance_sql",
    "customer_rows_sql",
    "customers_sql",
    "table_columns_sql",
    "table_engine_sql",
    "tokens_sql",
    "usage_sql",
]
