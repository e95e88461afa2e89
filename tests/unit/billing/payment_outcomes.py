"""A builder of payment outcomes for the payment tests, in the dict form the adapter decodes."""

from __future__ import annotations

from meterline.billing.account import Account
from meterline.billing.payments import PaymentOutcome

from .accounts import START, new_account
from .helpers import DAY, HOUR


def pay(
    payment_id: str,
    status: str,
    amount: str,
    pays: str,
    at: int,
    kind: str = "invoice",
    **extra: str,
) -> PaymentOutcome:
    return PaymentOutcome.from_dict(
        {
            "payment_id": payment_id,
            "customer_id": "cust",
            "processor": "acme",
            "status": status,
            "amount": amount,
            "currency": "USD",
            "pays_kind": kind,
            "pays_id": pays,
            "occurred_at": at,
            "failure_code": "card_declined" if status == "failed" else None,
            **extra,
        }
    )


def invoiced_account() -> tuple[Account, str, int]:
    """An account whose first period is invoiced (10.00 due: the fee), and the time then."""
    account = new_account()
    at = START + 40 * DAY
    inv_id = account.tick(at).invoices[0].invoice_id
    assert account.invoices[inv_id].amount_due == 10
    return account, inv_id, at + HOUR
