"""Credit ledger entries: the append-only record of every change to a customer's credits.

Amounts are signed (grants and top-ups positive; debits, expiries, voids and reversals negative;
rebates positive), so a customer's ledger balance is exactly the sum of its entries.
``balance_after`` is that running sum: it includes credits granted but not yet effective, which
``Wallet.balance(at)`` (what can be spent now) leaves out.

``entry_id`` is ``f"{customer_id}:{seq}"`` with ``seq`` the wallet's own entry counter: the wallet
is only written by its customer's single writer, in input order, so a replay of the same input
writes the same ids and the sink dedups them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, get_args

from meterline.billing.money import plain, to_decimal

# overpayment: the excess of an invoice payment, granted as paid credits; dispute_hold and
# dispute_release: credits of a disputed payment taken out of, and put back into, the balance.
EntryKind = Literal[
    "grant",
    "topup",
    "debit",
    "rebate",
    "expiry",
    "void",
    "reversal",
    "overpayment",
    "dispute_hold",
    "dispute_release",
]
ENTRY_KINDS: tuple[EntryKind, ...] = get_args(EntryKind)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    entry_id: str
    seq: int
    customer_id: str
    at: int
    kind: EntryKind
    amount: Decimal
    balance_after: Decimal
    grant_id: str
    ref: str  # what caused it: usage event id, payment id, period, command id

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "seq": self.seq,
            "customer_id": self.customer_id,
            "at": self.at,
            "kind": self.kind,
            # Credits are exact, never rounded: plain, not money_text (money.py).
            "amount": plain(self.amount),
            "balance_after": plain(self.balance_after),
            "grant_id": self.grant_id,
            "ref": self.ref,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        if data["kind"] not in ENTRY_KINDS:
            raise ValueError(f"unknown ledger entry kind {data['kind']!r}")
        return cls(
            data["entry_id"],
            int(data["seq"]),
            data["customer_id"],
            int(data["at"]),
            data["kind"],
            to_decimal(data["amount"]),
            to_decimal(data["balance_after"]),
            data["grant_id"],
            data["ref"],
        )
