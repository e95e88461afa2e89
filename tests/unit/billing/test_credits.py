"""Wallet: the ledger identity, burn order, expiry, void and refund rules."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.billing.credits import BurnResult, Grant, ReversalResult, UnknownGrant, Wallet
from meterline.billing.ledger import LedgerEntry

D = Decimal
METERS = ("a", "b", "c")
amounts = st.decimals(min_value=D("0.001"), max_value=100, places=3)


@st.composite
def grant_ops(draw: st.DrawFn) -> tuple:
    effective = draw(st.integers(0, 100))
    expires = draw(st.one_of(st.none(), st.integers(effective + 1, effective + 200)))
    return (
        "grant",
        draw(amounts),
        draw(st.integers(0, 3)),
        effective,
        expires,
        frozenset(draw(st.sets(st.sampled_from((*METERS, "prod-x")), max_size=2))),
        draw(st.sampled_from(["paid", "promotional"])),
    )


ops = st.lists(
    st.one_of(
        grant_ops(),
        st.tuples(
            st.just("burn"),
            amounts,
            st.sampled_from(METERS),
            st.sampled_from([None, "prod-x"]),
            st.integers(0, 20),
        ),
        st.tuples(st.just("expire"), st.integers(0, 30)),
        st.tuples(st.just("void"), st.integers(0, 50)),
        st.tuples(st.just("reverse"), st.integers(0, 50), st.one_of(st.none(), amounts)),
    ),
    max_size=40,
)


def replay(op_list: list[tuple]) -> tuple[Wallet, list[LedgerEntry]]:
    wallet, ledger = Wallet("cust"), []
    for _, _, entries, _, _ in run_timed(op_list, wallet):
        ledger += entries
    return wallet, ledger


def run_timed(
    op_list: list[tuple], wallet: Wallet
) -> Iterator[tuple[tuple, Wallet, list[LedgerEntry], BurnResult | ReversalResult | None, int]]:
    """Apply the ops to the wallet with an advancing clock; yields after each op."""
    now, n = 0, 0
    for op in op_list:
        result: BurnResult | ReversalResult | None = None
        if op[0] == "grant":
            n += 1
            _, amount, prio, eff, exp, scope, cat = op
            entries = wallet.grant(
                f"g{n}",
                amount,
                now,
                priority=prio,
                effective_at=eff,
                expires_at=exp,
                scope=scope,
                category=cat,
            )
        elif op[0] == "burn":
            now += op[4]
            result = wallet.burn(op[1], op[2], now, f"e{now}", product=op[3])
            entries = result.entries
        elif op[0] == "expire":
            now += op[1]
            entries = wallet.expire(now)
        elif n == 0:
            continue
        elif op[0] == "void":
            entries = wallet.void(f"g{op[1] % n + 1}", now)
        else:
            result = wallet.reverse(f"g{op[1] % n + 1}", op[2], now)
            entries = result.entries
        yield op, wallet, entries, result, now


def naive_balance(wallet: Wallet, at: int, meter: str | None, product: str | None) -> Decimal:
    total = D(0)
    for g in wallet.grants.values():
        live = g.status == "active" and g.effective_at <= at
        live = live and (g.expires_at is None or at < g.expires_at)
        covers = meter is None or not g.scope or meter in g.scope or product in g.scope
        if live and covers:
            total += g.remaining
    return total


@given(ops)
def test_balance_equals_grants_minus_debits_reversals_expiries_voids(op_list: list) -> None:
    wallet, ledger = replay(op_list)
    by_kind: dict[str, Decimal] = {}
    for e in ledger:
        by_kind[e.kind] = by_kind.get(e.kind, D(0)) + e.amount
        assert (e.amount > 0) == (e.kind in ("grant", "topup", "rebate"))
    granted = by_kind.get("grant", D(0)) + by_kind.get("topup", D(0))
    taken = sum(-by_kind.get(k, D(0)) for k in ("debit", "expiry", "void", "reversal"))
    remaining = sum((g.remaining for g in wallet.grants.values()), D(0))
    assert granted - taken == remaining == wallet.balance_total
    assert {k: v for k, v in wallet.totals.items() if v or k in by_kind} == by_kind
    assert all(g.remaining >= 0 for g in wallet.grants.values())
    # The running balance on each entry is the sum of the entries up to it.
    running = D(0)
    for i, e in enumerate(ledger, start=1):
        running += e.amount
        assert (e.seq, e.entry_id, e.balance_after) == (i, f"cust:{i}", running)


@given(ops, st.integers(0, 400), st.sampled_from((None, *METERS)))
def test_balance_at_is_exact(op_list: list, at: int, meter: str | None) -> None:
    wallet, _ = replay(op_list)
    assert wallet.balance(at, meter) == naive_balance(wallet, at, meter, None)


@given(ops)
def test_burn_order_is_respected(op_list: list) -> None:
    for op, wallet, _, result, at in run_timed(op_list, Wallet("cust")):
        if op[0] != "burn":
            continue
        _, amount, meter, product, _ = op
        assert isinstance(result, BurnResult)
        assert result.covered + result.uncovered == amount
        assert result.covered == sum(result.debits.values(), D(0))
        applicable = [
            g
            for g in wallet.grants.values()
            if g.status == "active"
            and g.effective_at <= at
            and (g.expires_at is None or at < g.expires_at)
            and (not g.scope or meter in g.scope or product in g.scope)
        ]
        debited = [wallet.grants[gid] for gid in result.debits]
        for g in debited:
            earlier = [h for h in applicable if Grant.burn_key(h) < Grant.burn_key(g)]
            assert all(h.remaining == 0 for h in earlier), "a later grant paid first"
        if result.uncovered:
            assert all(h.remaining == 0 for h in applicable)


def test_burn_order_priority_then_expiry_then_age() -> None:
    w = Wallet("c")
    w.grant("old-never", D(10), 0)
    w.grant("late-expiry", D(10), 0, expires_at=500)
    w.grant("early-expiry", D(10), 0, expires_at=100)
    w.grant("urgent", D(10), 0, priority=-1)
    w.grant("young-never", D(10), 0)
    result = w.burn(D(45), "m", 50, "e1")
    assert [e.grant_id for e in result.entries] == [
        "urgent",
        "early-expiry",
        "late-expiry",
        "old-never",
        "young-never",
    ]
    assert w.grants["young-never"].remaining == 5


def test_scope_by_meter_or_product_and_effective_window() -> None:
    w = Wallet("c")
    w.grant("img", D(5), 0, scope={"images"})
    w.grant("later", D(5), 0, effective_at=100)
    r = w.burn(D(3), "image_gen", 10, "e1", product="images")
    assert r.debits == {"img": D(3)}
    r = w.burn(D(3), "api_calls", 10, "e2", product="api")
    assert r.uncovered == 3 and not r.entries  # "later" not effective yet; "img" out of scope
    assert w.balance(10) == 2 and w.balance(100) == 7
    assert w.balance(100, "api_calls") == 5


def test_grant_is_idempotent_and_validated() -> None:
    w = Wallet("c")
    assert len(w.grant("g", D(5), 0)) == 1
    assert w.grant("g", D(99), 0) == []
    assert w.balance_total == 5
    with pytest.raises(ValueError):
        w.grant("zero", D(0), 0)
    with pytest.raises(ValueError):
        w.grant("backwards", D(1), 10, expires_at=10)


def test_expire_writes_off_the_remaining_once() -> None:
    w = Wallet("c")
    w.grant("g", D(5), 0, expires_at=100)
    w.burn(D(2), "m", 50, "e")
    [entry] = w.expire(100)
    assert (entry.kind, entry.amount, entry.balance_after) == ("expiry", D(-3), D(0))
    assert w.expire(200) == []


def test_void_then_unknown() -> None:
    w = Wallet("c")
    w.grant("g", D(5), 0)
    [entry] = w.void("g", 1)
    assert (entry.kind, entry.amount) == ("void", D(-5))
    assert w.void("g", 2) == []
    with pytest.raises(UnknownGrant):
        w.void("nope", 3)


def test_refund_reverses_unspent_then_owes_the_spent_part() -> None:
    w = Wallet("c")
    w.grant("paid", D(25), 0, category="paid", kind="topup")
    w.burn(D(20), "m", 1, "e")
    partial = w.reverse("paid", D(3), 2)
    assert (partial.reversed, partial.unrecovered) == (D(3), D(0))
    rest = w.reverse("paid", None, 3)  # the rest of the 25: 2 unspent, 20 spent
    assert (rest.reversed, rest.unrecovered) == (D(2), D(20))
    assert [e.amount for e in rest.entries] == [D(-2)]
    assert w.grants["paid"].status == "reversed"
    assert w.reverse("paid", None, 4).entries == []  # nothing left to refund
    assert w.balance_total == 0


def test_refund_of_expired_credits_owes_only_what_was_spent() -> None:
    w = Wallet("c")
    w.grant("g", D(10), 0, expires_at=10)
    w.burn(D(4), "m", 5, "e")
    w.expire(10)
    r = w.reverse("g", None, 20)
    assert (r.reversed, r.unrecovered, r.entries) == (D(0), D(4), [])


def test_credit_back_only_to_live_grants() -> None:
    w = Wallet("c")
    w.grant("a", D(5), 0, expires_at=10)
    w.grant("b", D(5), 0)
    w.burn(D(8), "m", 1, "e1")
    w.expire(10)
    entries, returned = w.credit_back({"a": D(5), "b": D(3)}, D(6), 11, "e2")
    assert returned == D(3) and [(e.grant_id, e.kind, e.amount) for e in entries] == [
        ("b", "rebate", D(3))
    ]


@given(ops)
def test_wallet_dict_round_trip(op_list: list) -> None:
    wallet, _ = replay(op_list)
    again = Wallet.from_dict(wallet.to_dict())
    assert again == wallet
    assert again.burn(D(7), "a", 500, "x") == wallet.burn(D(7), "a", 500, "x")
