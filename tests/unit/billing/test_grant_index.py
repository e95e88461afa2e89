"""The wallet's index answers exactly what a walk over every grant would, whatever the history
(grants made, burned, rebated, expired, voided, refunded, dropped), and the compact grant rows
of the account state decode to the grants they were written from."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.billing.credits import Grant, UnknownGrant, Wallet
from meterline.billing.state_rows import decode_grant, encode_grant

from .test_credits import METERS, amounts, ops, run_timed

D = Decimal
probes = st.lists(
    st.tuples(
        st.integers(0, 400), st.sampled_from((None, *METERS)), st.sampled_from((None, "prod-x"))
    ),
    min_size=1,
    max_size=4,
)
more_ops = st.lists(
    st.one_of(
        ops.map(lambda run: run[:8]),  # ordinary ops (test_credits), on their own clock
        st.tuples(st.just("rebate"), st.integers(0, 50), amounts, st.integers(0, 20)),
        st.tuples(st.just("forget"), st.integers(0, 50)),
    ),
    max_size=6,
)


def naive_applicable(w: Wallet, at: int, meter: str | None, product: str | None) -> list[Grant]:
    return sorted(
        (g for g in w.grants.values() if g.usable(at, meter, product)), key=Grant.burn_key
    )


def naive_expiring(w: Wallet, at: int) -> list[Grant]:
    due = [
        g
        for g in w.grants.values()
        if g.status == "active" and g.expires_at is not None and g.expires_at <= at
    ]
    return sorted(due, key=lambda g: (g.expires_at, g.created_seq))


def check(w: Wallet, probe_list: list) -> None:
    for at, meter, product in probe_list:
        assert w.applicable(at, meter, product) == naive_applicable(w, at, meter, product)
        assert w.expiring_until(at) == naive_expiring(w, at)
    assert w.balance_total == sum((g.remaining for g in w.grants.values()), D(0))


@settings(max_examples=60, deadline=None)
@given(ops, more_ops, probes)
def test_index_matches_a_walk_over_every_grant(first: list, then: list, probe_list: list) -> None:
    wallet = Wallet("cust")
    for _, w, _, _, _ in run_timed(first, wallet):
        check(w, probe_list)
    now = max((g.effective_at for g in wallet.grants.values()), default=0)
    for op in then:
        ids = sorted(wallet.grants)
        if isinstance(op, list):
            try:
                list(run_timed(op, wallet))
            except UnknownGrant as exc:  # a dropped grant can be voided, not refunded
                assert exc.args[0] in wallet.retired
        elif op[0] == "rebate" and ids:
            now += op[3]
            wallet.credit_back({ids[op[1] % len(ids)]: op[2]}, op[2], now, f"r{now}")
        elif op[0] == "forget":
            spent = sorted(g for g in ids if wallet.grants[g].remaining == 0)
            if spent:
                wallet.forget(spent[op[1] % len(spent)], now, horizon=0)  # remember it
                assert wallet.knows(spent[op[1] % len(spent)])
        check(wallet, probe_list)
    again = Wallet.from_dict(wallet.to_dict())
    assert again == wallet
    check(again, probe_list)


@given(ops)
def test_compact_grant_rows_decode_to_the_same_grants(op_list: list) -> None:
    wallet = Wallet("cust")
    list(run_timed(op_list, wallet))
    for g in wallet.grants.values():
        again = decode_grant(json.loads(json.dumps(encode_grant(g))))
        assert again == g
        assert [str(x) for x in (again.remaining, again.spent)] == [str(g.remaining), str(g.spent)]
