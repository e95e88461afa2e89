"""Account histories as concrete calls. An abstract op (the shapes of accounts.py, plus re-sent
outcomes and grant commands) is resolved against one account into a ``Call``; the call can then
be made on several accounts (a pruned one and its unpruned reference) or stored as JSON (the
fixture written by the code before retention). Only the account API both versions share is used
here, so the fixture generator runs this module against the old code too."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from meterline.billing.account import Account
from meterline.billing.effects import Effects
from meterline.billing.payments import PaymentOutcome

from .accounts import START, op
from .helpers import DAY, HOUR

D = Decimal

# Long histories: ticks of up to 40 days let payments, grants and invoices age out of short
# retention windows, and re-sent inputs check what happens to a forgotten id.
resend = st.one_of(
    st.tuples(st.just("replay"), st.integers(0, 200)),
    st.tuples(st.just("regrant"), st.integers(0, 200)),
)
# (Sampled, not drawn from a range: hypothesis favours small integers, and these must age.)
long_tick = st.tuples(
    st.just("tick"), st.sampled_from([HOUR, DAY, 3 * DAY, 10 * DAY, 31 * DAY, 45 * DAY])
)
spend = st.tuples(  # LLM usage dear enough to run the balance down and ask for top-ups
    st.just("use"),
    st.just("llm"),
    st.integers(1, 9),
    st.sampled_from([0, HOUR, 6 * HOUR, DAY]),
    st.decimals(min_value=1, max_value=25, places=2),
)
settle = st.tuples(  # mostly paying what was asked
    st.just("pay"),
    st.integers(0, 50),
    st.sampled_from(["succeeded"] * 4 + ["failed", "refunded", "canceled"]),
    st.decimals(min_value=0, max_value=40, places=2),
    st.sampled_from([0, 60_000, HOUR]),
)
long_histories = st.lists(
    st.one_of(op, spend, spend, spend, settle, settle, settle, resend, long_tick, long_tick),
    min_size=8,
    max_size=60,
)


@dataclass(frozen=True, slots=True)
class Call:
    kind: str  # usage | payment | grant | void | tick | advance
    args: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "args": self.args}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Call:
        return cls(data["kind"], data["args"])


@dataclass(slots=True)
class Sent:
    """What a history sent so far, so that it can be sent again."""

    outcomes: list[PaymentOutcome] = field(default_factory=list)
    grants: list[Call] = field(default_factory=list)


def _outcome(account: Account, pick: int, status: str, amount: Decimal, at: int) -> Call | None:
    succeeded = sorted(p for p, r in account.payments.items() if "succeeded" in r.statuses)
    if status in ("refunded", "canceled") and succeeded and pick % 4:
        rec = account.payments[succeeded[pick % len(succeeded)]]
        payment_id, kind, pays = rec.payment_id, rec.pays_kind, rec.pays_id
    else:
        requests = sorted(account.topup.requests) if account.topup is not None else []
        targets = requests + sorted(account.invoices)
        if not targets:
            return None
        pays = targets[pick % len(targets)]
        kind = "invoice" if pays.startswith("inv:") else "topup"
        payment_id = f"p{pick % 2}:{pays}"
    outcome = {
        "payment_id": payment_id,
        "customer_id": account.customer_id,
        "processor": "acme-pay",
        "status": status,
        "amount": str(amount),
        "currency": "USD",
        "pays_kind": kind,
        "pays_id": pays,
        "occurred_at": at,
    }
    return Call("payment", {"outcome": outcome})


def resolve(account: Account, op: tuple, n: int, sent: Sent) -> Call | None:
    """The call op number ``n`` makes on ``account``. Time only moves forward from its clock."""
    now = account.clock or START
    kind = op[0]
    if kind == "use":
        _, meter, qty, step, cost = op
        return Call(
            "usage",
            {
                "event_id": f"e{n}",
                "meter": meter,
                "quantity": str(qty),
                "at": now + step,
                "cost": str(cost) if meter == "llm" else None,
            },
        )
    if kind == "pay":
        _, pick, status, amount, step = op
        return _outcome(account, pick, status, amount, now + step)
    if kind == "grant":
        _, amount, prio, expires_in, scope = op
        return Call(
            "grant",
            {
                "grant_id": f"g{n}",
                "amount": str(amount),
                "at": now,
                "priority": prio,
                "expires_at": None if expires_in is None else now + expires_in,
                "scope": list(scope),
            },
        )
    if kind == "void":
        ids = sorted({*account.wallet.grants, *getattr(account.wallet, "retired", {})})
        return Call("void", {"grant_id": ids[op[1] % len(ids)], "at": now}) if ids else None
    if kind == "tick":
        return Call("tick", {"at": now + op[1]})
    if kind == "replay":
        if not sent.outcomes:
            return None
        return Call("payment", {"outcome": sent.outcomes[op[1] % len(sent.outcomes)].to_dict()})
    if kind == "regrant":
        return sent.grants[op[1] % len(sent.grants)] if sent.grants else None
    return Call("advance", {"at": now})


def perform(account: Account, call: Call) -> Effects:
    a = call.args
    if call.kind == "usage":
        cost = None if a["cost"] is None else D(a["cost"])
        return account.apply_usage(a["event_id"], a["meter"], D(a["quantity"]), a["at"], cost)
    if call.kind == "payment":
        return account.apply_payment(PaymentOutcome.from_dict(a["outcome"]))
    if call.kind == "grant":
        return account.grant(
            a["grant_id"],
            D(a["amount"]),
            a["at"],
            priority=a["priority"],
            expires_at=a["expires_at"],
            scope=tuple(a["scope"]),
        )
    if call.kind == "void":
        return account.void(a["grant_id"], a["at"])
    if call.kind == "tick":
        return account.tick(a["at"])
    return account.bill_in_advance(a["at"])


def note(sent: Sent, call: Call, fx: Effects) -> None:
    """Remember what was accepted, to send it again later."""
    if call.kind == "payment" and fx.status != "rejected":
        sent.outcomes.append(PaymentOutcome.from_dict(call.args["outcome"]))
    if call.kind == "grant" and fx.status == "applied":
        sent.grants.append(call)
