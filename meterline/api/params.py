"""Query-parameter parsing and validation for the HTTP API.

Pure functions; a bad value raises Faust's ``ValidationError``, which Faust answers with 400
and ``{"error": "..."}`` before any query runs.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from faust.web import Request
from faust.web.exceptions import ValidationError
from multidict import MultiMapping

from sinks.queries import ColumnFilter, DimensionFilter, TimeRange

__all__ = [
    "DEFAULT_LIMIT",
    "DIM_PREFIX",
    "MAX_LIMIT",
    "WINDOWS",
    "RowsRequest",
    "WindowQuery",
    "check_params",
    "parse_dimensions",
    "parse_format",
    "parse_instant",
    "parse_limit",
    "parse_rows_request",
    "parse_time_range",
    "parse_tz",
    "parse_window_query",
    "repeated",
    "request_query",
]

WINDOWS = ("minute", "hour", "day", "month")
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000
DIM_PREFIX = "dim."

# DateTime64(3) holds 1900-01-01 .. 2299-12-31; outside it ClickHouse wraps silently and
# clickhouse-connect cannot even decode the result, so such bounds are refused up front.
_MIN_MS = -2_208_988_800_000
_MAX_MS = 10_413_791_999_999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS_RE = re.compile(r"-?\d{1,16}")
# Zone names as tzdata spells them; checked on top of the zone list so that nothing odd
# (quotes, '..', absolute paths) ever reaches ZoneInfo or ClickHouse.
_TZ_NAME_RE = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")


def request_query(request: Request) -> MultiMapping[str]:
    """The query parameters with their repeats (Faust types ``Request.query`` as a plain
    Mapping; it is aiohttp's MultiDictProxy)."""
    return cast("MultiMapping[str]", request.query)


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    # Reads the tz database from disk: once per process is enough.
    return frozenset(zoneinfo.available_timezones())


def parse_tz(text: str | None) -> tuple[str, zoneinfo.ZoneInfo]:
    """The IANA zone name and its ZoneInfo; UTC when absent."""
    name = (text or "UTC").strip()
    if not _TZ_NAME_RE.fullmatch(name) or name not in _known_zones():
        raise ValidationError(f"unknown time zone {name!r}: use an IANA name like Europe/Berlin")
    return name, zoneinfo.ZoneInfo(name)


def parse_instant(text: str, tz: zoneinfo.ZoneInfo, name: str) -> int:
    """Epoch milliseconds from epoch ms digits or ISO-8601; a naive ISO time is read in ``tz``
    (so ``from=2025-03-01`` with ``tz=Europe/Berlin`` is Berlin's midnight)."""
    text = text.strip()
    if _EPOCH_MS_RE.fullmatch(text):
        ms = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                f"{name}: {text!r} is neither epoch milliseconds nor ISO-8601"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        # timedelta arithmetic is exact; .timestamp() goes through a float.
        ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ValidationError(f"{name}: {text!r} is outside 1900-01-01 .. 2299-12-31")
    return ms


def parse_time_range(query: MultiMapping[str], tz: zoneinfo.ZoneInfo) -> TimeRange:
    """``from`` and ``to`` (each optional), half-open, from strictly before to."""
    start = parse_instant(query["from"], tz, "from") if query.get("from") else None
    end = parse_instant(query["to"], tz, "to") if query.get("to") else None
    if start is not None and end is not None and start >= end:
        raise ValidationError("from must be earlier than to")
    return TimeRange(start, end)


def parse_limit(text: str | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if text is None or text.strip() == "":
        return default
    try:
        limit = int(text)
    except ValueError:
        raise ValidationError(f"limit: {text!r} is not an integer") from None
    if not 1 <= limit <= maximum:
        raise ValidationError(f"limit: must be between 1 and {maximum}")
    return limit


def parse_dimensions(query: MultiMapping[str]) -> tuple[DimensionFilter, ...]:
    """``dim.<key>=<value>`` filters: keys are ANDed, repeated values of one key ORed."""
    dims: dict[str, list[str]] = {}
    for name, value in query.items():
        if name.startswith(DIM_PREFIX):
            key = name[len(DIM_PREFIX) :]
            if not key:
                raise ValidationError("dim.<key>=<value>: the key is empty")
            dims.setdefault(key, []).append(value)
    return tuple(DimensionFilter(key, tuple(values)) for key, values in sorted(dims.items()))


def check_params(query: MultiMapping[str], allowed: Iterable[str], dims: bool = False) -> None:
    # A mistyped parameter would otherwise be ignored and answer a different question.
    known = set(allowed)
    unknown = sorted(
        {k for k in query if k not in known and not (dims and k.startswith(DIM_PREFIX))}
    )
    if unknown:
        extra = ", dim.<key>" if dims else ""
        raise ValidationError(
            f"unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(known)) or 'none'}{extra}"
        )


def repeated(query: MultiMapping[str], name: str) -> tuple[str, ...]:
    """The distinct values of a repeatable parameter, sorted."""
    # An empty value means "no filter", as `meterline usage` sends meter= by default.
    return tuple(sorted({v for v in query.getall(name, []) if v != ""}))


def parse_format(query: MultiMapping[str]) -> str:
    fmt = query.get("format", "json")
    if fmt not in ("json", "tsv"):
        raise ValidationError(f"format: {fmt!r} is not json or tsv")
    return fmt


@dataclass(frozen=True)
class WindowQuery:
    """The common parameters of /usage and /tokens, validated."""

    window: str
    tz: str
    start_ms: int | None
    end_ms: int | None
    limit: int
    fmt: str

    @property
    def time(self) -> TimeRange:
        return TimeRange(self.start_ms, self.end_ms)

    def meta(self) -> dict[str, Any]:
        return {"window": self.window, "tz": self.tz, "from": self.start_ms, "to": self.end_ms}


def parse_window_query(query: MultiMapping[str]) -> WindowQuery:
    window = query.get("window", "hour")
    if window not in WINDOWS:
        raise ValidationError(f"window: {window!r} is not one of {', '.join(WINDOWS)}")
    tz_name, tz = parse_tz(query.get("tz"))
    time = parse_time_range(query, tz)
    return WindowQuery(
        window,
        tz_name,
        time.start_ms,
        time.end_ms,
        parse_limit(query.get("limit")),
        parse_format(query),
    )


@dataclass(frozen=True)
class RowsRequest:
    """The common parameters of the billing listings, validated."""

    time: TimeRange
    limit: int
    filters: tuple[ColumnFilter, ...]


def parse_rows_request(
    query: MultiMapping[str], filters: Sequence[str], default_limit: int
) -> RowsRequest:
    """from, to, tz and limit, plus each of ``filters`` as a repeatable exact-match column."""
    _, tz = parse_tz(query.get("tz"))
    time = parse_time_range(query, tz)
    limit = parse_limit(query.get("limit"), default=default_limit)
    return RowsRequest(time, limit, tuple(ColumnFilter(c, repeated(query, c)) for c in filters))
