"""What every read-query builder shares: the result record, bound-parameter WHERE clauses,
time ranges and identifier checks.

Builders are pure: a typed record in, SQL text with ``{name:Type}`` placeholders and the values
to bind out. Request values only ever travel as bound parameters; the only text spliced into
the SQL is fixed fragments and identifiers chosen by code (checked by :func:`identifier`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["ALL_TIME", "SqlQuery", "TimeRange", "Where", "identifier"]

_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SqlQuery(NamedTuple):
    """SQL with ``{name:Type}`` placeholders and the values to bind to them.

    A NamedTuple so a caller may unpack it as ``sql, parameters = builder(record)``."""

    sql: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class TimeRange:
    """Half-open [start_ms, end_ms) in epoch milliseconds; None leaves that side open."""

    start_ms: int | None = None
    end_ms: int | None = None


ALL_TIME = TimeRange()  # no bound on either side


def identifier(name: str) -> str:
    """``name`` if it is a plain SQL identifier. Column and table names are spliced into the
    SQL (they cannot be bound), so anything else is a programming error, refused loudly."""
    if not _IDENTIFIER_RE.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


@dataclass
class Where:
    """AND-ed conditions and the parameters they bind."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, clause: str, **params: Any) -> None:
        for name, value in params.items():
            # Two conditions silently sharing one placeholder would filter on the wrong value.
            if name in self.params and self.params[name] != value:
                raise ValueError(f"parameter {name!r} bound twice")
            self.params[name] = value
        self.clauses.append(clause)

    def time_range(self, column: str, time: TimeRange, *, epoch_ms: bool = False) -> None:
        """[from, to) on ``column``; ``epoch_ms`` for an integer column of epoch ms rather than
        a DateTime64."""
        column = identifier(column)
        for bound, op, value in (("start", ">=", time.start_ms), ("end", "<", time.end_ms)):
            if value is None:
                continue
            rhs = (
                f"{{{bound}:Int64}}"
                if epoch_ms
                else f"fromUnixTimestamp64Milli({{{bound}:Int64}}, 'UTC')"
            )
            self.add(f"{column} {op} {rhs}", **{bound: value})

    def sql(self) -> str:
        return " AND ".join(self.clauses)
