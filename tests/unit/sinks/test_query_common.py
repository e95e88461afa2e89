"""sinks.queries.common: WHERE building and identifier checks."""

from __future__ import annotations

import pytest

from sinks.queries.common import SqlQuery, TimeRange, Where, identifier


@pytest.mark.parametrize(
    ("time", "epoch_ms", "clauses", "params"),
    [
        (TimeRange(), False, [], {}),
        (
            TimeRange(5, None),
            False,
            ["t >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')"],
            {"start": 5},
        ),
        (TimeRange(None, 7), True, ["t < {end:Int64}"], {"end": 7}),
        (TimeRange(5, 7), True, ["t >= {start:Int64}", "t < {end:Int64}"], {"start": 5, "end": 7}),
        # 0 is the epoch, not "no bound".
        (TimeRange(0, 0), True, ["t >= {start:Int64}", "t < {end:Int64}"], {"start": 0, "end": 0}),
    ],
)
def test_time_range(time: TimeRange, epoch_ms: bool, clauses: list[str], params: dict) -> None:
    where = Where()
    where.time_range("t", time, epoch_ms=epoch_ms)
    assert (where.clauses, where.params) == (clauses, params)


def test_a_placeholder_cannot_be_bound_to_two_values() -> None:
    where = Where()
    where.add("a = {x:String}", x="1")
    where.add("b = {x:String}", x="1")  # the same value twice is harmless
    with pytest.raises(ValueError, match="bound twice"):
        where.add("c = {x:String}", x="2")
    assert where.sql() == "a = {x:String} AND b = {x:String}"


@pytest.mark.parametrize("name", ["at", "_x", "grant_id", "T2"])
def test_plain_identifiers_pass(name: str) -> None:
    assert identifier(name) == name


@pytest.mark.parametrize("name", ["", "2x", "a b", "a;", "a`", "a.b", "x'--"])
def test_anything_else_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        identifier(name)


def test_sql_query_unpacks() -> None:
    sql, params = SqlQuery("SELECT {a:UInt8}", {"a": 1})
    assert (sql, params) == ("SELECT {a:UInt8}", {"a": 1})
