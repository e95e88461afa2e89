"""Dunning of unpaid invoices: the retries after a declined invoice payment, then past due.

The schedule is the top-up one (topup.py, ``retry_delay``): after the k-th decline of a payment
of an unpaid invoice, a retry is asked ``retry_delays_ms[k-1]`` later; a decline after the
schedule is used up makes the invoice ``past_due`` with an ``invoice_past_due`` alert, and no
more retries are asked. The delays are the customer's top-up policy's (``retry_delays_ms``:
one dunning schedule per customer, whatever it pays), the default 1 h, 6 h, 24 h without one.

A retry is a payment request on ``meterline.topups`` beside the top-up requests: a
``TopupRequest`` with ``pays_kind`` "invoice", ``pays_id`` the invoice, id
``retry:{invoice_id}:{k}`` (deterministic: the processor's idempotency key) and the amount
the invoice still owes when it is asked (Stripe retries the invoice's amount remaining). Its
outcome names the invoice (``pays_kind`` invoice, ``pays_id`` the invoice id) like any payment
of it, with the processor's own payment id.

A success that pays the invoice off ends the round (and its past due: a paid invoice is not
past due); a partial one leaves the schedule as it is (the next retry asks what is left). An
invoice reopened later (a refund, a dispute, an unlink) starts a new round at its next
decline. Retry ids are numbered by the invoice's declines ever, so no round repeats an id.
State: one small row per invoice that was ever declined, dropped with the invoice
(retention.py keeps an invoice while unpaid, and a while after).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meterline.billing.invoice import Invoice
from meterline.billing.topup import TopupRequest, retry_delay


@dataclass(slots=True)
class InvoiceDunning:
    invoice_id: str
    failures: int = 0  # declines in the current round (since the invoice was last paid off)
    retry_at: int | None = None  # when the next retry is asked; None: none to ask
    # Declines ever, never reset: it numbers the retries and the past-due alerts, so a second
    # round (an invoice reopened by a refund or an unlink) never repeats an id of the first.
    declines: int = 0

    def to_row(self) -> list[Any]:
        return [self.invoice_id, self.failures, self.retry_at, self.declines]

    @classmethod
    def from_row(cls, row: list[Any]) -> InvoiceDunning:
        invoice_id, failures, retry_at, declines = row
        return cls(
            invoice_id, int(failures), None if retry_at is None else int(retry_at), int(declines)
        )

    def end_round(self) -> None:
        self.failures, self.retry_at = 0, None


def on_declined(
    dunning: dict[str, InvoiceDunning], invoice_id: str, delays: tuple[int, ...], now: int
) -> tuple[int | None, int]:
    """One more decline of a payment of ``invoice_id``: when its next retry is due (None when
    the schedule is used up: the invoice is past due, the round ends), and the declines so far
    (the past-due alert's cause)."""
    d = dunning.setdefault(invoice_id, InvoiceDunning(invoice_id))
    d.failures += 1
    d.declines += 1
    wait = retry_delay(delays, d.failures)
    if wait is None:
        d.end_round()
        return None, d.declines
    d.retry_at = now + wait
    return d.retry_at, d.declines


def due_retries(
    dunning: dict[str, InvoiceDunning], invoices: Mapping[str, Invoice], now: int
) -> list[TopupRequest]:
    """The retries due at ``now``, in invoice order. An invoice paid off meanwhile ends its
    round instead; one no longer kept drops its row (so rows live as long as their invoices)."""
    out: list[TopupRequest] = []
    for invoice_id in sorted(dunning):
        d = dunning[invoice_id]
        inv = invoices.get(invoice_id)
        if inv is None:
            del dunning[invoice_id]
            continue
        if d.retry_at is None or now < d.retry_at:
            continue
        if inv.remaining <= 0:
            d.end_round()
            continue
        d.retry_at = None
        out.append(
            TopupRequest(
                f"retry:{invoice_id}:{d.declines}",  # the retry after the n-th decline
                inv.customer_id,
                inv.remaining,
                inv.currency,
                now,
                d.failures + 1,
                pays_kind="invoice",
                pays_id=invoice_id,
            )
        )
    return out


def end_dunning(dunning: dict[str, InvoiceDunning], inv: Invoice) -> None:
    """A payment paid the invoice off: no more retries in this round."""
    d = dunning.get(inv.invoice_id)
    if d is not None and inv.remaining <= 0:
        d.end_round()


def encode_dunning(dunning: Mapping[str, InvoiceDunning]) -> list[list[Any]]:
    return [d.to_row() for _, d in sorted(dunning.items())]


def decode_dunning(rows: Iterable[list[Any]] | None) -> dict[str, InvoiceDunning]:
    """``None``: a state written before invoice dunning, which had none."""
    return {d.invoice_id: d for d in (InvoiceDunning.from_row(r) for r in rows or ())}
