"""Credit grants and the wallet that burns them down.

Burn order, applied to the grants that can pay at the moment of use (effective, not expired,
scope covering the meter or its product): lower ``priority`` first, then earliest ``expires_at``
(never-expiring last), then oldest (``created_seq``), so credits about to lapse are used before
ones that keep.

Refunds (``reverse``): a refund first takes back what is still unspent on the refunded grant
(a ``reversal`` entry). The part already spent cannot be taken back as credits without robbing
other grants (possibly promotional or scoped to other products), and the wallet never goes
negative, so it is returned as ``unrecovered``: the account records it as money owed and bills it
on the next invoice. Credits that had already expired or been voided are neither reversed nor
owed: the customer never got their value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from meterline.billing.catalog import Category, check_category
from meterline.billing.ledger import ENTRY_KINDS, EntryKind, LedgerEntry
from meterline.billing.money import ZERO, exact, to_decimal

GrantStatus = Literal["active", "expired", "voided", "reversed"]


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

    def burn_key(self) -> tuple[int, bool, int, int]:
        return (
            self.priority,
            self.expires_at is None,
            self.expires_at or 0,
            self.created_seq,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grant:
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


@dataclass(frozen=True, slots=True)
class BurnResult:
    entries: list[LedgerEntry]
    covered: Decimal
    uncovered: Decimal  # no applicable credit: overage

    @property
    def debits(self) -> dict[str, Decimal]:
        return {e.grant_id: -e.amount for e in self.entries}


@dataclass(frozen=True, slots=True)
class ReversalResult:
    entries: list[LedgerEntry]
    reversed: Decimal
    unrecovered: Decimal  # already spent: owed as money


@dataclass(slots=True)
class Wallet:
    """One customer's grants. Entries are returned to the caller to publish, not kept: a Faust
    table value that grew with every debit would make each changelog write ever larger. ``totals``
    (signed sum per entry kind) and ``balance`` are kept for reconciliation instead."""

    customer_id: str
    grants: dict[str, Grant] = field(default_factory=dict)
    seq: int = 0
    grant_seq: int = 0
    balance_total: Decimal = ZERO
    totals: dict[str, Decimal] = field(default_factory=dict)

    # -- queries -------------------------------------------------------------------------

    def applicable(
        self, at: int, meter: str | None = None, product: str | None = None
    ) -> list[Grant]:
        """Grants that could pay at ``at``, in burn order."""
        usable = (g for g in self.grants.values() if g.usable(at, meter, product))
        return sorted(usable, key=Grant.burn_key)

    @exact
    def balance(self, at: int, meter: str | None = None, product: str | None = None) -> Decimal:
        """Credits spendable at ``at`` (on ``meter`` when given), exact."""
        return sum((g.remaining for g in self.applicable(at, meter, product)), ZERO)

    # -- writes ----------------------------------------------------------------------------

    def _write(
        self, kind: EntryKind, grant: Grant, amount: Decimal, at: int, ref: str
    ) -> LedgerEntry:
        self.seq += 1
        self.balance_total += amount
        self.totals[kind] = self.totals.get(kind, ZERO) + amount
        return LedgerEntry(
            f"{self.customer_id}:{self.seq}",
            self.seq,
            self.customer_id,
            at,
            kind,
            amount,
            self.balance_total,
            grant.grant_id,
            ref,
        )

    @exact
    def grant(
        self,
        grant_id: str,
        amount: Decimal,
        at: int,
        *,
        priority: int = 0,
        effective_at: int | None = None,
        expires_at: int | None = None,
        scope: Iterable[str] = (),
        category: Category = "promotional",
        kind: EntryKind = "grant",
        ref: str = "",
    ) -> list[LedgerEntry]:
        """Add a grant; a grant_id already known changes nothing (replays, duplicate commands)."""
        if grant_id in self.grants:
            return []
        effective = at if effective_at is None else effective_at
        check_grant(grant_id, amount, effective, expires_at, category)
        self.grant_seq += 1
        g = Grant(
            grant_id,
            amount,
            amount,
            priority,
            effective,
            expires_at,
            frozenset(scope),
            check_category(category),
            self.grant_seq,
        )
        self.grants[grant_id] = g
        return [self._write(kind, g, amount, at, ref or grant_id)]

    @exact
    def burn(
        self, amount: Decimal, meter: str, at: int, ref: str, product: str | None = None
    ) -> BurnResult:
        """Debit ``amount`` from applicable grants in burn order; what none covers is overage."""
        if amount < 0:
            raise ValueError("burn amount must not be negative")
        entries: list[LedgerEntry] = []
        left = amount
        for g in self.applicable(at, meter, product):
            if left == 0:
                break
            take = min(left, g.remaining)
            g.remaining -= take
            g.spent += take
            left -= take
            entries.append(self._write("debit", g, -take, at, ref))
        return BurnResult(entries, amount - left, left)

    @exact
    def credit_back(
        self, sources: Mapping[str, Decimal], amount: Decimal, at: int, ref: str
    ) -> tuple[list[LedgerEntry], Decimal]:
        """Return up to ``amount`` to the grants in ``sources`` (grant_id → most that may go back
        to it, tried in the mapping's order); only grants still usable at ``at`` take it.
        Returns the entries and what was returned."""
        entries: list[LedgerEntry] = []
        left = amount
        for grant_id, most in sources.items():
            g = self.grants.get(grant_id)
            if left == 0:
                break
            if (
                g is None
                or g.status != "active"
                or (g.expires_at is not None and at >= g.expires_at)
            ):
                continue
            give = min(left, most, g.spent)
            if give <= 0:
                continue
            g.remaining += give
            g.spent -= give
            left -= give
            entries.append(self._write("rebate", g, give, at, ref))
        return entries, amount - left

    @exact
    def expire(self, at: int) -> list[LedgerEntry]:
        """Close every grant whose expiry is at or before ``at``; its remaining is written off."""
        entries: list[LedgerEntry] = []
        due = [
            g
            for g in self.grants.values()
            if g.status == "active" and g.expires_at is not None and g.expires_at <= at
        ]
        for g in sorted(due, key=lambda g: (g.expires_at, g.created_seq)):
            g.status = "expired"
            if g.remaining > 0:
                lost, g.remaining = g.remaining, ZERO
                entries.append(self._write("expiry", g, -lost, at, f"expired:{g.expires_at}"))
        return entries

    @exact
    def void(self, grant_id: str, at: int, ref: str = "") -> list[LedgerEntry]:
        """Cancel a grant's unspent remaining. Voiding a closed grant changes nothing."""
        g = self.grants.get(grant_id)
        if g is None:
            raise UnknownGrant(grant_id)
        if g.status != "active":
            return []
        g.status = "voided"
        if g.remaining == 0:
            return []
        lost, g.remaining = g.remaining, ZERO
        return [self._write("void", g, -lost, at, ref or f"void:{grant_id}")]

    @exact
    def reverse(
        self, grant_id: str, amount: Decimal | None, at: int, ref: str = ""
    ) -> ReversalResult:
        """Refund ``amount`` of a grant (None: all of it); see the module doc for the rule."""
        g = self.grants.get(grant_id)
        if g is None:
            raise UnknownGrant(grant_id)
        refundable = g.amount - g.reversed - g.clawed
        asked = refundable if amount is None else min(amount, refundable)
        if asked <= 0:
            return ReversalResult([], ZERO, ZERO)
        unspent = g.remaining if g.status == "active" else ZERO
        taken = min(asked, unspent)
        # (Skipping a zero subtraction keeps the refund's own scale: 5.00 owed, not 5.000.)
        owed = min(asked - taken if taken else asked, g.spent - g.clawed)
        entries: list[LedgerEntry] = []
        if taken > 0:
            g.remaining -= taken
            g.reversed += taken
            entries.append(self._write("reversal", g, -taken, at, ref or f"refund:{grant_id}"))
        g.clawed += owed
        if g.status == "active" and g.reversed + g.clawed >= g.amount:
            g.status = "reversed"
        return ReversalResult(entries, taken, owed)

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "grants": [g.to_dict() for g in self.grants.values()],
            "seq": self.seq,
            "grant_seq": self.grant_seq,
            "balance_total": str(self.balance_total),
            "totals": {k: str(v) for k, v in sorted(self.totals.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Wallet:
        totals = {k: to_decimal(v) for k, v in data.get("totals", {}).items()}
        if any(k not in ENTRY_KINDS for k in totals):
            raise ValueError("unknown ledger kind in wallet totals")
        return cls(
            data["customer_id"],
            {g["grant_id"]: Grant.from_dict(g) for g in data.get("grants", ())},
            int(data.get("seq", 0)),
            int(data.get("grant_seq", 0)),
            to_decimal(data.get("balance_total", "0")),
            totals,
        )
