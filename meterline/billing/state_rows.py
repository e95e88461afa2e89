"""Rows for the many things of a busy account's state: its payments, the top-up grants they
bought, and the wallet's other grants (state.py has the why and the rest).

A top-up payment and its grant share one row: every field the two have in common or can derive
(grant id, amount, category, scope) is written once, times and sequence numbers are differences
from the previous row, and a field at its usual value is left out. Decimals are kept as the
strings they print as, and a field is left out only when its string equals the one its default
would print, so a row decodes to exactly what was encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, cast

from meterline.billing.catalog import check_category
from meterline.billing.credits import Grant, Wallet
from meterline.billing.grants import GrantStatus
from meterline.billing.money import EXACT, ZERO, to_decimal
from meterline.billing.payment_types import PaymentRecord, PaysKind, default_applied

_PAYMENT_CODES: dict[str, str] = {
    "succeeded": "s",
    "failed": "f",
    "refunded": "r",
    "canceled": "c",
    "dispute_opened": "o",
    "dispute_won": "w",
    "dispute_lost": "l",
    "unlinked": "u",
}
_GRANT_CODES: dict[str, str] = {"active": "a", "expired": "e", "voided": "v", "reversed": "r"}
_PAYMENT_NAMES = {v: k for k, v in _PAYMENT_CODES.items()}
_GRANT_NAMES = {v: k for k, v in _GRANT_CODES.items()}


# -- payments and the top-up grants they bought ----------------------------------------------


def _topup_grant_id(payment_id: str) -> str:
    return f"topup:{payment_id}"


def request_number(prefix: str, pays_id: str) -> int | None:
    """n of a request id ``{prefix}{n}`` written the way topup.py writes it, else None."""
    if not pays_id.startswith(prefix):
        return None
    tail = pays_id[len(prefix) :]
    if tail.isascii() and tail.isdigit() and (tail[0] != "0" or tail == "0"):
        return int(tail)
    return None


class _Defaults:
    """The strings a joined grant's fields print as when at their usual values, memoised per
    encode or decode: a busy account's rows repeat a handful of amounts. Keys are strings, never
    Decimals (1.0 == 1.00, but they print differently)."""

    __slots__ = ("_decimals", "_spent", "_zero")

    def __init__(self) -> None:
        self._decimals: dict[str, Decimal] = {}
        self._zero: dict[str, str] = {}
        self._spent: dict[tuple[str, str, str], str] = {}

    def decimal(self, raw: str) -> Decimal:
        value = self._decimals.get(raw)
        if value is None:
            value = self._decimals[raw] = to_decimal(raw)
        return value

    def zero(self, amount: str) -> str:
        """What an exhausted grant's remaining prints as: amount - amount (its scale)."""
        out = self._zero.get(amount)
        if out is None:
            d = self.decimal(amount)
            out = self._zero[amount] = str(EXACT.subtract(d, d))
        return out

    def spent(self, amount: str, remaining: str, reversed_: str) -> str:
        """What a grant only burned and refunded has spent: amount - remaining - reversed."""
        key = (amount, remaining, reversed_)
        out = self._spent.get(key)
        if out is None:
            left = EXACT.subtract(self.decimal(amount), self.decimal(remaining))
            out = self._spent[key] = str(EXACT.subtract(left, self.decimal(reversed_)))
        return out


def _grant_extras(
    g: Grant, amount: str, last_at: int, paid_priority: int, d: _Defaults
) -> dict[str, Any]:
    x: dict[str, Any] = {}
    remaining, reversed_ = str(g.remaining), str(g.reversed)
    if remaining != d.zero(amount):
        x["r"] = remaining
    if g.priority != paid_priority:
        x["p"] = g.priority
    if g.effective_at != last_at:
        x["e"] = last_at - g.effective_at
    if g.granted_at != g.effective_at:
        x["ga"] = g.granted_at
    if g.status != "active":
        x["st"] = _GRANT_CODES[g.status]
    spent = str(g.spent)
    if spent != d.spent(amount, remaining, reversed_):
        x["sp"] = spent
    if reversed_ != "0":
        x["rv"] = reversed_
    if (clawed := str(g.clawed)) != "0":
        x["cl"] = clawed
    if (held := str(g.held)) != "0":
        x["hd"] = held
    return x


def encode_payments(
    records: Iterable[PaymentRecord], wallet: Wallet, customer_id: str, paid_priority: int
) -> tuple[list[list[Any]], set[str]]:
    """Rows ``[payment_id, pays, statuses, captured, Δlast_at, Δgrant_seq | None, extras]``
    (trailing empties left out) and the ids of the grants written into them. A grant is
    written into its payment's row when it is exactly what a succeeded top-up makes (paid,
    unscoped, never expiring, of the amount captured), so the row can derive the rest."""
    rows: list[list[Any]] = []
    joined: set[str] = set()
    grants = wallet.grants
    prefix = f"topup:{customer_id}:"
    d = _Defaults()
    at = seq = n = 0
    for rec in sorted(records, key=lambda r: (r.last_at or 0, r.payment_id)):
        last_at = rec.last_at or 0
        number = request_number(prefix, rec.pays_id) if rec.pays_kind == "topup" else None
        pays: int | str
        if number is not None:
            pays, n = number - n, number
        else:
            pays = f"{rec.pays_kind[0]}:{rec.pays_id}"
        captured = str(rec.captured)
        x: dict[str, Any] = {}
        if (refunded := str(rec.refunded)) != "0":
            x["rf"] = refunded
        x.update(_record_extras(rec))
        grant_seq: int | None = None
        if rec.grant_id is not None:
            g = grants.get(rec.grant_id)
            if (
                g is not None
                and rec.grant_id == _topup_grant_id(rec.payment_id)
                and g.category == "paid"
                and g.expires_at is None
                and not g.scope
                and str(g.amount) == captured
            ):
                joined.add(rec.grant_id)
                grant_seq, seq = g.created_seq - seq, g.created_seq
                x.update(_grant_extras(g, captured, last_at, paid_priority, d))
            else:
                x["gid"] = rec.grant_id  # kept in the wallet's own list, or already gone
        statuses = "".join([_PAYMENT_CODES[s] for s in rec.statuses])
        row: list[Any] = [rec.payment_id, pays, statuses, captured, last_at - at]
        at = last_at
        if x:
            row += (grant_seq, x)
        elif grant_seq is not None:
            row.append(grant_seq)
        rows.append(row)
    return rows, joined


def decode_payments(
    rows: Iterable[list[Any]], customer_id: str, paid_priority: int
) -> tuple[list[PaymentRecord], list[Grant]]:
    records: list[PaymentRecord] = []
    grants: list[Grant] = []
    d = _Defaults()
    prefix = f"topup:{customer_id}:"
    at = seq = n = 0
    for row in rows:
        payment_id, pays, statuses, captured_raw, d_at = row[:5]
        grant_seq: int | None = row[5] if len(row) > 5 else None
        x: dict[str, Any] = row[6] if len(row) > 6 else {}
        at += int(d_at)
        kind: PaysKind
        if isinstance(pays, int):
            n += pays
            kind, pays_id = "topup", f"{prefix}{n}"
        else:
            kind = "topup" if pays[0] == "t" else "invoice"
            pays_id = pays[2:]
        captured = d.decimal(captured_raw)
        grant_id = x.get("gid")
        if grant_seq is not None:
            seq += int(grant_seq)
            grant_id = _topup_grant_id(payment_id)
            grants.append(_decode_grant(grant_id, captured_raw, seq, at, x, paid_priority, d))
        names = [_PAYMENT_NAMES[c] for c in statuses]
        refunded = d.decimal(x.get("rf", "0"))
        method_id, method_name = x.get("pm", (None, None))
        applied = x.get("ap")
        records.append(
            PaymentRecord(
                payment_id,
                kind,
                pays_id,
                names,
                captured,
                refunded,
                grant_id,
                at,
                method_id,
                method_name,
                default_applied(kind, names, captured, refunded)
                if applied is None
                else d.decimal(applied),
                d.decimal(x.get("dp", "0")),
                d.decimal(x.get("do", "0")),
                x.get("la"),
                *_decode_fx(x, d),
            )
        )
    return records, grants


def _decode_fx(x: Mapping[str, Any], d: _Defaults) -> tuple[str | None, Decimal | None, Decimal]:
    """A payment in its invoice's own currency: currency, rate and credited part."""
    if "fx" not in x:
        return None, None, ZERO
    currency, rate, credited = x["fx"]
    return currency, d.decimal(rate), d.decimal(credited)


def _record_extras(rec: PaymentRecord) -> dict[str, Any]:
    """The record's newer fields, each only when not at its usual value (rows written before
    them decode to exactly those values)."""
    x: dict[str, Any] = {}
    if rec.method_id is not None or rec.method_name is not None:
        x["pm"] = [rec.method_id, rec.method_name]
    applied = str(rec.applied)
    if applied != str(default_applied(rec.pays_kind, rec.statuses, rec.captured, rec.refunded)):
        x["ap"] = applied
    if (disputed := str(rec.disputed)) != "0":
        x["dp"] = disputed
    if (off := str(rec.dispute_off)) != "0":
        x["do"] = off
    if rec.link_at is not None:
        x["la"] = rec.link_at
    if rec.rate is not None:
        x["fx"] = [rec.currency, str(rec.rate), str(rec.credited)]
    return x


def _decode_grant(
    grant_id: str,
    amount: str,
    seq: int,
    last_at: int,
    x: Mapping[str, Any],
    paid_priority: int,
    d: _Defaults,
) -> Grant:
    remaining = x.get("r") or d.zero(amount)
    reversed_ = x.get("rv", "0")
    spent = x.get("sp") or d.spent(amount, remaining, reversed_)
    effective_at = last_at - int(x.get("e", 0))
    return Grant(
        grant_id,
        d.decimal(amount),
        d.decimal(remaining),
        int(x.get("p", paid_priority)),
        effective_at,
        None,
        frozenset(),
        "paid",
        seq,
        cast(GrantStatus, _GRANT_NAMES[x.get("st", "a")]),
        d.decimal(spent),
        d.decimal(reversed_),
        d.decimal(x.get("cl", "0")),
        x.get("ga", effective_at),
        d.decimal(x.get("hd", "0")),
    )


# -- the wallet's other grants ---------------------------------------------------------------


def encode_grant(g: Grant, d: _Defaults | None = None) -> list[Any]:
    """``[grant_id, amount, created_seq, effective_at, extras]``; a promotional, unscoped,
    never-expiring, exhausted grant of priority 0 granted at its effective time has none."""
    d = d or _Defaults()
    amount, remaining, reversed_ = str(g.amount), str(g.remaining), str(g.reversed)
    x: dict[str, Any] = {}
    if remaining != d.zero(amount):
        x["r"] = remaining
    if g.priority:
        x["p"] = g.priority
    if g.expires_at is not None:
        x["x"] = g.expires_at
    if g.scope:
        x["sc"] = sorted(g.scope)
    if g.category != "promotional":
        x["c"] = g.category
    if g.status != "active":
        x["st"] = _GRANT_CODES[g.status]
    if (spent := str(g.spent)) != d.spent(amount, remaining, reversed_):
        x["sp"] = spent
    if reversed_ != "0":
        x["rv"] = reversed_
    if (clawed := str(g.clawed)) != "0":
        x["cl"] = clawed
    if g.granted_at != g.effective_at:
        x["ga"] = g.granted_at
    if (held := str(g.held)) != "0":
        x["hd"] = held
    row: list[Any] = [g.grant_id, amount, g.created_seq, g.effective_at]
    if x:
        row.append(x)
    return row


def decode_grant(row: list[Any], d: _Defaults | None = None) -> Grant:
    d = d or _Defaults()
    grant_id, amount, seq, effective_at = row[:4]
    x: dict[str, Any] = row[4] if len(row) > 4 else {}
    remaining = x.get("r") or d.zero(amount)
    reversed_ = x.get("rv", "0")
    return Grant(
        grant_id,
        d.decimal(amount),
        d.decimal(remaining),
        int(x.get("p", 0)),
        int(effective_at),
        x.get("x"),
        frozenset(x.get("sc", ())),
        check_category(x.get("c", "promotional")),
        int(seq),
        cast(GrantStatus, _GRANT_NAMES[x.get("st", "a")]),
        d.decimal(x.get("sp") or d.spent(amount, remaining, reversed_)),
        d.decimal(reversed_),
        d.decimal(x.get("cl", "0")),
        x.get("ga", effective_at),
        d.decimal(x.get("hd", "0")),
    )


def encode_wallet(wallet: Wallet, skip: set[str]) -> dict[str, Any]:
    """The wallet with its grants as rows, leaving out those written with their payments."""
    d = _Defaults()
    out = wallet.to_dict(grants=False)
    out["grants"] = [encode_grant(g, d) for g in wallet.grants.values() if g.grant_id not in skip]
    return out


def decode_wallet(data: Mapping[str, Any], extra: Iterable[Grant]) -> Wallet:
    d = _Defaults()
    rows = data.get("grants", ())
    grants = [decode_grant(r, d) if isinstance(r, list) else Grant.from_dict(r) for r in rows]
    return Wallet.from_dict({**data, "grants": []}, extra=[*grants, *extra])
