"""Checking a record against its Avro schema before fastavro writes it, with errors that name
the field: fastavro would otherwise write wrong data or fail with a message about its own
internals. ``prepare`` also turns the shapes Meterline's records use (Decimal, int ms, tagged
unions) into what fastavro expects, and fills defaults of evolved schemas."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from schemas.names import full_name
from schemas.validate import _WIDE, MAX_LONG, DecodeError, _kind, show, to_decimal

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), MAX_LONG)}


def _branch_name(branch: Any, named: dict[str, Any]) -> str:
    if isinstance(branch, str):
        return branch
    if isinstance(branch, dict):
        return branch.get("name") or str(branch.get("type"))
    return "union"


def _is_record(branch: Any, named: dict[str, Any]) -> bool:
    if isinstance(branch, str):
        branch = named.get(branch)
    return isinstance(branch, dict) and branch.get("type") in ("record", "error")


def _label(path: str) -> str:
    return f"field {path!r}" if path else "record"


def prepare(schema: Any, datum: Any, named: dict[str, Any], path: str = "") -> Any:
    """``datum`` checked against a fastavro-parsed ``schema`` and made writable: decimals
    converted and range-checked, missing fields filled from defaults (fastavro cannot write a
    decimal default itself), a record in a union tagged ``(full name, record)``.

    Accepted union spellings: ``(name, record)`` tuples (what the decoder returns), dicts with
    fastavro's ``"-type"`` key, or an untagged dict that fits exactly one record branch."""
    if isinstance(schema, str):
        if schema in _PRIMITIVE_CHECKS:
            return _PRIMITIVE_CHECKS[schema](datum, path)
        return prepare(named[schema], datum, named, path)
    if isinstance(schema, list):
        return _prepare_union(schema, datum, named, path)
    t = schema["type"]
    if schema.get("logicalType") == "decimal" and t == "bytes":
        return to_decimal(datum, path, schema.get("scale", 0), schema["precision"])
    if t in ("record", "error"):
        return _prepare_record(schema, datum, named, path)
    if t == "enum":
        if type(datum) is not str or datum not in schema["symbols"]:
            choices = ", ".join(schema["symbols"])
            raise DecodeError(f"{_label(path)}: {show(datum)} is not one of {choices}")
        return datum
    if t == "array":
        if not isinstance(datum, list | tuple):
            raise DecodeError(f"{_label(path)}: expected a list, got {_kind(datum)}")
        return [prepare(schema["items"], x, named, f"{path}[{i}]") for i, x in enumerate(datum)]
    if t == "map":
        if not isinstance(datum, dict):
            raise DecodeError(f"{_label(path)}: expected an object, got {_kind(datum)}")
        out = {}
        for k, v in datum.items():
            if type(k) is not str:
                raise DecodeError(f"{_label(path)}: key {show(k)} is not a string")
            out[k] = prepare(schema["values"], v, named, f"{path}.{k}")
        return out
    if t == "fixed":
        if not isinstance(datum, bytes | bytearray) or len(datum) != schema["size"]:
            raise DecodeError(f"{_label(path)}: expected {schema['size']} bytes, got {show(datum)}")
        return bytes(datum)
    if isinstance(t, dict | list):
        return prepare(t, datum, named, path)
    return _PRIMITIVE_CHECKS[t](datum, path)


def _prepare_record(schema: dict[str, Any], datum: Any, named: dict[str, Any], path: str) -> Any:
    if not isinstance(datum, dict):
        raise DecodeError(f"{_label(path)}: expected an object, got {_kind(datum)}")
    fields = schema["fields"]
    unknown = datum.keys() - {f["name"] for f in fields}
    if unknown:
        raise DecodeError(
            f"{_label(path)}: unknown field(s) {', '.join(sorted(map(str, unknown)))} "
            f"for {schema['name']}"
        )
    out: dict[str, Any] = {}
    for f in fields:
        name = f["name"]
        sub = f"{path}.{name}" if path else name
        if name in datum:
            out[name] = prepare(f["type"], datum[name], named, sub)
        elif "default" in f:
            out[name] = default_value(f["type"], f["default"], named)
        else:
            raise DecodeError(f"missing field {sub!r}")
    return out


def _prepare_union(branches: list[Any], datum: Any, named: dict[str, Any], path: str) -> Any:
    if datum is None:
        if "null" in branches:
            return None
        raise DecodeError(f"{_label(path)}: must not be null")
    candidates = [b for b in branches if b != "null"]
    tag: str | None = None
    body = datum
    if type(datum) is tuple and len(datum) == 2 and type(datum[0]) is str:
        tag, body = datum
    elif type(datum) is dict and "-type" in datum:
        tag = datum["-type"]
        body = {k: v for k, v in datum.items() if k != "-type"}
    if tag is not None:
        wanted = full_name(tag)
        for b in candidates:
            if _branch_name(b, named) == wanted:
                return (wanted, prepare(b, body, named, path))
        choices = ", ".join(_branch_name(b, named) for b in candidates)
        raise DecodeError(f"{_label(path)}: {show(tag)} is not one of {choices}")
    matches: list[tuple[Any, Any]] = []
    errors: list[str] = []
    for b in candidates:
        try:
            matches.append((b, prepare(b, datum, named, path)))
        except DecodeError as exc:
            errors.append(f"{_branch_name(b, named)}: {exc}")
    if not matches:
        if len(candidates) == 1:
            raise DecodeError(errors[0].partition(": ")[2])
        raise DecodeError(f"{_label(path)}: fits none of the union's types ({'; '.join(errors)})")
    records = [m for m in matches if _is_record(m[0], named)]
    if len(records) > 1:
        names = ", ".join(_branch_name(b, named) for b, _ in records)
        raise DecodeError(
            f"{_label(path)}: ambiguous, fits {names}; tag it as (record name, record)"
        )
    b, value = matches[0]
    if _is_record(b, named):
        return (_branch_name(b, named), value)
    return value


def default_value(schema: Any, default: Any, named: dict[str, Any]) -> Any:
    """A field default as written in the schema JSON → the Python value the writer expects."""
    if isinstance(schema, str):
        if schema == "bytes":
            return default.encode("latin-1")
        if schema in _PRIMITIVE_CHECKS:
            return copy.deepcopy(default)
        return default_value(named[schema], default, named)
    if isinstance(schema, list):
        # Avro: a union's default belongs to its first branch.
        return default_value(schema[0], default, named)
    t = schema["type"]
    if schema.get("logicalType") == "decimal" and t == "bytes":
        unscaled = int.from_bytes(default.encode("latin-1"), "big", signed=True)
        return Decimal(unscaled).scaleb(-schema.get("scale", 0), context=_WIDE)
    if t in ("record", "error"):
        return {
            f["name"]: default_value(
                f["type"], default[f["name"]] if f["name"] in default else f["default"], named
            )
            for f in schema["fields"]
        }
    if t == "array":
        return [default_value(schema["items"], x, named) for x in default]
    if t == "map":
        return {k: default_value(schema["values"], v, named) for k, v in default.items()}
    if t == "fixed":
        return default.encode("latin-1")
    if isinstance(t, dict | list):
        return default_value(t, default, named)
    return default_value(t, default, named)


def _check_null(datum: Any, path: str) -> None:
    if datum is not None:
        raise DecodeError(f"{_label(path)}: expected null, got {show(datum)}")


def _check_bool(datum: Any, path: str) -> bool:
    if type(datum) is not bool:
        raise DecodeError(f"{_label(path)}: expected true or false, got {show(datum)}")
    return datum


def _integer(kind: str) -> Callable[[Any, str], int]:
    lo, hi = _INT_RANGE[kind]

    def check(datum: Any, path: str) -> int:
        if type(datum) is not int:
            raise DecodeError(f"{_label(path)}: expected an integer, got {show(datum)}")
        if not lo <= datum <= hi:
            raise DecodeError(f"{_label(path)}: {datum} does not fit an Avro {kind}")
        return datum

    return check


def _check_float(datum: Any, path: str) -> float:
    if type(datum) not in (int, float):
        raise DecodeError(f"{_label(path)}: expected a number, got {show(datum)}")
    return float(datum)


def _check_string(datum: Any, path: str) -> str:
    if type(datum) is not str:
        raise DecodeError(f"{_label(path)}: expected a string, got {show(datum)}")
    return datum


def _check_bytes(datum: Any, path: str) -> bytes:
    if not isinstance(datum, bytes | bytearray | memoryview):
        raise DecodeError(f"{_label(path)}: expected bytes, got {show(datum)}")
    return bytes(datum)


_PRIMITIVE_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "null": _check_null,
    "boolean": _check_bool,
    "int": _integer("int"),
    "long": _integer("long"),
    "float": _check_float,
    "double": _check_float,
    "string": _check_string,
    "bytes": _check_bytes,
}
