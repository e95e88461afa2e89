"""Billing periods: calendar months from a billing anchor, in the customer's time zone.

Every period starts on the anchor's local day-of-month and local time of day. A month too short
for the anchor day starts on its last day instead (anchor 31 → 28/29 Feb, 30 Apr), and the next
month goes back to the anchor day, so periods do not drift. Boundaries are computed in local time
and only then converted to UTC, so a period spanning a DST change is an hour shorter or longer in
UTC but always starts at the same wall-clock time. A local time that does not exist (a DST gap)
is resolved the way ``zoneinfo`` does with ``fold=0``: with the offset in force before the gap.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _local(at_ms: int, zone: ZoneInfo) -> datetime:
    # Integer arithmetic throughout: a float timestamp would lose milliseconds far from 1970.
    return (_EPOCH + at_ms * _MS).astimezone(zone)


def _to_ms(dt: datetime) -> int:
    return (dt - _EPOCH) // _MS


@dataclass(frozen=True, slots=True)
class BillingAnchor:
    anchor_at: int  # epoch ms; its local day and time of day fix every boundary
    tz: str = "UTC"

    def __post_init__(self) -> None:
        ZoneInfo(self.tz)  # unknown zones fail at the command, not at period close

    def to_dict(self) -> dict[str, Any]:
        return {"anchor_at": self.anchor_at, "tz": self.tz}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BillingAnchor:
        return cls(int(data["anchor_at"]), data.get("tz", "UTC"))


@dataclass(frozen=True, slots=True)
class Period:
    start: int
    end: int
    index: int  # months after the anchor's own period (negative before it)

    def contains(self, at: int) -> bool:
        return self.start <= at < self.end

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "index": self.index}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Period:
        return cls(int(data["start"]), int(data["end"]), int(data["index"]))


def boundary(anchor: BillingAnchor, index: int) -> int:
    """Start (epoch ms) of the period ``index`` months after the anchor's."""
    zone = ZoneInfo(anchor.tz)
    a = _local(anchor.anchor_at, zone)
    years, month0 = divmod(a.month - 1 + index, 12)
    year, month = a.year + years, month0 + 1
    day = min(a.day, calendar.monthrange(year, month)[1])
    local = datetime(year, month, day, a.hour, a.minute, a.second, a.microsecond, tzinfo=zone)
    return _to_ms(local)


def period_by_index(anchor: BillingAnchor, index: int) -> Period:
    return Period(boundary(anchor, index), boundary(anchor, index + 1), index)


def period_at(anchor: BillingAnchor, at: int) -> Period:
    """The period containing ``at``."""
    zone = ZoneInfo(anchor.tz)
    a, t = _local(anchor.anchor_at, zone), _local(at, zone)
    index = (t.year - a.year) * 12 + (t.month - a.month)
    # The month difference is off by at most one (before the anchor day, or clamping).
    while at < boundary(anchor, index):
        index -= 1
    while at >= boundary(anchor, index + 1):
        index += 1
    return period_by_index(anchor, index)


def next_period(anchor: BillingAnchor, period: Period) -> Period:
    return period_by_index(anchor, period.index + 1)
