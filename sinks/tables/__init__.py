"""One module per ClickHouse table Meterline writes: the table's name and columns (its DDL is
in ``sinks/ddl/``, versioned), and the mapping from the processor's typed records to rows.
``streams/`` hands records to these; no row shape lives anywhere else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]


def utc(ms: int) -> datetime:
    """Epoch milliseconds as the aware datetime DateTime64(3, 'UTC') columns take."""
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
