"""Bounded state: an account that drops what can no longer change behaves exactly like one that
keeps everything, and its state stops growing once the retention window is full."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from meterline.benchmark_state import CUSTOMER, DAY_MS, START_MS, AgedAccount
from meterline.billing.account import Account
from meterline.billing.effects import Effects
from meterline.billing.periods import BillingAnchor

from .accounts import POLICY, START
from .calls import Call, Sent, long_histories, note, perform, resolve
from .helpers import DAY, HOUR, effects_dict, every_model_plan

D = Decimal
# The one difference allowed: a refusal may add why the account no longer knows the id.
HINT = re.compile(r" \(or [a-z ]+ more than [0-9.]+ days ago, now forgotten\)")
retentions = st.sampled_from([0, HOUR, DAY, 3 * DAY, 20 * DAY])


def new_account(retention_ms: int | None) -> Account:
    account = Account("cust", payment_retention_ms=retention_ms)
    account.upsert(every_model_plan(), BillingAnchor(START, "Europe/Berlin"), START, topup=POLICY)
    return account


def reload(account: Account) -> Account:
    """What the account table does between batches: the state through JSON."""
    data = json.loads(json.dumps(account.to_dict()))
    return Account.from_dict(data, payment_retention_ms=account.payment_retention_ms)


def comparable(fx: Effects) -> dict[str, Any]:
    out = effects_dict(fx)
    out["errors"] = [HINT.sub("", e) for e in out["errors"]]
    return out


def _time(call: Call) -> int:
    return call.args["outcome"]["occurred_at"] if call.kind == "payment" else call.args["at"]


def _outside_contract(call: Call, pruned: Account, reference: Account) -> bool:
    """News of something the pruned account has forgotten: a new outcome of a payment whose
    record was dropped, or the first outcome of a new payment for a request or an invoice
    dropped (closed or settled, and nothing of it in the window)."""
    if call.kind != "payment":
        return False
    o = call.args["outcome"]
    if o["payment_id"] in pruned.payments:
        return False
    if o["payment_id"] in reference.payments:
        return True
    if o["pays_kind"] == "invoice":
        return o["pays_id"] not in pruned.invoices
    return pruned.topup is None or o["pays_id"] not in pruned.topup.requests


def _late_replay(call: Call, pruned: Account, reference: Account) -> bool:
    """A re-sent outcome of a forgotten payment that occurred after the newest outcome ever
    applied to a dropped payment: it was itself a duplicate when first sent (a repeat carrying a
    later time), and a duplicate changes no state, so nothing bounds its time. The account can
    no longer tell it from news, so it is refused (payments.py); the reference calls it a
    duplicate. Both apply nothing."""
    o = call.args["outcome"]
    forgotten = o["payment_id"] in reference.payments and o["payment_id"] not in pruned.payments
    until = pruned.forgotten_until
    return forgotten and (until is None or o["occurred_at"] > until)


@settings(deadline=None, max_examples=400)
@given(long_histories, retentions, st.booleans())
def test_pruned_account_has_the_effects_of_one_that_keeps_everything(
    ops: list, retention_ms: int, through_json: bool
) -> None:
    """Any history whose inputs keep the retention contract (an outcome of a payment comes
    within the window of its last one, a grant command within the window of its time) gives
    the same ledger entries, top-ups, alerts, invoices, payments, errors and statuses with
    pruning as without. Inputs outside the contract get the documented answers: a re-sent
    outcome of a forgotten payment is a duplicate (the "replay" ops, compared like any other),
    a re-sent grant command older than the window is refused; news of a forgotten payment is
    left out (what it would do is tested on its own below)."""
    pruned, reference, sent = new_account(retention_ms), new_account(None), Sent()
    for n, op in enumerate(ops):
        call = resolve(pruned, op, n, sent)
        if call is None:
            continue
        # Time passes first, so that whatever the call's own time drops is already dropped
        # when the call is judged against the contract.
        at = _time(call)
        assert comparable(pruned.tick(at)) == comparable(reference.tick(at))
        if op[0] == "pay" and _outside_contract(call, pruned, reference):
            continue
        if op[0] == "replay" and _late_replay(call, pruned, reference):
            fx = perform(pruned, call)  # see _late_replay: to the DLQ, saying why
            assert fx.status == "rejected" and HINT.search(fx.errors[0]), fx.errors
            continue
        grant_id = call.args.get("grant_id", "")
        lost = grant_id in reference.wallet.grants and not pruned.wallet.knows(grant_id)
        if call.kind == "grant" and lost:
            fx = perform(pruned, call)  # a command older than the window, for a lost id
            assert fx.status == "rejected" and "retention window" in fx.errors[0]
            assert call.args["at"] < (pruned.clock or 0) - retention_ms
            continue
        payment_id = call.args["outcome"]["payment_id"] if call.kind == "payment" else ""
        if payment_id in reference.payments and payment_id not in pruned.payments:
            event("a forgotten payment's outcome re-sent")
        fx_pruned, fx_reference = perform(pruned, call), perform(reference, call)
        assert comparable(fx_pruned) == comparable(fx_reference), call
        note(sent, call, fx_reference)
        if through_json:
            pruned = reload(pruned)
    # What the histories reached (shown by pytest --hypothesis-show-statistics).
    event(f"payments dropped: {len(reference.payments) - len(pruned.payments) > 0}")
    event(f"grants dropped: {len(reference.wallet.grants) - len(pruned.wallet.grants) > 0}")
    event(f"invoices dropped: {len(reference.invoices) - len(pruned.invoices) > 0}")
    assert pruned.balance() == reference.balance()
    assert pruned.wallet.balance_total == reference.wallet.balance_total
    assert pruned.wallet.totals == reference.wallet.totals
    assert pruned.wallet.seq == reference.wallet.seq
    assert pruned.owed == reference.owed
    assert pruned.wallet.balance_total == sum(
        (g.remaining for g in pruned.wallet.grants.values()), D(0)
    )
    before, after = pruned.preview_invoice(), reference.preview_invoice()
    assert (before and before.lines) == (after and after.lines)


def assert_only_what_can_change_is_kept(account: Account, retention_ms: int) -> None:
    """Right after a retention pass at the account's clock (README.md, "What state keeps")."""
    now = account.clock or 0
    horizon = now - retention_ms
    wallet, payments = account.wallet, account.payments
    requests = {} if account.topup is None else account.topup.requests
    for rec in payments.values():
        g = wallet.grants.get(rec.grant_id or "")
        in_window = rec.last_at is not None and (rec.last_at >= horizon or (g and g.remaining > 0))
        target_kept = rec.pays_id in (requests if rec.pays_kind == "topup" else account.invoices)
        assert in_window or target_kept
        assert target_kept  # a kept payment's request or invoice is kept
    needed = {gid for u in account.usage.values() for gid in u.by_grant}
    needed |= {r.grant_id for r in payments.values() if r.grant_id}
    assert all(g.remaining > 0 or gid in needed for gid, g in wallet.grants.items())
    assert needed <= set(wallet.grants)
    assert all(since >= horizon for since in wallet.retired.values())
    named = {r.pays_id for r in payments.values()}
    assert all(s == "pending" or r in named for r, s in requests.items())
    assert account.period is not None
    for inv in account.invoices.values():
        assert (
            inv.status != "paid"
            or inv.invoice_id in named
            or inv.issued_at >= horizon
            or (inv.kind == "advance" and inv.period_start > account.period.start)
        )


@settings(deadline=None, max_examples=100)
@given(long_histories, retentions)
def test_what_is_kept_is_what_can_still_change(ops: list, retention_ms: int) -> None:
    account, sent = new_account(retention_ms), Sent()
    for n, op in enumerate(ops):
        call = resolve(account, op, n, sent)
        if call is None:
            continue
        note(sent, call, perform(account, call))
        account.next_prune_at = None  # the next operation runs a pass
        account.tick(account.clock or START)
        assert_only_what_can_change_is_kept(account, retention_ms)
        assert reload(account).to_dict() == account.to_dict()


def _state_size(account: Account) -> int:
    return len(json.dumps(account.to_dict(), separators=(",", ":")))


def test_state_stays_bounded_as_the_account_ages() -> None:
    """The benchmark's customer (a top-up every ~3.6 h, an event every 10 minutes) with a
    10-day window: once the window is full, neither what is kept nor the state's size grows."""
    aged = AgedAccount.start(Account(CUSTOMER, payment_retention_ms=10 * DAY_MS))
    peaks: list[int] = []
    kept: list[tuple[int, int, int, int]] = []
    for month in range(8):
        peak = 0
        for day in range(30):
            aged.age_to(START_MS + (month * 30 + day + 1) * DAY_MS)
            peak = max(peak, _state_size(aged.account))
        a = aged.account
        assert a.topup is not None
        kept.append((len(a.wallet.grants), len(a.payments), len(a.invoices), len(a.topup.requests)))
        peaks.append(peak)
    # 10 days of top-ups are ~67 payments; one more day may wait for the daily pass.
    assert all(payments <= 80 and grants <= 80 + 200 for grants, payments, _, _ in kept)
    assert all(invoices <= 2 and requests <= 80 for _, _, invoices, requests in kept)
    # Months differ in length (a longer period's usage names more grants), and ids and
    # sequence numbers gain digits; beyond that, the peak does not move once the window is full.
    assert max(peaks[4:]) <= max(peaks[1:4]) * 1.05
    assert max(peaks) <= 32 * 1024
    assert aged.account.wallet.seq > 4 * 8 * 30 * 144 // 5  # it did burn, every event
