"""Roll-up windows against references computed with datetime arithmetic, across DST and month
ends; event-time limits and the grace rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from meterline.metering.windows import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    WINDOW_SIZES,
    EventTimeLimits,
    format_instant,
    is_late,
    minute_start,
    parse_instant_ms,
    rollup_start,
    window_closes_at,
    window_end,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


def ms(dt: datetime) -> int:
    return (dt - EPOCH) // ONE_MS


def iso(text: str) -> int:
    return ms(datetime.fromisoformat(text))


def local(ts: int, tz: str) -> datetime:
    return (EPOCH + timedelta(milliseconds=ts)).astimezone(ZoneInfo(tz))


# Zones whose local midnights and hours all exist once per day / are 60 minutes: the plain
# datetime reference applies directly.
REGULAR_ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Asia/Kathmandu",
]
# Oddities: a 30-minute DST shift (Lord Howe) and DST changes at midnight (Santiago), where
# the datetime reference for a day start would land in a gap.
ODD_ZONES = ["Australia/Lord_Howe", "America/Santiago"]

ANCHORS = [
    iso(t)
    for t in [
        "2026-03-29T01:00:00Z",  # Berlin spring forward
        "2026-10-25T01:00:00Z",  # Berlin fall back
        "2026-03-08T07:00:00Z",  # New York spring forward
        "2026-11-01T06:00:00Z",  # New York fall back
        "2026-04-04T16:00:00Z",  # Sydney fall back
        "2026-10-03T16:00:00Z",  # Sydney spring forward
        "2026-04-04T15:00:00Z",  # Lord Howe (+11 -> +10:30)
        "2026-10-03T15:30:00Z",  # Lord Howe (+10:30 -> +11)
        "2026-04-05T03:00:00Z",  # Santiago: Saturday 24:00 -03 back to 23:00 -04
        "2026-09-06T04:00:00Z",  # Santiago: Saturday 24:00 -04 jumps to Sunday 01:00 -03
        "2024-02-29T23:00:00Z",  # leap-day month end
        "2026-01-31T23:00:00Z",
        "2026-02-28T23:00:00Z",
        "2026-04-30T22:00:00Z",
        "2026-12-31T23:00:00Z",
        "2027-01-01T05:00:00Z",
    ]
]

near_anchor = st.builds(
    lambda anchor, delta: anchor + delta,
    st.sampled_from(ANCHORS),
    st.integers(-3 * DAY_MS, 3 * DAY_MS)
    | st.integers(-2 * HOUR_MS, 2 * HOUR_MS)
    | st.sampled_from([-1, 0, 1, -MINUTE_MS, MINUTE_MS]),
)
anywhere = st.integers(iso("2000-01-01T00:00:00Z"), iso("2040-01-01T00:00:00Z"))
instants = near_anchor | anywhere


def ref_hour(ts: int, tz: str) -> tuple[int, int]:
    floor = local(ts, tz).replace(minute=0, second=0, microsecond=0)  # keeps fold
    return ms(floor), ms(floor) + HOUR_MS


def ref_day(ts: int, tz: str) -> tuple[int, int]:
    z = ZoneInfo(tz)
    d = local(ts, tz).date()
    return (
        ms(datetime.combine(d, time(0), tzinfo=z)),
        ms(datetime.combine(d + timedelta(days=1), time(0), tzinfo=z)),
    )


def ref_month(ts: int, tz: str) -> tuple[int, int]:
    z = ZoneInfo(tz)
    d = local(ts, tz).date()
    nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return ms(datetime(d.year, d.month, 1, tzinfo=z)), ms(datetime.combine(nxt, time(0), tzinfo=z))


@given(instants, st.sampled_from(REGULAR_ZONES))
@example(iso("2026-10-25T00:30:00Z"), "Europe/Berlin")  # first 02:xx CEST
@example(iso("2026-10-25T01:30:00Z"), "Europe/Berlin")  # second 02:xx CET
def test_rollups_match_datetime_reference(ts: int, tz: str) -> None:
    for size, ref in (("hour", ref_hour), ("day", ref_day), ("month", ref_month)):
        start = rollup_start(ts, size, tz)
        assert (start, window_end(start, size, tz)) == ref(ts, tz), (size, format_instant(ts))
    assert rollup_start(ts, "minute", tz) == minute_start(ts) == ts - ts % MINUTE_MS
    assert window_end(minute_start(ts), "minute", tz) == minute_start(ts) + MINUTE_MS


@given(instants, st.sampled_from(REGULAR_ZONES + ODD_ZONES), st.sampled_from(WINDOW_SIZES))
def test_windows_partition_time(ts: int, tz: str, size: str) -> None:
    start = rollup_start(ts, size, tz)
    end = window_end(start, size, tz)
    assert start <= ts < end
    assert rollup_start(start, size, tz) == start
    assert rollup_start(end - 1, size, tz) == start
    assert rollup_start(end, size, tz) == end  # the next window begins where this one ends
    assert window_end(ts, size, tz) == end


@given(instants, st.sampled_from(REGULAR_ZONES + ODD_ZONES))
def test_windows_nest(ts: int, tz: str) -> None:
    spans = [
        (rollup_start(ts, s, tz), window_end(rollup_start(ts, s, tz), s, tz)) for s in WINDOW_SIZES
    ]
    for (inner_start, inner_end), (outer_start, outer_end) in pairwise(spans):
        assert outer_start <= inner_start and inner_end <= outer_end


@given(instants, st.sampled_from(REGULAR_ZONES + ODD_ZONES))
def test_hour_is_one_local_hour_at_one_offset(ts: int, tz: str) -> None:
    def key(u: int) -> tuple:
        dt = local(u, tz)
        return dt.date(), dt.hour, dt.utcoffset()

    start = rollup_start(ts, "hour", tz)
    end = window_end(start, "hour", tz)
    assert key(start) == key(ts) == key(end - 1)
    assert key(start - 1) != key(ts) != key(end)


@pytest.mark.parametrize("tz", REGULAR_ZONES + ODD_ZONES)
def test_sweep_across_every_anchor_walks_contiguous_windows(tz: str) -> None:
    # Deterministic complement to the random tests: walk window by window through each DST
    # change and month end, so a gap or overlap next to a transition cannot hide.
    for anchor in ANCHORS:
        for size in WINDOW_SIZES:
            t = rollup_start(anchor - 4 * HOUR_MS, size, tz)
            while t < anchor + 4 * HOUR_MS:
                end = window_end(t, size, tz)
                assert t < end
                assert rollup_start(t, size, tz) == t
                assert rollup_start(end - 1, size, tz) == t
                if size != "minute":
                    coarser = WINDOW_SIZES[WINDOW_SIZES.index(size) - 1]
                    assert rollup_start(t, coarser, tz) == t  # starts on a finer boundary
                t = end


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        ("Europe/Berlin", "2026-03-29", 23),
        ("Europe/Berlin", "2026-10-25", 25),
        ("Europe/Berlin", "2026-10-26", 24),
        ("America/New_York", "2026-03-08", 23),
        ("America/New_York", "2026-11-01", 25),
        ("UTC", "2026-03-29", 24),
        ("America/Santiago", "2026-04-04", 25),  # 23:xx happens twice
        ("America/Santiago", "2026-09-06", 23),  # midnight does not exist that day
    ],
)
def test_dst_days_are_23_or_25_hours(tz: str, day: str, hours: int) -> None:
    noon = ms(datetime.combine(date.fromisoformat(day), time(12), tzinfo=ZoneInfo(tz)))
    start = rollup_start(noon, "day", tz)
    assert window_end(start, "day", tz) - start == hours * HOUR_MS
    hour_starts = []
    t = start
    while t < window_end(start, "day", tz):
        hour_starts.append(t)
        t = window_end(t, "hour", tz)
    assert len(hour_starts) == hours


def test_day_and_month_boundaries_in_a_zone() -> None:
    tz = "Europe/Berlin"
    # 23:30 UTC on 31 January is already 1 February in Berlin.
    ts = iso("2026-01-31T23:30:00Z")
    assert rollup_start(ts, "day", tz) == iso("2026-01-31T23:00:00Z")
    assert rollup_start(ts, "month", tz) == iso("2026-01-31T23:00:00Z")
    assert window_end(iso("2026-01-31T23:00:00Z"), "month", tz) == iso("2026-02-28T23:00:00Z")
    assert rollup_start(ts, "month") == iso("2026-01-01T00:00:00Z")
    # March in Berlin is 31 days minus the lost hour.
    march = iso("2026-02-28T23:00:00Z")
    assert window_end(march, "month", tz) - march == 31 * DAY_MS - HOUR_MS
    assert rollup_start(iso("2026-06-15T12:00:00Z"), "hour", "Asia/Kolkata") == iso(
        "2026-06-15T11:30:00Z"
    )


def test_unknown_zone_and_size() -> None:
    with pytest.raises(ValueError, match="time zone"):
        rollup_start(0, "day", "Mars/Olympus")
    with pytest.raises(ValueError, match="window size"):
        rollup_start(0, "week", "UTC")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window size"):
        window_end(0, "week", "Europe/Berlin")  # type: ignore[arg-type]


def test_minute_windows_close_after_grace() -> None:
    start = iso("2026-03-01T12:00:00Z")
    grace = 30_000
    assert window_closes_at(start, grace) == start + MINUTE_MS + grace
    assert not is_late(start, start + MINUTE_MS + grace - 1, grace)
    assert is_late(start, start + MINUTE_MS + grace, grace)
    assert not is_late(start, start, 0)
    assert is_late(start, start + MINUTE_MS, 0)


@given(st.integers(0, 10**13), st.integers(0, 10**9), st.integers(0, 10**7))
def test_is_late_matches_definition(window_start: int, watermark_delta: int, grace: int) -> None:
    start = minute_start(window_start)
    watermark = start + watermark_delta
    assert is_late(start, watermark, grace) == (watermark - start >= MINUTE_MS + grace)


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
