"""Event time: one-minute base windows (UTC-aligned 60 s; every modern offset is a whole
number of minutes), how far an event may be from the wall clock, and instants as text.

Times are integer milliseconds since the Unix epoch (UTC) everywhere; conversions use integer
``timedelta`` arithmetic, never float seconds, so a boundary is never off by a rounding error.
Hour, day and month roll-ups in a time zone are computed by ClickHouse at query time
(``usage_windows_tz``), from the raw events, with the meters in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_epoch_ms(dt: datetime) -> int:
    """An aware datetime as epoch milliseconds, exactly (no float on the way)."""
    return (dt - _EPOCH) // _ONE_MS


def minute_start(ts_ms: int) -> int:
    return ts_ms - ts_ms % MINUTE_MS


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
        return to_epoch_ms(dt)
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
