"""Property: through any history of top-ups, usage, refunds, disputes, unlinks and partial or
over-payments of invoices, invoiced in the plan's currency or in EUR (fx.py), the ledger
identity holds, every outcome applied twice changes
nothing the second time, and the state survives its JSON round trip."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from meterline.billing.account import Account
from meterline.billing.fx import FxRate, FxRates
from meterline.billing.payments import STATUSES, PaymentOutcome
from meterline.billing.topup import TopupRequest

from .accounts import POLICY, START, new_account
from .helpers import DAY, HOUR

D = Decimal
_AFTER_SUCCESS = ("refunded", "dispute_opened", "dispute_won", "dispute_lost", "unlinked")
_STATUSES = [s for s in STATUSES if s != "unknown"]

step = st.integers(1, 2 * DAY)
pay = st.tuples(
    st.just("pay"),
    st.integers(0, 60),
    st.sampled_from(_STATUSES + ["succeeded"] * 3 + list(_AFTER_SUCCESS) * 2),
    st.decimals(min_value=0, max_value=40, places=2),
    step,
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("use"), st.decimals(min_value=0, max_value=25, places=2), step),
        pay,
        pay,
        pay,
        st.tuples(st.just("tick"), st.integers(0, 20 * DAY)),
        st.tuples(st.just("advance"), step),
        # A decline of an unpaid invoice, with a fresh payment id: dunning's rounds.
        st.tuples(st.just("decline"), st.integers(0, 60), step),
    ),
    min_size=5,
    max_size=50,
)


def _outcome(
    account: Account,
    pick: int,
    status: str,
    amount: D,
    at: int,
    fresh: str | None = None,
    invoice: str | None = None,
) -> PaymentOutcome | None:
    paid = sorted(p for p, r in account.payments.items() if r.captured > 0)
    if fresh is not None and invoice is not None:
        payment_id, kind, pays = fresh, "invoice", invoice
    elif status in _AFTER_SUCCESS and paid and pick % 11:
        rec = account.payments[paid[pick % len(paid)]]
        payment_id, kind, pays = rec.payment_id, rec.pays_kind, rec.pays_id
        if pick % 3 == 0:
            amount = rec.captured  # the whole payment, often
    else:
        requests = sorted(account.topup.requests) if account.topup is not None else []
        targets = requests + sorted(account.invoices)
        if not targets:
            return None
        pays = targets[pick % len(targets)]
        kind = "invoice" if pays.startswith("inv:") else "topup"
        payment_id = f"p{pick % 3}:{pays}" if pick % 7 else f"moved:{pick % 2}"
        if payment_id in account.payments and kind == "invoice":
            kind = account.payments[payment_id].pays_kind  # a relink names another invoice
            if kind != "invoice":
                return None
    # A top-up is paid in the plan's currency, an invoice in its own.
    target = account.invoices.get(pays) if kind == "invoice" else None
    record = account.payments.get(payment_id)
    currency = (
        target.currency
        if target is not None
        else (record.currency if record is not None and record.currency else "USD")
    )
    return PaymentOutcome.from_dict(
        {
            "payment_id": payment_id,
            "customer_id": "cust",
            "processor": "acme",
            "status": status,
            "amount": str(amount),
            "currency": currency,
            "pays_kind": kind,
            "pays_id": pays,
            "occurred_at": at,
            "payment_method_name": "ACH" if pick % 2 else None,
        }
    )


def _identity(account: Account) -> None:
    w = account.wallet
    assert w.balance_total == sum((g.remaining for g in w.grants.values()), D(0))
    assert w.balance_total == sum(w.totals.values(), D(0))
    assert all(g.remaining >= 0 and g.held >= 0 for g in w.grants.values())
    for rec in account.payments.values():
        assert 0 <= rec.refunded <= rec.captured and 0 <= rec.applied <= rec.captured
    assert all(inv.amount_paid >= 0 for inv in account.invoices.values())


def _reference_dunning(
    account: Account,
    requests: list[TopupRequest],
    counted: str | None,
    declines: dict[str, int],
    retries: set[str],
) -> None:
    """Dunning against a plain count: an invoice is past due exactly when the declines since
    it was last paid off outnumber the retry delays; a retry is never asked twice, only for an
    unpaid invoice, and for what it still owes."""
    delays = POLICY.retry_delays_ms
    if counted is not None:
        declines[counted] = declines.get(counted, 0) + 1
    for r in requests:
        if r.pays_kind == "invoice":
            assert r.request_id not in retries
            retries.add(r.request_id)
            event("an invoice retry asked")
            inv = account.invoices[r.pays_id or ""]
            assert r.amount == inv.remaining > 0 and not inv.past_due
            assert r.attempt - 1 == declines.get(inv.invoice_id, 0) <= len(delays)
    for inv_id, inv in account.invoices.items():
        if inv.remaining <= 0:
            declines[inv_id] = 0
        assert inv.past_due == (declines.get(inv_id, 0) > len(delays)), inv_id
        if inv.past_due:
            event("an invoice past due")


def _reference_invoices(account: Account) -> None:
    """What each kept invoice has been paid is what its linked payments say they gave it (a
    kept invoice keeps every payment of it: retention.py)."""
    paid: dict[str, D] = {}
    for rec in account.payments.values():
        if rec.pays_kind == "invoice" and "unlinked" not in rec.statuses:
            paid[rec.pays_id] = paid.get(rec.pays_id, D(0)) + rec.applied
    for inv_id, inv in account.invoices.items():
        assert inv.amount_paid == paid.get(inv_id, D(0)), inv_id


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops, st.booleans())
def test_ledger_identity_and_idempotency_through_any_payment_history(
    history: list, in_eur: bool
) -> None:
    # An invoice to pay and a top-up request pending, so that payments have targets at once.
    account = new_account()
    if in_eur:  # a rate whose inverse never terminates: credits bought are rounded (fx.py)
        account.upsert(account.plan, account.anchor, START + 1, invoice_currency="EUR")  # type: ignore[arg-type]
        account.fx_rates = FxRates([FxRate("USD", "EUR", D("0.917"), START - DAY)])
    account.tick(START + 40 * DAY)
    account.apply_usage("low", "llm", D(1), START + 40 * DAY, D(14))
    seq = account.wallet.seq
    declines: dict[str, int] = {}  # the reference's dunning: declines since last paid off
    retries: set[str] = set()
    for n, op in enumerate(history):
        counted = None
        now = account.clock or 0
        if op[0] == "use":
            fx = account.apply_usage(f"e{n}", "llm", D(1), now + op[2], op[1])
        elif op[0] == "tick":
            fx = account.tick(now + op[1])
        elif op[0] == "advance":
            fx = account.bill_in_advance(now + op[1])
        else:
            if op[0] == "decline":
                unpaid = sorted(i for i, inv in account.invoices.items() if inv.remaining > 0)
                if not unpaid:
                    continue
                target = unpaid[op[1] % len(unpaid)]
                op = ("pay", op[1], "failed", D(1), op[2], f"d{n}", target)
            _, pick, status, amount, dt, *fresh = op
            outcome = _outcome(account, pick, status, amount, now + dt + HOUR, *fresh)
            if outcome is None:
                continue
            inv = account.invoices.get(outcome.pays_id)
            fx = account.apply_payment(outcome)
            if (
                outcome.status == "failed"
                and outcome.pays_kind == "invoice"
                and fx.status == "applied"
                and inv is not None
                and inv.remaining > 0
                and not inv.past_due
            ):
                counted = outcome.pays_id
            before = account.to_dict()
            again = account.apply_payment(outcome)
            assert not (again.entries or again.alerts or again.invoices or again.topups)
            assert again.status in ("duplicate", "rejected") or again.status == "ignored"
            assert account.to_dict() == before
        for e in fx.entries:
            seq += 1
            assert e.seq == seq  # no gap
        _reference_dunning(account, fx.topups, counted, declines, retries)
        for inv in fx.invoices:
            assert inv.remaining <= inv.amount_due
        _identity(account)
        _reference_invoices(account)
        state = json.loads(json.dumps(account.to_dict()))
        assert Account.from_dict(state).to_dict() == account.to_dict()
        if in_eur:
            event("invoiced in EUR")
            _eur_credits(account)


def _eur_credits(account: Account) -> None:
    """An EUR payment's credits are its EUR overpayment at the invoice's rate, and what its
    refunds took back of them adds up to exactly the credits granted once it is all refunded."""
    for rec in account.payments.values():
        grant = account.wallet.grants.get(rec.grant_id or "")
        if rec.rate is None or grant is None or rec.pays_kind != "invoice":
            continue
        event("EUR overpayment credit")
        assert grant.amount == rec.credits(rec.credited)
        if rec.refunded >= rec.credited and grant.held == 0:
            assert grant.remaining == 0
