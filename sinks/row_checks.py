"""Row checks: what each ClickHouse column type accepts, so a bad row fails its producer when
it is added instead of wedging the sink later, and nothing is silently altered on the way in
(clickhouse-connect truncates a Decimal with more fractional digits than the column's scale,
stores a naive datetime as *local* time, and cannot mix ``str`` and ``bytes`` in one String
column)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any


class RowError(ValueError):
    """A row that cannot be stored exactly as given; it was not buffered."""


Check = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class Spec:
    """What a column accepts: Python types (None = anything), then an optional value check."""

    type_name: str
    types: tuple[type, ...] | None
    nullable: bool = False
    extra: Check | None = None
    string: bool = False


_DECIMAL_RE = re.compile(r"^Decimal\((\d+)(?:,\s*(\d+))?\)$")
_DECIMAL_N_RE = re.compile(r"^Decimal(32|64|128|256)\((\d+)\)$")
_DECIMAL_N_PRECISION = {"32": 9, "64": 18, "128": 38, "256": 76}
# Quantize in a context wide enough for any Decimal256 value; InvalidOperation = inexact.
_EXACT = Context(prec=160, traps=[InvalidOperation])


def _split_args(args: str) -> list[str]:
    """Top-level comma split of a type's arguments: 'String, Array(UInt8)' -> 2 parts."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(args):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(args[start:i].strip())
            start = i + 1
    parts.append(args[start:].strip())
    return parts


def _decimal_extra(precision: int, scale: int) -> Check:
    quantum = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (precision - scale)

    def check(value: Any) -> None:
        if type(value) is not Decimal:
            value = Decimal(value)
        try:
            exact = value.quantize(quantum, context=_EXACT) == value
        except InvalidOperation:
            exact = False
        if not exact or not -limit < value < limit:
            raise RowError(f"{value!r} does not fit Decimal({precision}, {scale}) exactly")

    return check


def _aware(value: Any) -> None:
    if type(value) is not int and value.utcoffset() is None:
        raise RowError(f"naive datetime {value!r}: give it a tzinfo (UTC)")


def _elements(spec: Spec) -> Check:
    def check(value: Any) -> None:
        for v in value:
            check_value(spec, v)

    return check


def _map_items(key: Spec, val: Spec) -> Check:
    def check(value: Any) -> None:
        for k, v in value.items():
            check_value(key, k)
            check_value(val, v)

    return check


def check_value(spec: Spec, value: Any) -> None:
    if spec.types is None:
        return
    if not isinstance(value, spec.types):
        if value is None and spec.nullable:
            return
        raise RowError(f"{value!r} ({type(value).__name__}) for {spec.type_name}")
    if spec.extra is not None:
        spec.extra(value)


def column_spec(type_name: str) -> Spec:
    """The check for a ClickHouse type name, as DESCRIBE TABLE spells it."""
    inner, nullable = type_name, False
    while inner.endswith(")") and inner.startswith(("Nullable(", "LowCardinality(")):
        nullable = nullable or inner.startswith("Nullable(")
        inner = inner[inner.index("(") + 1 : -1]
    match = _DECIMAL_N_RE.match(inner) or _DECIMAL_RE.match(inner)
    if match is not None:
        if inner[7:8].isdigit():
            precision, scale = _DECIMAL_N_PRECISION[match.group(1)], int(match.group(2))
        else:
            precision, scale = int(match.group(1)), int(match.group(2) or 0)
        # float is refused on purpose: money is exact or it is wrong.
        return Spec(type_name, (Decimal, int), nullable, _decimal_extra(precision, scale))
    if inner.startswith("DateTime"):
        # int is raw ticks (epoch seconds, or ms for DateTime64(3)).
        return Spec(type_name, (datetime, int), nullable, _aware)
    if inner.startswith("Date"):
        return Spec(type_name, (date,), nullable)
    if inner == "String" or inner.startswith("FixedString("):
        return Spec(type_name, (str, bytes, bytearray), nullable, string=True)
    if inner.startswith(("Int", "UInt")):
        return Spec(type_name, (int,), nullable)
    if inner.startswith(("Float", "BFloat")):
        return Spec(type_name, (float, int), nullable)
    if inner == "Bool":
        return Spec(type_name, (bool, int), nullable)
    if inner == "UUID":
        return Spec(type_name, (uuid.UUID, str), nullable)
    if inner.startswith("Enum"):
        return Spec(type_name, (str, int), nullable)
    if inner.startswith("Array("):
        element = column_spec(inner[6:-1])
        return Spec(type_name, (list, tuple), nullable, _elements(element))
    if inner.startswith("Map("):
        key, val = _split_args(inner[4:-1])
        return Spec(type_name, (dict,), nullable, _map_items(column_spec(key), column_spec(val)))
    # Tuple, JSON, Variant, IP addresses, ...: left to the driver.
    return Spec(type_name, None, nullable)


# Without the table's types (ClickHouse unreachable when the rows came): refuse what is
# wrong in any column.
def _typeless(value: Any) -> None:
    if isinstance(value, float):
        raise RowError(f"float {value!r}: money and quantities must be Decimal")
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise RowError(f"naive datetime {value!r}: give it a tzinfo (UTC)")
    if isinstance(value, Decimal) and not value.is_finite():
        raise RowError(f"{value!r} is not a finite Decimal")


TYPELESS = Spec("any column", (object,), True, _typeless)
