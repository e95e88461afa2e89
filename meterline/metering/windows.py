"""Event-time windows: one-minute base windows and hour/day/month roll-ups in a time zone.

Times are integer milliseconds since the Unix epoch (UTC) everywhere; conversions use integer
``timedelta`` arithmetic, never float seconds, so a boundary is never off by a rounding error.

Roll-up windows partition time and nest (minute ⊂ hour ⊂ day ⊂ month), in any zone:

* minute: UTC-aligned 60 s (every modern offset is a whole number of minutes);
* hour: the local wall-clock hour, cut at a UTC-offset change. In whole-hour zones this is the
  UTC hour; in +05:30 it starts at :30 UTC; on a fall-back night the repeated local hour is two
  windows; on Lord Howe's 30-minute DST shift the hour around the change is split;
* day: from the first instant of a local date to the first instant of the next (23 h or 25 h
  on DST days);
* month: the calendar month in that zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

WindowSize = Literal["minute", "hour", "day", "month"]
WINDOW_SIZES: tuple[WindowSize, ...] = get_args(WindowSize)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


@lru_cache(maxsize=512)
def zone(tz: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, with a plain ValueError for unknown names."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def _local(ts_ms: int, z: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ts_ms)).astimezone(z)


def _to_ms(dt: datetime) -> int:
    return (dt - _EPOCH) // _ONE_MS


def _offset_ms(ts_ms: int, z: ZoneInfo) -> int:
    offset = _local(ts_ms, z).utcoffset()
    assert offset is not None
    return offset // _ONE_MS


def _change_point(lo: int, hi: int, z: ZoneInfo) -> int:
    """Smallest instant in (lo, hi] whose UTC offset differs from lo's (one change assumed)."""
    off_lo = _offset_ms(lo, z)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_ms(mid, z) == off_lo:
            lo = mid
        else:
            hi = mid
    return hi


def minute_start(ts_ms: int) -> int:
    return ts_ms - ts_ms % MINUTE_MS


def _hour_start(ts_ms: int, z: ZoneInfo) -> int:
    off = _offset_ms(ts_ms, z)
    start = ts_ms - (ts_ms + off) % HOUR_MS
    if start < ts_ms and _offset_ms(start, z) != off:
        # The offset changed inside this local hour: the window starts at the change.
        start = _change_point(start, ts_ms, z)
    return start


def _hour_end(ts_ms: int, z: ZoneInfo) -> int:
    off = _offset_ms(ts_ms, z)
    end = ts_ms - (ts_ms + off) % HOUR_MS + HOUR_MS
    if _offset_ms(end, z) != off:
        end = _change_point(ts_ms, end, z)
    return end


@lru_cache(maxsize=8192)
def _date_start(ordinal: int, tz: str) -> int:
    # fold=0 resolves a midnight inside a DST gap (e.g. America/Santiago) to the transition.
    return _to_ms(datetime.combine(date.fromordinal(ordinal), time(0), tzinfo=zone(tz)))


@lru_cache(maxsize=4096)
def _month_start(month_index: int, tz: str) -> int:
    year, month0 = divmod(month_index, 12)
    return _to_ms(datetime(year, month0 + 1, 1, tzinfo=zone(tz)))


def _day_start(ts_ms: int, tz: str) -> int:
    day = _local(ts_ms, zone(tz)).toordinal()
    start = _date_start(day, tz)
    # The latest boundary at or before ts: also right where a DST change crosses midnight.
    if start > ts_ms:
        return _date_start(day - 1, tz)
    following = _date_start(day + 1, tz)
    return following if following <= ts_ms else start


def _month_index(ts_ms: int, tz: str) -> int:
    local = _local(ts_ms, zone(tz))
    return local.year * 12 + local.month - 1


def _month_start_of(ts_ms: int, tz: str) -> int:
    index = _month_index(ts_ms, tz)
    start = _month_start(index, tz)
    if start > ts_ms:
        return _month_start(index - 1, tz)
    following = _month_start(index + 1, tz)
    return following if following <= ts_ms else start


def rollup_start(ts_ms: int, size: WindowSize, tz: str = "UTC") -> int:
    """Start (UTC ms) of the ``size`` window of zone ``tz`` that contains ``ts_ms``."""
    if size == "minute":
        return ts_ms - ts_ms % MINUTE_MS
    if tz == "UTC":
        # Fast path: no zone lookups for the default zone's fixed-length windows.
        if size == "hour":
            return ts_ms - ts_ms % HOUR_MS
        if size == "day":
            return ts_ms - ts_ms % DAY_MS
    if size == "hour":
        return _hour_start(ts_ms, zone(tz))
    if size == "day":
        return _day_start(ts_ms, tz)
    if size == "month":
        return _month_start_of(ts_ms, tz)
    raise ValueError(f"unknown window size {size!r} (one of {', '.join(WINDOW_SIZES)})")


def window_end(start: int, size: WindowSize, tz: str = "UTC") -> int:
    """End (exclusive, UTC ms) of the ``size`` window that contains ``start``."""
    if size == "minute":
        return start - start % MINUTE_MS + MINUTE_MS
    if tz == "UTC":
        if size == "hour":
            return start - start % HOUR_MS + HOUR_MS
        if size == "day":
            return start - start % DAY_MS + DAY_MS
    if size == "hour":
        return _hour_end(start, zone(tz))
    if size == "day":
        first = _day_start(start, tz)
        return _date_start(_local(first, zone(tz)).toordinal() + 1, tz)
    if size == "month":
        first = _month_start_of(start, tz)
        return _month_start(_month_index(first, tz) + 1, tz)
    raise ValueError(f"unknown window size {size!r} (one of {', '.join(WINDOW_SIZES)})")


def window_closes_at(window_start_ms: int, grace_ms: int) -> int:
    """Watermark at which a minute window closes: its end plus the grace period."""
    return window_start_ms + MINUTE_MS + grace_ms


def is_late(window_start_ms: int, watermark_ms: int, grace_ms: int) -> bool:
    """True when the minute window is already closed, so a new event for it is a correction."""
    return watermark_ms >= window_start_ms + MINUTE_MS + grace_ms


def format_instant(ts_ms: int) -> str:
    """ISO-8601 UTC with milliseconds (``2026-03-01T12:00:00.000Z``), for messages and logs."""
    try:
        dt = _EPOCH + timedelta(milliseconds=ts_ms)
    except OverflowError:
        return f"{ts_ms} ms since epoch"
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_instant_ms(value: Any, what: str = "time") -> int:
    """Milliseconds since epoch from an int, or an ISO-8601 string that carries its zone."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an ISO-8601 time") from None
        if dt.tzinfo is None:
            # A naive time would be read in the server's zone: ambiguous for billing.
            raise ValueError(f"{what} {value!r} has no time zone (add Z or +hh:mm)")
        return _to_ms(dt)
    raise ValueError(f"{what} {value!r} must be epoch milliseconds or an ISO-8601 string")


def _format_duration(ms: int) -> str:
    """412 s under an hour; 35 d 2 h 0.5 s above: exact, zero parts dropped."""
    if ms < HOUR_MS:
        seconds, rest = divmod(ms, 1000)
        return f"{seconds}.{rest:03d}".rstrip("0").rstrip(".") + " s"
    days, ms = divmod(ms, DAY_MS)
    hours, ms = divmod(ms, HOUR_MS)
    minutes, ms = divmod(ms, MINUTE_MS)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if ms:
        seconds, rest = divmod(ms, 1000)
        parts.append(f"{seconds}.{rest:03d}".rstrip("0").rstrip(".") + " s")
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class EventTimeLimits:
    """How far an event time may be from the wall clock before it goes to the DLQ.

    Future: clock-skewed producers would otherwise open windows nobody can close. Past: older
    than the dedup horizon, a duplicate can no longer be recognised.
    """

    max_future_ms: int = 5 * MINUTE_MS
    max_past_ms: int = 35 * DAY_MS

    def check(self, ts_ms: int, now_ms: int) -> str | None:
        ahead = ts_ms - now_ms
        if ahead > self.max_future_ms:
            return (
                f"timestamp {format_instant(ts_ms)} is {_format_duration(ahead)} in the future "
                f"(limit {_format_duration(self.max_future_ms)})"
            )
        if -ahead > self.max_past_ms:
            return (
                f"timestamp {format_instant(ts_ms)} is {_format_duration(-ahead)} in the past "
                f"(limit {_format_duration(self.max_past_ms)})"
            )
        return None
