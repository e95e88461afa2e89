"""One credit grant, and the index that lets a wallet touch only the grants that can still act.

A grant is *spendable* while it is active with something left; it is *expiring* while it is
active with an ``expires_at`` (exhausted ones too: expiry still closes them). The index keeps the
spendable grants in burn order and the expiring ones in expiry order, so a burn walks only live
grants and an expiry pass looks only at the front of its list, however many grants the customer
has had. The wallet keeps the index in step with every change it makes (``sync``); nothing else
writes a grant.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from meterline.billing.catalog import Category, check_category
from meterline.billing.money import ZERO, to_decimal

GrantStatus = Literal["active", "expired", "voided", "reversed"]
BurnKey = tuple[int, bool, int, int]


class UnknownGrant(KeyError):
    pass


@dataclass(slots=True)
class Grant:
    grant_id: str
    amount: Decimal
    remaining: Decimal
    priority: int
    effective_at: int
    expires_at: int | None
    scope: frozenset[str]
    category: Category
    created_seq: int
    status: GrantStatus = "active"
    spent: Decimal = ZERO  # net of debits and rebates; what a refund can claw back
    reversed: Decimal = ZERO  # unspent credits taken back by refunds
    clawed: Decimal = ZERO  # spent credits a refund turned into money owed
    # When the wallet made it (None: a grant from a state written before this was kept). How
    # long its id must be remembered after it is dropped is counted from here (retention.py).
    granted_at: int | None = None
    held: Decimal = ZERO  # unspent credits out of the balance while its payment is disputed

    def covers(self, meter: str | None, product: str | None) -> bool:
        if meter is None or not self.scope:
            return True
        return meter in self.scope or (product is not None and product in self.scope)

    def usable(self, at: int, meter: str | None, product: str | None) -> bool:
        return (
            self.status == "active"
            and self.remaining > 0
            and self.effective_at <= at
            and (self.expires_at is None or at < self.expires_at)
            and self.covers(meter, product)
        )

    def burn_key(self) -> BurnKey:
        return (
            self.priority,
            self.expires_at is None,
            self.expires_at or 0,
            self.created_seq,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "grant_id": self.grant_id,
            "amount": str(self.amount),
            "remaining": str(self.remaining),
            "priority": self.priority,
            "effective_at": self.effective_at,
            "expires_at": self.expires_at,
            "scope": sorted(self.scope),
            "category": self.category,
            "created_seq": self.created_seq,
            "status": self.status,
            "spent": str(self.spent),
            "reversed": str(self.reversed),
            "clawed": str(self.clawed),
        }
        if self.granted_at is not None:
            out["granted_at"] = self.granted_at
        if self.held:
            out["held"] = str(self.held)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grant:
        granted_at = data.get("granted_at")
        return cls(
            data["grant_id"],
            to_decimal(data["amount"]),
            to_decimal(data["remaining"]),
            int(data["priority"]),
            int(data["effective_at"]),
            None if data["expires_at"] is None else int(data["expires_at"]),
            frozenset(data["scope"]),
            check_category(data["category"]),
            int(data["created_seq"]),
            data["status"],
            to_decimal(data["spent"]),
            to_decimal(data["reversed"]),
            to_decimal(data["clawed"]),
            None if granted_at is None else int(granted_at),
            to_decimal(data.get("held", "0")),
        )


def check_grant(
    grant_id: str, amount: Decimal, effective_at: int, expires_at: int | None, category: str
) -> None:
    """Raise ValueError for a grant that cannot be made."""
    if amount <= 0:
        raise ValueError(f"grant {grant_id}: amount must be positive")
    if expires_at is not None and expires_at <= effective_at:
        raise ValueError(f"grant {grant_id}: expires_at must be after effective_at")
    check_category(category)


class GrantIndex:
    """Spendable grants in burn order, expiring grants in expiry order. Sorted lists with
    ``bisect``: an insert or a removal is a binary search plus a move of a few pointers, and
    a customer has a handful of live grants whatever its age."""

    __slots__ = ("_burn", "_expiry", "_keys")

    def __init__(self) -> None:
        self._burn: list[tuple[BurnKey, str]] = []
        self._expiry: list[tuple[int, int, str]] = []  # (expires_at, created_seq, grant_id)
        # grant_id -> (its burn entry or None, its expiry entry or None)
        self._keys: dict[str, tuple[tuple[BurnKey, str] | None, tuple[int, int, str] | None]] = {}

    def sync(self, g: Grant) -> None:
        """Put ``g`` where its current status and remaining say it belongs."""
        old_burn, old_expiry = self._keys.get(g.grant_id, (None, None))
        active = g.status == "active"
        burn = (g.burn_key(), g.grant_id) if active and g.remaining > 0 else None
        expiry = (
            (g.expires_at, g.created_seq, g.grant_id)
            if active and g.expires_at is not None
            else None
        )
        if burn != old_burn:
            if old_burn is not None:
                _remove(self._burn, old_burn)
            if burn is not None:
                insort(self._burn, burn)
        if expiry != old_expiry:
            if old_expiry is not None:
                _remove(self._expiry, old_expiry)
            if expiry is not None:
                insort(self._expiry, expiry)
        if burn is None and expiry is None:
            self._keys.pop(g.grant_id, None)
        else:
            self._keys[g.grant_id] = (burn, expiry)

    def discard(self, grant_id: str) -> None:
        burn, expiry = self._keys.pop(grant_id, (None, None))
        if burn is not None:
            _remove(self._burn, burn)
        if expiry is not None:
            _remove(self._expiry, expiry)

    def burn_order(self) -> Iterator[str]:
        return (grant_id for _, grant_id in self._burn)

    def expiry_order(self) -> Iterator[str]:
        return (grant_id for _, _, grant_id in self._expiry)

    def expiring_until(self, at: int) -> list[str]:
        """Ids of active grants with ``expires_at <= at``, earliest expiry (then oldest) first."""
        end = bisect_left(self._expiry, (at + 1, -1, ""))  # created_seq counts from 1
        return [grant_id for _, _, grant_id in self._expiry[:end]]


def _remove(entries: list[Any], entry: Any) -> None:
    i = bisect_left(entries, entry)
    if i < len(entries) and entries[i] == entry:
        del entries[i]
