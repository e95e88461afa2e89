"""Property: before an account's ``next_due`` a tick changes nothing, so a worker's wall-clock
pass can skip it without decoding it (closing.py ``next_due``)."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline.billing.account import Account

from .accounts import START, apply, histories, new_account
from .helpers import DAY

D = Decimal
# A grant that takes effect later: its effective time is a time-driven change too.
later_grant = st.tuples(st.integers(1, 5 * DAY), st.one_of(st.none(), st.integers(1, 9 * DAY)))


def _quiet(account: Account, at: int) -> bool:
    copy = Account.from_dict(json.loads(json.dumps(account.to_dict())))
    fx = copy.tick(at)
    return not (fx.entries or fx.topups or fx.alerts or fx.invoices or fx.payments)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.lists(later_grant, max_size=3), st.integers(0, 10**6))
def test_no_tick_before_next_due_has_an_effect(
    history: list, later: list[tuple[int, int | None]], salt: int
) -> None:
    account = new_account()
    for i, (delay, lasts) in enumerate(later):
        at = START + delay
        expires = None if lasts is None else at + lasts
        account.grant(f"later{i}", D(5), START, effective_at=at, expires_at=expires)
    for n, op in enumerate(history):
        apply(account, op, n)
        now = account.clock
        assert now is not None
        due = account.next_due()
        assert due is not None  # an account on a plan always has its period end ahead
        assert due >= now
        end = due
        for t in {now, now + 1, now + salt % max(end - now, 1), (now + end) // 2, end - 1}:
            if now <= t < end:
                assert _quiet(account, t), (t - now, end - now)


def test_no_plan_is_never_due_and_a_quiet_account_is_due_at_its_first_timed_change() -> None:
    assert Account("nobody").next_due() is None
    account = new_account()
    assert account.period is not None and account.expiry_notice_ms is not None
    # The recurring credits expire at the period end, and are warned about before it.
    due = account.next_due()
    assert due == account.period.end - account.expiry_notice_ms
    assert _quiet(account, due - 1)
    assert not _quiet(account, due)
