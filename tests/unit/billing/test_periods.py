from hypothesis import given
from hypothesis import strategies as st

from meterline.billing.periods import BillingAnchor, next_period, period_at, period_by_index

from .helpers import utc


def test_anchor_31_clamps_to_month_end_and_comes_back() -> None:
    anchor = BillingAnchor(utc(2024, 1, 31), "UTC")
    starts = [period_by_index(anchor, k).start for k in range(5)]
    assert starts == [
        utc(2024, 1, 31),
        utc(2024, 2, 29),
        utc(2024, 3, 31),
        utc(2024, 4, 30),
        utc(2024, 5, 31),
    ]
    assert period_by_index(anchor, 13).start == utc(2025, 2, 28)


def test_boundaries_follow_local_midnight_across_dst() -> None:
    # Midnight in New York: 05:00Z in winter, 04:00Z once DST starts (9 March 2025).
    anchor = BillingAnchor(utc(2025, 1, 31, 5), "America/New_York")
    p1 = period_at(anchor, utc(2025, 2, 10))
    assert (p1.start, p1.end) == (utc(2025, 1, 31, 5), utc(2025, 2, 28, 5))
    p2 = next_period(anchor, p1)
    assert (p2.start, p2.end) == (utc(2025, 2, 28, 5), utc(2025, 3, 31, 4))
    # 03:00Z on 31 March is still 30 March in New York.
    assert period_at(anchor, utc(2025, 3, 31, 3)) == p2
    assert period_at(anchor, utc(2025, 3, 31, 4)).start == utc(2025, 3, 31, 4)


def test_periods_before_the_anchor() -> None:
    anchor = BillingAnchor(utc(2025, 3, 15), "Europe/Paris")
    p = period_at(anchor, utc(2025, 1, 1))
    assert p.index == -3
    assert p.contains(utc(2025, 1, 1))


@given(
    st.integers(utc(2020, 1, 1), utc(2030, 1, 1)),
    st.integers(utc(2020, 1, 1), utc(2030, 1, 1)),
    st.sampled_from(["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
)
def test_period_at_contains_and_tiles(anchor_at: int, at: int, tz: str) -> None:
    anchor = BillingAnchor(anchor_at, tz)
    p = period_at(anchor, at)
    assert p.start <= at < p.end
    assert next_period(anchor, p).start == p.end
    assert 27 * 86_400_000 < p.end - p.start < 32 * 86_400_000
