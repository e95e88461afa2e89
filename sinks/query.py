"""Running analyst SQL and printing its result (CLI ``meterline sql``, the HTTP API).

Values keep their exact types up to the output: Decimals print as plain decimal strings
(never exponent notation or floats), datetimes as ISO-8601 UTC.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from meterline.billing.money import plain
from sinks.client import AnyClient

__all__ = ["format_decimal", "format_value", "query_rows", "to_json", "to_tsv"]


def query_rows(
    client: AnyClient,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of ``sql``.

    ``params`` binds ``{name:Type}`` placeholders server-side (or ``%(name)s`` client-side),
    so values never need quoting into the SQL.
    """
    result = client.query(
        sql, dict(params) if params else None, settings=dict(settings) if settings else None
    )
    return list(result.column_names), [tuple(row) for row in result.result_rows]


def format_decimal(value: Decimal) -> str:
    """Plain notation without trailing zeros, as ClickHouse prints it: 1E-12 -> 0.000000000001.
    The one rule of every output (meterline/billing/money.py), so the API and the
    meterline.invoices records print a value alike."""
    return plain(value)


def _format_datetime(value: datetime) -> str:
    # clickhouse-connect hands back naive datetimes as UTC unless asked for aware ones.
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value.microsecond == 0:
        spec = "seconds"
    elif value.microsecond % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, datetime):
        return _format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        # Raw payloads (dlq) are not always UTF-8; escapes keep them readable and lossless.
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (uuid.UUID, IPv4Address, IPv6Address)):
        return str(value)
    return str(value)


def format_value(value: Any) -> str:
    """One value as TSV text (before escaping)."""
    if value is None:
        return "\\N"
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    jsonable = _jsonable(value)
    if isinstance(jsonable, bool):
        return "true" if jsonable else "false"
    return str(jsonable)


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def to_tsv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Header line, then one line per row; tabs, newlines and backslashes escaped as
    ClickHouse's TabSeparated does, NULL as \\N. No trailing newline."""
    lines = ["\t".join(c.translate(_TSV_ESCAPES) for c in columns)]
    for row in rows:
        cells = []
        for value in row:
            text = format_value(value)
            cells.append(text if value is None else text.translate(_TSV_ESCAPES))
        lines.append("\t".join(cells))
    return "\n".join(lines)


def to_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """``{"columns": [...], "rows": [[...], ...]}``: Decimals as strings, datetimes ISO-8601
    UTC, maps as objects."""
    return json.dumps(
        {"columns": list(columns), "rows": [[_jsonable(v) for v in row] for row in rows]},
        ensure_ascii=False,
    )
