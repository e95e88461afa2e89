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
owed: the customer never got their value. Credits held by an open dispute are unspent too: a
refund takes them after the spendable ones (a ``dispute_release`` of the part, then its
``reversal``), so a dispute won later cannot give back credits a refund already took.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from meterline.billing.catalog import Category, check_category
from meterline.billing.grants import Grant, GrantIndex, GrantStatus, UnknownGrant, check_grant
from meterline.billing.ledger import ENTRY_KINDS, EntryKind, LedgerEntry
from meterline.billing.money import ZERO, exact, to_decimal

__all__ = [
    "BurnResult",
    "Grant",
    "GrantStatus",
    "ReversalResult",
    "UnknownGrant",
    "Wallet",
    "check_grant",
]


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
    (signed sum per entry kind) and ``balance`` are kept for reconciliation instead.

    ``grants`` holds the grants the account still needs (retention.py decides; a grant is only
    ever dropped with nothing left, so the balance is still the sum of what is held). The ids of
    dropped grants stay in ``retired`` (id → when it was granted) while a duplicate of the
    command that made them could still arrive: ``knows`` answers for both."""

    customer_id: str
    grants: dict[str, Grant] = field(default_factory=dict)
    seq: int = 0
    grant_seq: int = 0
    balance_total: Decimal = ZERO
    totals: dict[str, Decimal] = field(default_factory=dict)
    retired: dict[str, int] = field(default_factory=dict)
    _index: GrantIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = GrantIndex()
        for g in self.grants.values():
            self._index.sync(g)

    # -- queries -------------------------------------------------------------------------

    def knows(self, grant_id: str) -> bool:
        return grant_id in self.grants or grant_id in self.retired

    def applicable(
        self, at: int, meter: str | None = None, product: str | None = None
    ) -> list[Grant]:
        """Grants that could pay at ``at``, in burn order."""
        grants = self.grants
        return [
            g for gid in self._index.burn_order() if (g := grants[gid]).usable(at, meter, product)
        ]

    @exact
    def balance(self, at: int, meter: str | None = None, product: str | None = None) -> Decimal:
        """Credits spendable at ``at`` (on ``meter`` when given), exact."""
        return sum((g.remaining for g in self.applicable(at, meter, product)), ZERO)

    def expiring_until(self, at: int) -> list[Grant]:
        """Active grants expiring at or before ``at``, earliest first."""
        return [self.grants[gid] for gid in self._index.expiring_until(at)]

    def expiring(self) -> Iterator[Grant]:
        """Active grants with an expiry, earliest first."""
        return (self.grants[gid] for gid in self._index.expiry_order())

    def next_change(self, after: int) -> int | None:
        """The earliest time after ``after`` at which time alone changes the balance: a grant
        taking effect or expiring (one already past its expiry counts as now). Only live
        grants are looked at, a handful whatever the customer's age."""
        times = [
            g.effective_at
            for gid in self._index.burn_order()
            if (g := self.grants[gid]).effective_at > after
        ]
        first = next(self.expiring(), None)
        if first is not None and first.expires_at is not None:
            times.append(max(first.expires_at, after))
        return min(times, default=None)

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
        if self.knows(grant_id):
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
            granted_at=at,
        )
        self.grants[grant_id] = g
        self._index.sync(g)
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
            self._index.sync(g)
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
            self._index.sync(g)
            entries.append(self._write("rebate", g, give, at, ref))
        return entries, amount - left

    @exact
    def expire(self, at: int) -> list[LedgerEntry]:
        """Close every grant whose expiry is at or before ``at``; its remaining is written off."""
        entries: list[LedgerEntry] = []
        for g in self.expiring_until(at):
            g.status = "expired"
            if g.remaining > 0:
                lost, g.remaining = g.remaining, ZERO
                entries.append(self._write("expiry", g, -lost, at, f"expired:{g.expires_at}"))
            self._index.sync(g)
        return entries

    @exact
    def void(self, grant_id: str, at: int, ref: str = "") -> list[LedgerEntry]:
        """Cancel a grant's unspent remaining. Voiding a closed (or retired) grant changes
        nothing."""
        g = self.grants.get(grant_id)
        if g is None:
            if grant_id in self.retired:
                return []
            raise UnknownGrant(grant_id)
        if g.status != "active":
            return []
        g.status = "voided"
        # Credits held by a dispute are already out of the balance: voided with the rest, so
        # no release can bring them back into a voided grant.
        g.held = ZERO
        self._index.sync(g)
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
        active = g.status == "active"
        unspent = g.remaining if active else ZERO
        entries: list[LedgerEntry] = []
        from_held = min(asked - min(asked, unspent), g.held) if active else ZERO
        if from_held > 0:
            # Out of the hold first, so the balance passes through what was held and the
            # reversal below takes it back like any unspent credit.
            g.held -= from_held
            g.remaining += from_held
            entries.append(self._write("dispute_release", g, from_held, at, ref or grant_id))
            unspent += from_held
        taken = min(asked, unspent)
        # (Skipping a zero subtraction keeps the refund's own scale: 5.00 owed, not 5.000.)
        owed = min(asked - taken if taken else asked, g.spent - g.clawed)
        if taken > 0:
            g.remaining -= taken
            g.reversed += taken
            entries.append(self._write("reversal", g, -taken, at, ref or f"refund:{grant_id}"))
        g.clawed += owed
        if g.status == "active" and g.reversed + g.clawed >= g.amount:
            g.status = "reversed"
        self._index.sync(g)
        return ReversalResult(entries, taken, owed)

    @exact
    def hold(self, grant_id: str, amount: Decimal, at: int, ref: str) -> list[LedgerEntry]:
        """Take up to ``amount`` of a grant's unspent credits out of the balance while its
        payment is disputed (a ``dispute_hold`` entry); ``release`` gives them back."""
        g = self.grants.get(grant_id)
        if g is None or g.status != "active":
            return []
        take = min(amount, g.remaining)
        if take <= 0:
            return []
        g.remaining -= take
        g.held += take
        self._index.sync(g)
        return [self._write("dispute_hold", g, -take, at, ref)]

    @exact
    def release(self, grant_id: str, at: int, ref: str) -> list[LedgerEntry]:
        """Put back everything held on a grant (a ``dispute_release`` entry)."""
        g = self.grants.get(grant_id)
        if g is None or g.held <= 0:
            return []
        give, g.held = g.held, ZERO
        g.remaining += give
        self._index.sync(g)
        return [self._write("dispute_release", g, give, at, ref)]

    # -- retention -------------------------------------------------------------------------

    def forget(self, grant_id: str, at: int, horizon: int) -> None:
        """Drop a grant with nothing left. Its id is remembered while it was granted at or after
        ``horizon`` (when its grant time is unknown, from ``at`` on)."""
        g = self.grants[grant_id]
        if g.remaining != 0:
            raise ValueError(f"grant {grant_id} still holds {g.remaining}")
        del self.grants[grant_id]
        self._index.discard(grant_id)
        since = g.granted_at if g.granted_at is not None else at
        if since >= horizon:
            self.retired[grant_id] = since

    def forget_retired(self, horizon: int) -> None:
        """Forget the ids of dropped grants granted before ``horizon``."""
        for grant_id in [r for r, since in self.retired.items() if since < horizon]:
            del self.retired[grant_id]

    # -- state -----------------------------------------------------------------------------

    def to_dict(self, *, grants: bool = True) -> dict[str, Any]:
        """``grants=False``: the wallet without its grants, for a caller that writes them in its
        own form (state.py) and gives them back to ``from_dict`` as ``extra``."""
        out: dict[str, Any] = {
            "customer_id": self.customer_id,
            "grants": [g.to_dict() for g in self.grants.values()] if grants else [],
            "seq": self.seq,
            "grant_seq": self.grant_seq,
            "balance_total": str(self.balance_total),
            "totals": {k: str(v) for k, v in sorted(self.totals.items())},
        }
        if self.retired:
            out["retired"] = dict(sorted(self.retired.items()))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], extra: Iterable[Grant] = ()) -> Wallet:
        """``extra``: grants stored elsewhere in the account state (state.py keeps paid top-up
        grants with their payments); the wallet holds them all in creation order."""
        totals = {k: to_decimal(v) for k, v in data.get("totals", {}).items()}
        if any(k not in ENTRY_KINDS for k in totals):
            raise ValueError("unknown ledger kind in wallet totals")
        grants = [Grant.from_dict(g) for g in data.get("grants", ())]
        grants += extra
        grants.sort(key=lambda g: g.created_seq)
        return cls(
            data["customer_id"],
            {g.grant_id: g for g in grants},
            int(data.get("seq", 0)),
            int(data.get("grant_seq", 0)),
            to_decimal(data.get("balance_total", "0")),
            totals,
            {k: int(v) for k, v in data.get("retired", {}).items()},
        )
