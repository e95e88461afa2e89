"""Auto top-up state machine: threshold, modes, pending, cooldown, dunning, cap."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.billing.topup import AutoTopup, TopupPolicy, exponential_delays

from .helpers import HOUR, MINUTE

D = Decimal


def auto(**kw: Any) -> AutoTopup:
    return AutoTopup("c", "USD", TopupPolicy(**{"threshold": D(5), "amount": D(25), **kw}))


def test_fixed_amount_below_threshold_only() -> None:
    t = auto()
    assert t.decide(D(5), 0) is None  # at the threshold is not below it
    req = t.decide(D("4.99"), 0)
    assert req is not None
    assert (req.request_id, req.amount, req.currency, req.attempt) == ("topup:c:1", 25, "USD", 1)


def test_target_mode_tops_up_to_the_target() -> None:
    t = auto(mode="target", target=D(30))
    req = t.decide(D("3.5"), 0)
    assert req is not None and req.amount == D("26.5")


def test_never_a_second_request_while_pending() -> None:
    t = auto()
    assert t.decide(D(1), 0) is not None
    assert t.decide(D(0), 1) is None
    assert t.decide(D(-5), 10 * HOUR) is None


def test_cooldown_is_the_minimum_time_between_requests() -> None:
    # Issue 9: counted from the previous request (the schema's meaning), not its outcome.
    t = auto(cooldown_ms=10 * MINUTE)
    t.decide(D(1), 0)
    assert t.on_succeeded("topup:c:1", 9 * MINUTE) == "applied"
    assert t.decide(D(1), 10 * MINUTE - 1) is None
    assert t.decide(D(1), 10 * MINUTE) is not None


def test_a_dunning_retry_asks_what_the_declined_attempt_asked() -> None:
    t = auto(
        mode="target",
        threshold=D(20),
        amount=D(0),
        target=D(30),
        retry_delays_ms=(HOUR,),
        cooldown_ms=0,
    )
    first = t.decide(D("8.625"), 0)
    assert first is not None and first.amount == D("21.375")
    t.on_failed(first.request_id, 1)
    retry = t.decide(D(0), HOUR + 1)  # the balance has moved: the retry is the same charge
    assert retry is not None and retry.amount == D("21.375") and retry.attempt == 2
    t.on_succeeded(retry.request_id, HOUR + 2)
    fresh = t.decide(D(10), HOUR + 3)  # after the retries, a new request of its own
    assert fresh is not None and fresh.amount == D(20) and fresh.attempt == 1


def test_dunning_schedule_then_suspend() -> None:
    t = auto(retry_delays_ms=(HOUR, 6 * HOUR))
    t.decide(D(1), 0)
    assert t.on_failed("topup:c:1", 0) == "applied"
    assert t.decide(D(1), HOUR - 1) is None
    retry = t.decide(D(1), HOUR)
    assert retry is not None and (retry.request_id, retry.attempt) == ("topup:c:2", 2)
    assert t.on_failed("topup:c:2", HOUR) == "applied"
    assert t.decide(D(1), 7 * HOUR - 1) is None
    assert t.decide(D(1), 7 * HOUR) is not None
    assert t.on_failed("topup:c:3", 7 * HOUR) == "suspended"
    assert t.decide(D(1), 1000 * HOUR) is None
    t.update_policy(t.policy)  # the customer fixes the card: a new upsert resumes
    again = t.decide(D(1), 1000 * HOUR)
    assert again is not None and again.attempt == 1


def test_cap_counts_successes_per_period() -> None:
    t = auto(max_per_period=1, cooldown_ms=0)
    t.decide(D(1), 0)
    t.on_succeeded("topup:c:1", 0)
    assert t.decide(D(1), 1) is None
    t.new_period()
    assert t.decide(D(1), 2) is not None


def test_cancel_closes_without_dunning_and_stale_outcomes_are_ignored() -> None:
    t = auto(cooldown_ms=5)
    t.decide(D(1), 0)
    assert t.on_canceled("topup:c:1", 0) == "applied"
    assert t.failures == 0
    assert t.on_failed("topup:c:1", 1) == "stale"
    assert t.on_succeeded("nope", 1) == "stale"
    assert t.decide(D(1), 5) is not None


def test_late_success_after_decline_still_counts() -> None:
    t = auto()
    t.decide(D(1), 0)
    t.on_failed("topup:c:1", 0)
    assert t.on_succeeded("topup:c:1", 10) == "applied"
    assert (t.failures, t.succeeded_in_period) == (0, 1)
    assert t.on_succeeded("topup:c:1", 11) == "stale"


def test_policy_validation_and_schedule_helper() -> None:
    with pytest.raises(ValueError):
        TopupPolicy(threshold=D(5))  # fixed mode with no amount
    with pytest.raises(ValueError):
        TopupPolicy(threshold=D(5), mode="target", target=D(5))
    assert exponential_delays(HOUR, 4, 3) == (HOUR, 4 * HOUR, 16 * HOUR)


steps = st.lists(
    st.tuples(
        st.sampled_from(["decide", "succeeded", "failed", "canceled", "new_period", "policy"]),
        st.integers(0, 3 * HOUR),
        st.decimals(min_value=-5, max_value=40, places=2),
        st.integers(0, 10),
    ),
    max_size=60,
)


@given(steps)
def test_never_two_pending_and_gates_hold(step_list: list) -> None:
    t = auto(cooldown_ms=10 * MINUTE, retry_delays_ms=(HOUR, 2 * HOUR), max_per_period=3)
    now = 0
    for kind, dt, balance, pick in step_list:
        now += dt
        before = AutoTopup.from_dict(t.to_dict())
        if kind == "decide":
            req = t.decide(balance, now)
            if req is not None:
                assert before.pending is None and not before.suspended
                assert balance < t.policy.threshold
                assert before.not_before is None or now >= before.not_before
                assert before.succeeded_in_period < 3
                assert req.request_id == f"topup:c:{before.n + 1}"
        elif kind == "new_period":
            t.new_period()
        elif kind == "policy":
            t.update_policy(t.policy)
        elif t.requests:
            ids = sorted(t.requests)
            request_id = ids[pick % len(ids)]
            getattr(t, f"on_{kind}")(request_id, now)
        pending = [r for r, s in t.requests.items() if s == "pending"]
        assert len(pending) <= 1
        assert (t.pending is None) == (not pending)
        assert AutoTopup.from_dict(t.to_dict()) == t
