"""What a billing table looks like on this store: engine and columns, from system tables.

The billing endpoints read tables whose columns the billing writer owns and may change, so
they look the table up first and build their SQL from what is there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sinks.queries.common import SqlQuery, identifier

__all__ = ["FINAL_ENGINES", "TableInfo", "table_columns_sql", "table_engine_sql"]

# Engines whose rows stay duplicated or unsummed until a merge: read them with FINAL.
FINAL_ENGINES = (
    "ReplacingMergeTree",
    "CollapsingMergeTree",
    "SummingMergeTree",
    "AggregatingMergeTree",
)

TABLE_ENGINE_SQL = """
SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = {table:String}
"""
TABLE_COLUMNS_SQL = """
SELECT name, type FROM system.columns
WHERE database = currentDatabase() AND table = {table:String}
ORDER BY position
"""


@dataclass(frozen=True)
class TableInfo:
    name: str
    engine: str
    columns: Mapping[str, str]  # name -> ClickHouse type, in table order

    @property
    def source(self) -> str:
        """The FROM clause: the table, with FINAL where unmerged rows would mislead."""
        final = " FINAL" if self.engine.endswith(FINAL_ENGINES) else ""
        return f"{identifier(self.name)}{final}"

    def is_epoch_ms(self, column: str) -> bool:
        """Integer epoch ms rather than DateTime64 (the billing writer may store either)."""
        return "Int" in self.columns.get(column, "")


def table_engine_sql(table: str) -> SqlQuery:
    """One row (engine) if ``table`` exists in the current database, none otherwise."""
    return SqlQuery(TABLE_ENGINE_SQL, {"table": table})


def table_columns_sql(table: str) -> SqlQuery:
    """(name, type) of each column of ``table``, in table order."""
    return SqlQuery(TABLE_COLUMNS_SQL, {"table": table})
