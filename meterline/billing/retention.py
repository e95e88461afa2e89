"""What a customer's billing state keeps, and when the rest is dropped (README.md, "State").

Everything dropped here was already handed out in ``Effects`` when it happened (ledger entries,
payments, invoices) and lives in ClickHouse. What stays is what can still change or still decide
an outcome:

* a payment record while it is *in the window*: until ``retention_ms`` (the refund and dispute
  window) after the last outcome applied to it, and for a top-up while the credits it bought
  are not all spent (a refund still takes back the unspent part); and while the request or
  invoice it pays is kept, so that an unknown payment id naming a kept one is a new payment;
* a grant while it holds credits, while the open period's usage names it (a volume-tier rebate
  goes back to the grants that paid), or while its payment is kept (a refund of spent credits
  needs its ``spent``/``clawed`` bookkeeping to bill what is owed, once);
* a top-up request while pending, or while a payment of it is in the window;
* an invoice until it is settled, while a payment of it is in the window (a refund reopens
  it), while it is young (issued within the window), and an advance invoice until its period
  comes (it is what makes a second bill-in-advance of that period a duplicate).

The pass runs at most once per ``PRUNE_EVERY_MS`` of account time and at each period close, so
an event pays nothing for it but one comparison; the pass itself walks only what is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meterline.billing.credits import Wallet
from meterline.billing.invoice import Invoice
from meterline.billing.payments import PaymentRecord
from meterline.billing.topup import AutoTopup
from meterline.billing.usage import MeterPeriod

DAY_MS = 86_400_000
# Card networks commonly allow a dispute up to 120 days after the charge. A deployment setting
# may change it; None keeps everything forever (the state before retention; the tests' reference).
PAYMENT_RETENTION_MS = 120 * DAY_MS
PRUNE_EVERY_MS = DAY_MS


@dataclass(slots=True)
class Holdings:
    """The parts of an account retention looks at (changed in place)."""

    wallet: Wallet
    payments: dict[str, PaymentRecord]
    topup: AutoTopup | None
    invoices: dict[str, Invoice]
    usage: Mapping[str, MeterPeriod]
    open_period_start: int


def prune_every(retention_ms: int) -> int:
    return max(1, min(PRUNE_EVERY_MS, retention_ms))


def prune(h: Holdings, now: int, retention_ms: int, forgotten_until: int | None) -> int | None:
    """Drop what can no longer change; returns the new ``forgotten_until`` (payments.py)."""
    horizon = now - retention_ms
    wallet, topup = h.wallet, h.topup

    def in_window(rec: PaymentRecord) -> bool:
        if rec.last_at is None or rec.last_at >= horizon or rec.disputed > 0:
            return True  # an open dispute is still to be won or lost
        g = None if rec.grant_id is None else wallet.grants.get(rec.grant_id)
        return g is not None and (g.remaining > 0 or g.held > 0)

    named = {(rec.pays_kind, rec.pays_id) for rec in h.payments.values() if in_window(rec)}
    requests = (
        set()
        if topup is None
        else {
            r
            for r, status in topup.requests.items()
            if status == "pending" or ("topup", r) in named
        }
    )
    invoices = {
        i
        for i, inv in h.invoices.items()
        if inv.status != "paid"
        or ("invoice", i) in named
        or inv.issued_at >= horizon
        or (inv.kind == "advance" and inv.period_start > h.open_period_start)
    }
    # A kept request or invoice keeps every payment of it, so an unknown payment id naming a
    # kept one is a new payment, never a forgotten one (payments.py relies on this).
    for payment_id, rec in list(h.payments.items()):
        kept = requests if rec.pays_kind == "topup" else invoices
        if rec.pays_id in kept or in_window(rec):
            continue
        del h.payments[payment_id]
        assert rec.last_at is not None
        if forgotten_until is None or rec.last_at > forgotten_until:
            forgotten_until = rec.last_at

    needed = {gid for u in h.usage.values() for gid in u.by_grant}
    needed.update(rec.grant_id for rec in h.payments.values() if rec.grant_id is not None)
    for grant_id in [
        gid for gid, g in wallet.grants.items() if g.remaining == 0 and gid not in needed
    ]:
        wallet.forget(grant_id, now, horizon)
    wallet.forget_retired(horizon)

    if topup is not None:
        topup.forget_closed(requests)
    for invoice_id in [i for i in h.invoices if i not in invoices]:
        del h.invoices[invoice_id]
    return forgotten_until
