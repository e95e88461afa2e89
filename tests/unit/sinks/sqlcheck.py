"""Checks every query-builder test makes: each ``{name:Type}`` placeholder has a bound value and
each bound value a placeholder, and no request value appears in the SQL text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sinks.queries import SqlQuery

_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}")

# Values no fixed fragment contains: if one shows up in the SQL, it was interpolated.
HOSTILE = "x') OR 1=1 --"


def placeholders(sql: str) -> dict[str, str]:
    """Placeholder name -> ClickHouse type."""
    found: dict[str, str] = {}
    for name, typ in _PLACEHOLDER_RE.findall(sql):
        assert found.setdefault(name, typ) == typ, f"{name} bound as two types"
    return found


def check_bound(query: SqlQuery, request_values: Iterable[str] = ()) -> None:
    assert set(placeholders(query.sql)) == set(query.parameters), (
        placeholders(query.sql),
        query.parameters,
    )
    for value in request_values:
        assert value not in query.sql, f"{value!r} interpolated into the SQL"


@dataclass(frozen=True)
class Case:
    """One row of a builder's table: the record, fragments the SQL must (not) contain, and the
    exact parameters it must bind."""

    name: str
    query: Any
    contains: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)


def check_case(case: Case, built: SqlQuery) -> None:
    for fragment in case.contains:
        assert fragment in built.sql, f"{fragment!r} missing from:\n{built.sql}"
    for fragment in case.excludes:
        assert fragment not in built.sql, f"{fragment!r} unexpected in:\n{built.sql}"
    assert built.parameters == case.params
    check_bound(built)
