"""A customer's account as the processor keeps it: the billing ``Account``, the last input
offset it applied per source partition, and an outbox of effects not yet published.

The outbox is part of the same changelog record as the account, so an effect exists exactly
when the state that produced it does; the checkpoint publishes and stores it only once that
state is durable, then clears it. Every effect carries a deterministic id, so a
re-publication after a crash repeats the same facts.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from meterline.billing.account import Account
from meterline.billing.effects import Effects

OUTBOX_KINDS = ("entries", "topups", "alerts", "invoices", "payments")


class _Unknown(Enum):
    UNKNOWN = "unknown"


UNKNOWN = _Unknown.UNKNOWN


class AccountState:
    """The billing ``Account`` is decoded on first use: after a restart the checkpoint walks
    every owned state for its outbox, and building 100,000 accounts (plans, grants, the open
    period) to read that was most of the time to ready. Stored, the account is a JSON
    document of its own after the rest of the record (``to_parts``), so reading the outbox
    does not even parse it, and an account never used is written back byte for byte.

    The record also keeps the account's ``next_due`` (billing/closing.py): the wall-clock
    tick of 100,000 accounts then decodes only those with a timed change due, not every
    account every minute."""

    __slots__ = (
        "_account",
        "_encoded",
        "applied",
        "balance_dirty",
        "customer_id",
        "outbox",
        "stored_due",
        "version",
    )

    def __init__(
        self,
        customer_id: str,
        account: Account | None = None,
        applied: dict[str, int] | None = None,
        version: int = 0,
        outbox: dict[str, list[dict]] | None = None,
        balance_dirty: bool = False,
        *,
        encoded: dict[str, Any] | bytes | None = None,
        stored_due: int | _Unknown | None = UNKNOWN,
    ) -> None:
        if (account is None) == (encoded is None):
            raise ValueError("an AccountState needs exactly one of account and encoded")
        self.customer_id = customer_id
        self._account = account
        self._encoded = encoded
        self.applied = applied if applied is not None else {}
        self.version = version
        self.outbox = outbox if outbox is not None else {k: [] for k in OUTBOX_KINDS}
        self.balance_dirty = balance_dirty
        # The encoded account's next_due as its record said (UNKNOWN: a record written
        # before it was kept, which is ticked to be safe).
        self.stored_due = stored_due

    def next_due_at(self) -> int | None:
        """When a tick may next have an effect (0: unknown, so at once; None: never)."""
        return self._due_header().get("n", 0)

    @staticmethod
    def header_due(header: dict[str, Any]) -> int | None:
        """next_due_at from the record's header alone."""
        return header.get("n", 0)

    def due(self, now: int) -> bool:
        """Whether a tick at ``now`` may have an effect; answered without decoding an
        account that is still encoded."""
        due = self._due_header().get("n", now)
        return due is not None and now >= due

    @property
    def account(self) -> Account:
        if self._account is None:
            assert self._encoded is not None
            data = self._encoded
            self._account = Account.from_dict(json.loads(data) if isinstance(data, bytes) else data)
            self._encoded = None
        return self._account

    @account.setter
    def account(self, account: Account) -> None:
        self._account = account
        self._encoded = None

    def record(self, fx: Effects) -> None:
        self.outbox["entries"] += [e.to_dict() for e in fx.entries]
        self.outbox["topups"] += [t.to_dict() for t in fx.topups]
        self.outbox["alerts"] += [a.to_dict() for a in fx.alerts]
        self.outbox["invoices"] += [i.to_dict() for i in fx.invoices]
        self.outbox["payments"] += [p.to_dict() for p in fx.payments]
        self.balance_dirty = True

    @property
    def has_outbox(self) -> bool:
        return self.balance_dirty or any(self.outbox.values())

    @staticmethod
    def header_has_outbox(header: dict[str, Any]) -> bool:
        """has_outbox from the record's header alone (to_parts), without the account."""
        return bool(header.get("b")) or any(header.get("o", {}).values())

    def outbound_records(self) -> list[tuple[str, dict[str, Any]]]:
        """(topic kind, record) for meterline.topups, .alerts and .invoices."""
        o = self.outbox
        return (
            [("topups", t) for t in o["topups"]]
            + [("alerts", a) for a in o["alerts"]]
            + [("invoices", i) for i in o["invoices"]]
        )

    def clear_outbox(self) -> None:
        self.outbox = {k: [] for k in OUTBOX_KINDS}
        self.balance_dirty = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "c": self.customer_id,
            "a": self._account_dict(),
            "applied": self.applied,
            "v": self.version,
            "o": self.outbox,
            "b": self.balance_dirty,
            **self._due_header(),
        }

    def _due_header(self) -> dict[str, int | None]:
        due = self._account.next_due() if self._account is not None else self.stored_due
        return {} if due is UNKNOWN else {"n": due}

    def _account_dict(self) -> dict[str, Any]:
        if self._account is not None:
            return self._account.to_dict()
        data = self._encoded
        assert data is not None
        return json.loads(data) if isinstance(data, bytes) else data

    def to_parts(self) -> tuple[dict[str, Any], bytes]:
        """(the record without its account, the account as compact JSON)."""
        header = {
            "c": self.customer_id,
            "applied": self.applied,
            "v": self.version,
            "o": self.outbox,
            "b": self.balance_dirty,
            **self._due_header(),
        }
        if self._account is None and isinstance(self._encoded, bytes):
            # Never decoded since it was read: written back exactly as it was.
            return header, self._encoded
        return header, json.dumps(self._account_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_parts(cls, header: dict[str, Any], account: bytes) -> AccountState:
        return cls._from(header, account)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountState:
        return cls._from(data, data["a"])

    @classmethod
    def _from(cls, data: dict[str, Any], account: dict[str, Any] | bytes) -> AccountState:
        return cls(
            data["c"],
            None,
            {k: int(v) for k, v in data["applied"].items()},
            int(data["v"]),
            {k: list(data["o"].get(k, [])) for k in OUTBOX_KINDS},
            bool(data["b"]),
            encoded=account,
            stored_due=data.get("n", UNKNOWN),
        )
