"""Event time: one-minute windows, event-time limits, and instants as text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.metering.windows import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    EventTimeLimits,
    format_instant,
    minute_start,
    parse_instant_ms,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


def ms(dt: datetime) -> int:
    return (dt - EPOCH) // ONE_MS


def iso(text: str) -> int:
    return ms(datetime.fromisoformat(text))


@given(st.integers(0, 10**13))
def test_minute_start_is_the_utc_minute(ts: int) -> None:
    start = minute_start(ts)
    assert start <= ts < start + MINUTE_MS
    assert start % MINUTE_MS == 0


def test_event_time_limits_reasons() -> None:
    limits = EventTimeLimits(max_future_ms=300_000, max_past_ms=35 * DAY_MS)
    now = iso("2026-03-01T12:00:00Z")
    assert limits.check(now, now) is None
    assert limits.check(now + 300_000, now) is None
    assert limits.check(now - 35 * DAY_MS, now) is None
    assert limits.check(now + 412_000, now) == (
        "timestamp 2026-03-01T12:06:52.000Z is 412 s in the future (limit 300 s)"
    )
    assert limits.check(now + 300_001, now) == (
        "timestamp 2026-03-01T12:05:00.001Z is 300.001 s in the future (limit 300 s)"
    )
    assert limits.check(now - 36 * DAY_MS - 2 * HOUR_MS - 500, now) == (
        "timestamp 2026-01-24T09:59:59.500Z is 36 d 2 h 0.5 s in the past (limit 35 d)"
    )
    assert EventTimeLimits() == limits


@given(st.integers(-(10**13), 10**13), st.integers(0, 10**12), st.integers(0, 10**12))
def test_event_time_limits_accept_exactly_the_window(ts: int, future: int, past: int) -> None:
    now = 1_770_000_000_000
    limits = EventTimeLimits(future, past)
    reason = limits.check(now + ts, now)
    assert (reason is None) == (-past <= ts <= future)
    if reason is not None:
        assert ("future" in reason) == (ts > 0)


def test_instant_parsing_and_formatting() -> None:
    assert parse_instant_ms("2026-01-01T00:00:00Z") == 1_767_225_600_000
    assert parse_instant_ms("2026-01-01T01:00:00+01:00") == 1_767_225_600_000
    assert parse_instant_ms(5) == 5
    with pytest.raises(ValueError, match="time zone"):
        parse_instant_ms("2026-01-01T00:00:00")
    with pytest.raises(ValueError):
        parse_instant_ms(1.5)
    with pytest.raises(ValueError):
        parse_instant_ms("yesterday")
    assert format_instant(1_767_225_600_123) == "2026-01-01T00:00:00.123Z"
