"""meterline.api.params: query-parameter parsing, table-driven. Bad input is a Faust
ValidationError (a 400 with the message), raised before any query runs."""

from __future__ import annotations

from typing import Any

import pytest
from faust.web.exceptions import ValidationError
from multidict import MultiDict

from meterline.api.params import (
    check_params,
    parse_dimensions,
    parse_format,
    parse_limit,
    parse_rows_request,
    parse_window_query,
    repeated,
)
from sinks.queries import ColumnFilter, DimensionFilter, TimeRange

JAN_1 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
HOUR = 3_600_000


def q(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((), ("hour", "UTC", None, None, 10_000, "json")),
        ((("window", "minute"), ("limit", "5")), ("minute", "UTC", None, None, 5, "json")),
        ((("from", str(JAN_1)), ("format", "tsv")), ("hour", "UTC", JAN_1, None, 10_000, "tsv")),
        # A naive time is read in the request's zone: Berlin is UTC+1 in January.
        (
            (("tz", "Europe/Berlin"), ("from", "2025-01-01"), ("to", "2025-01-02T00:00:00Z")),
            ("hour", "Europe/Berlin", JAN_1 - HOUR, JAN_1 + 24 * HOUR, 10_000, "json"),
        ),
        # Empty values are absent ones (as `meterline usage` sends them).
        ((("from", ""), ("to", ""), ("limit", "")), ("hour", "UTC", None, None, 10_000, "json")),
    ],
)
def test_window_query(pairs: tuple[tuple[str, str], ...], expected: tuple[Any, ...]) -> None:
    w = parse_window_query(q(*pairs))
    assert (w.window, w.tz, w.start_ms, w.end_ms, w.limit, w.fmt) == expected
    assert w.time == TimeRange(expected[2], expected[3])
    assert w.meta() == {"window": w.window, "tz": w.tz, "from": w.start_ms, "to": w.end_ms}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ((("window", "week"),), "window: 'week' is not one of minute, hour, day, month"),
        ((("tz", "Mars/Olympus"),), "unknown time zone 'Mars/Olympus'"),
        ((("tz", "UTC') UNION ALL SELECT 1 --"),), "unknown time zone"),
        ((("from", "yesterday"),), "from: 'yesterday' is neither epoch milliseconds nor ISO"),
        ((("to", "99999999999999999"),), "to: '99999999999999999' is neither"),
        ((("from", "2300-01-01"),), "from: '2300-01-01' is outside 1900-01-01 .. 2299-12-31"),
        ((("from", "5"), ("to", "5")), "from must be earlier than to"),
        ((("limit", "0"),), "limit: must be between 1 and 100000"),
        ((("limit", "many"),), "limit: 'many' is not an integer"),
        ((("format", "xml"),), "format: 'xml' is not json or tsv"),
    ],
)
def test_window_query_refuses(pairs: tuple[tuple[str, str], ...], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_window_query(q(*pairs))
    assert str(info.value.detail).startswith(message)


@pytest.mark.parametrize(
    ("pairs", "allowed", "dims", "message"),
    [
        ((("meters", "x"),), ("meter",), False, "unknown parameter(s) meters; allowed: meter"),
        ((("a", "1"), ("b", "2")), (), False, "unknown parameter(s) a, b; allowed: none"),
        ((("dim.k", "v"),), ("meter",), False, "unknown parameter(s) dim.k; allowed: meter"),
        ((("x", "1"),), ("b", "a"), True, "unknown parameter(s) x; allowed: a, b, dim.<key>"),
    ],
)
def test_check_params_refuses(
    pairs: tuple[tuple[str, str], ...], allowed: tuple[str, ...], dims: bool, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        check_params(q(*pairs), allowed, dims=dims)
    assert str(info.value.detail) == message


def test_check_params_accepts_known_and_dimension_parameters() -> None:
    check_params(q(("meter", "a"), ("dim.model", "sd")), ("meter",), dims=True)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((), ()),
        ((("meter", "x"),), ()),
        (
            (("dim.region", "eu"), ("dim.model", "sd"), ("dim.model", "flux")),
            (DimensionFilter("model", ("sd", "flux")), DimensionFilter("region", ("eu",))),
        ),
    ],
)
def test_dimensions(pairs: tuple[tuple[str, str], ...], expected: tuple[DimensionFilter]) -> None:
    assert parse_dimensions(q(*pairs)) == expected


def test_an_empty_dimension_key_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        parse_dimensions(q(("dim.", "x")))
    assert info.value.detail == "dim.<key>=<value>: the key is empty"


@pytest.mark.parametrize(
    ("values", "expected"),
    [((), ()), (("",), ()), (("b", "a", "b", ""), ("a", "b"))],
)
def test_repeated(values: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert repeated(q(*(("meter", v) for v in values)), "meter") == expected


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [(None, 7, 7), ("", 7, 7), (" ", 7, 7), ("1", 7, 1), ("100000", 7, 100_000)],
)
def test_limit(text: str | None, default: int, expected: int) -> None:
    assert parse_limit(text, default=default) == expected


def test_format_defaults_to_json() -> None:
    assert (parse_format(q()), parse_format(q(("format", "tsv")))) == ("json", "tsv")


def test_rows_request() -> None:
    req = parse_rows_request(
        q(("from", "2025-01-01"), ("tz", "Europe/Berlin"), ("kind", "grant"), ("kind", "")),
        ("kind", "grant_id"),
        100,
    )
    assert req.time == TimeRange(JAN_1 - HOUR, None)
    assert req.limit == 100
    assert req.filters == (ColumnFilter("kind", ("grant",)), ColumnFilter("grant_id", ()))


def test_rows_request_refuses_a_bad_range() -> None:
    with pytest.raises(ValidationError) as info:
        parse_rows_request(q(("from", "soon")), (), 100)
    assert str(info.value.detail).startswith("from: 'soon' is neither")
