"""``GET /customers``: every customer seen in the raw events, with totals."""

from __future__ import annotations

from dataclasses import dataclass

from sinks.queries.common import SqlQuery

__all__ = ["CUSTOMERS_COLUMNS", "CUSTOMERS_SQL", "CustomersQuery", "customers_sql"]

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


@dataclass(frozen=True)
class CustomersQuery:
    prefix: str = ""  # customer ids starting with it; '' is everyone
    limit: int = 1000


def customers_sql(q: CustomersQuery) -> SqlQuery:
    """At most ``limit + 1`` customers by id (the extra row says the answer was cut)."""
    return SqlQuery(CUSTOMERS_SQL, {"prefix": q.prefix, "limit": q.limit + 1})
