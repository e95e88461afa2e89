"""Meter definitions and the live meter catalog.

A meter says how events with its code become a number: which aggregation, which field carries
the value, and which dimensions split the usage. Events whose meter code is not declared are not
rejected: they are metered with ``MeterDef.default`` (sum of ``value``, no group-by) so nothing
is lost, and a meter declared later can be recomputed from the stored data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _enc
from typing import Any

from meterline.metering.aggregation import Aggregation
from meterline.metering.decimals import ONE, DecimalValueError, to_storable_decimal

VALUE_FIELD = "value"

_METER_KEYS = frozenset({"code", "aggregation", "value_field", "group_by"})


class MeterValueError(ValueError):
    """An event that cannot be metered (missing or malformed value); the caller DLQs it."""


class MeterDefinitionError(ValueError):
    """A meter definition or catalog change that is malformed."""


def dims_key(dims: Mapping[str, str]) -> str:
    """Canonical text of a dimension map: equal maps give equal keys whatever their order.

    Byte-identical to ``json.dumps(dims, sort_keys=True, separators=(",", ":"))``, built from
    the C string encoder because this runs per event and json.dumps costs 3x as much.
    """
    if not dims:
        return "{}"
    try:
        return "{" + ",".join([_enc(k) + ":" + _enc(dims[k]) for k in sorted(dims)]) + "}"
    except TypeError:  # a non-string key or value: let json decide how it is written
        return json.dumps(dims, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class MeterDef:
    code: str
    aggregation: Aggregation = Aggregation.SUM
    # "value" means the event's value; any other name is a dimension whose value is used (for
    # unique_count: the dimension whose distinct values are counted, e.g. "user_id").
    value_field: str = VALUE_FIELD
    group_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code:
            raise MeterDefinitionError(f"meter code must be a non-empty string, got {self.code!r}")
        try:
            aggregation = Aggregation(self.aggregation)
        except ValueError:
            choices = ", ".join(a.value for a in Aggregation)
            raise MeterDefinitionError(
                f"meter {self.code!r}: unknown aggregation {self.aggregation!r} (one of {choices})"
            ) from None
        object.__setattr__(self, "aggregation", aggregation)
        if not isinstance(self.value_field, str) or not self.value_field:
            raise MeterDefinitionError(
                f"meter {self.code!r}: value_field must be a non-empty string"
            )
        if isinstance(self.group_by, str):
            # A bare string would otherwise be split into one-letter dimensions.
            raise MeterDefinitionError(f"meter {self.code!r}: group_by must be a list of names")
        group_by = tuple(self.group_by)
        if not all(isinstance(g, str) and g for g in group_by):
            raise MeterDefinitionError(f"meter {self.code!r}: group_by names must be non-empty")
        if len(set(group_by)) != len(group_by):
            raise MeterDefinitionError(f"meter {self.code!r}: group_by repeats a dimension")
        object.__setattr__(self, "group_by", group_by)

    @classmethod
    def default(cls, code: str) -> MeterDef:
        return cls(code, Aggregation.SUM, VALUE_FIELD, ())

    @property
    def keeps_uniques(self) -> bool:
        return self.aggregation is Aggregation.UNIQUE_COUNT

    def extract(self, event: Mapping[str, Any]) -> tuple[Decimal, str | None]:
        """(numeric value, distinct value) of one event; raises ``MeterValueError``.

        count and unique_count meters ignore the event's value (it is 1), so a count event with
        a missing or odd value is still counted rather than sent to the DLQ.
        """
        aggregation = self.aggregation
        if aggregation is Aggregation.COUNT:
            return ONE, None
        field = self.value_field
        if field == VALUE_FIELD:
            raw = event.get(VALUE_FIELD)
        else:
            dims = event.get("dimensions")
            raw = dims.get(field) if dims else None
        if raw is None:
            where = "a value" if field == VALUE_FIELD else f"dimension {field!r}"
            raise MeterValueError(f"meter {self.code!r} needs {where}; the event has none")
        if aggregation is Aggregation.UNIQUE_COUNT:
            if field == VALUE_FIELD:
                try:
                    number = to_storable_decimal(raw, "value")
                except DecimalValueError as exc:
                    raise MeterValueError(f"meter {self.code!r}: {exc}") from None
                # normalize() so 1, 1.0 and 1.00 count as one distinct value.
                return ONE, str(number.normalize())
            return ONE, raw if isinstance(raw, str) else str(raw)
        try:
            return to_storable_decimal(raw, "value" if field == VALUE_FIELD else field), None
        except DecimalValueError as exc:
            raise MeterValueError(f"meter {self.code!r}: {exc}") from None

    def group_dims(self, dims: Mapping[str, str] | None) -> dict[str, str]:
        """The group-by dimensions present in ``dims``; others are dropped so they cannot
        explode the number of windows."""
        if not self.group_by or not dims:
            return {}
        return {k: dims[k] for k in self.group_by if k in dims}

    dims_key = staticmethod(dims_key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "aggregation": self.aggregation.value,
            "value_field": self.value_field,
            "group_by": list(self.group_by),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeterDef:
        if not isinstance(data, Mapping):
            raise MeterDefinitionError(f"a meter must be an object, got {data!r}")
        unknown = set(data) - _METER_KEYS
        if unknown:
            # Strict on purpose: a misspelt "groupby" would otherwise silently merge dimensions.
            raise MeterDefinitionError(
                f"meter {data.get('code')!r}: unknown field(s) {', '.join(sorted(unknown))}"
            )
        if "code" not in data:
            raise MeterDefinitionError(f"meter without a code: {dict(data)!r}")
        return cls(
            data["code"],
            data.get("aggregation", Aggregation.SUM),
            data.get("value_field", VALUE_FIELD),
            data.get("group_by") or (),
        )


class MeterCatalog:
    """Declared meters by code, changed by versioned catalog records.

    Versions only move forward, per meter code: a change whose version is not above the last one
    applied to that code is ignored, so replaying the catalog topic after a restart (or receiving
    it twice) is harmless. Per code, not catalog-wide: a catalog change's version is its time,
    and one meter's newer change must not shadow another meter's older one (nor the seed, whose
    version is 0, be ignored as "not newer" than an empty catalog).
    """

    __slots__ = ("_defaults", "_meters", "_versions", "version")

    # Undeclared codes come from producers, so their cached defaults must not grow unbounded.
    _MAX_DEFAULTS = 4096

    def __init__(self, meters: Iterable[MeterDef] = (), version: int = 0) -> None:
        self._meters: dict[str, MeterDef] = {}
        for meter in meters:
            if meter.code in self._meters:
                raise MeterDefinitionError(f"meter {meter.code!r} is declared twice")
            self._meters[meter.code] = meter
        self._defaults: dict[str, MeterDef] = {}
        self._versions: dict[str, int] = dict.fromkeys(self._meters, version)
        self.version = version

    def get(self, code: str) -> MeterDef:
        meter = self._meters.get(code)
        if meter is not None:
            return meter
        meter = self._defaults.get(code)
        if meter is None:
            if len(self._defaults) >= self._MAX_DEFAULTS:
                self._defaults.clear()
            meter = self._defaults[code] = MeterDef.default(code)
        return meter

    def declared(self, code: str) -> MeterDef | None:
        return self._meters.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._meters

    def __iter__(self) -> Iterator[MeterDef]:
        return iter(self._meters.values())

    def __len__(self) -> int:
        return len(self._meters)

    def apply(self, change: Mapping[str, Any]) -> bool:
        """Apply one catalog change; returns False when its version was already applied.

        ``{"version": 7, "op": "upsert", "meter": {...MeterDef.to_dict()...}}`` or
        ``{"version": 8, "op": "delete", "code": "api_calls"}``. A deleted code falls back to
        the default meter (its events are still metered, never dropped).
        """
        version = change.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise MeterDefinitionError(f"catalog change without an integer version: {change!r}")
        op = change.get("op")
        if op == "upsert":
            meter = MeterDef.from_dict(change.get("meter") or {})
            code = meter.code
        elif op == "delete":
            code = change.get("code")
            if not isinstance(code, str) or not code:
                raise MeterDefinitionError(f"delete without a meter code: {change!r}")
        else:
            raise MeterDefinitionError(f"unknown meter change op {op!r} (upsert or delete)")
        # Validate before the version check so a malformed change is reported, not skipped.
        if code in self._versions and version <= self._versions[code]:
            return False
        if op == "upsert":
            self._meters[code] = meter
        else:
            self._meters.pop(code, None)
        self._defaults.pop(code, None)
        self._versions[code] = version
        self.version = max(self.version, version)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "meters": [self._meters[c].to_dict() for c in sorted(self._meters)],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeterCatalog:
        return cls(
            (MeterDef.from_dict(m) for m in data.get("meters", ())),
            int(data.get("version", 0)),
        )
