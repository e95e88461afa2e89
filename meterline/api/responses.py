"""Response bodies shared by the endpoints: listings as JSON or TSV, rows as objects."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from faust.web import Response, View

from meterline.api.store import ResultSet
from sinks.query import to_json, to_tsv

__all__ = ["json_body", "json_response", "records", "table_response"]


def json_body(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], extra: Mapping[str, Any]
) -> bytes:
    """``{"columns": [...], "rows": [...], **extra}``."""
    body = to_json(columns, rows)
    if not extra:
        return body.encode()
    # to_json writes exactly one object: splice the extra keys into it rather than decode
    # and re-encode up to MAX_LIMIT rows.
    return (body[:-1] + ", " + json.dumps(dict(extra), ensure_ascii=False)[1:]).encode()


def records(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as objects, values converted exactly as to_json converts them."""
    return [
        dict(zip(columns, row, strict=True)) for row in json.loads(to_json(columns, rows))["rows"]
    ]


def json_response(view: View, value: Any) -> Response:
    # Encoded as the listings are (non-ASCII kept as is), not by Faust's view.json.
    return view.bytes(
        json.dumps(value, ensure_ascii=False).encode(), content_type="application/json"
    )


def table_response(view: View, result: ResultSet, fmt: str, extra: Mapping[str, Any]) -> Response:
    """A listing in ``fmt`` (json or tsv); ``extra`` keys join the JSON object only."""
    if fmt == "tsv":
        return view.text(to_tsv(result.columns, result.rows))
    return view.bytes(
        json_body(result.columns, result.rows, extra), content_type="application/json"
    )
