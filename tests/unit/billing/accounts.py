"""Random account histories for the property tests: abstract ops resolved against the state,
so the same ops on two copies of an account make the same calls."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from meterline.billing.account import Account
from meterline.billing.effects import Effects
from meterline.billing.payments import PaymentOutcome
from meterline.billing.periods import BillingAnchor
from meterline.billing.topup import TopupPolicy

from .helpers import DAY, HOUR, every_model_plan, utc

D = Decimal
START = utc(2025, 1, 30, 23)  # 31 January, midnight in Berlin
POLICY = TopupPolicy(
    threshold=D(8),
    amount=D(20),
    cooldown_ms=HOUR,
    retry_delays_ms=(HOUR, 3 * HOUR),
    max_per_period=2,
)

dt = st.integers(0, 4 * DAY)
op = st.one_of(
    st.tuples(
        st.just("use"),
        st.sampled_from(["api", "img", "vol", "pkg", "llm"]),
        st.integers(0, 700),
        dt,
        st.decimals(min_value=0, max_value=20, places=3),
    ),
    *[
        st.tuples(
            st.just("pay"),
            st.integers(0, 50),
            st.sampled_from(
                [
                    "succeeded",
                    "succeeded",
                    "failed",
                    "refunded",
                    "canceled",
                    "dispute_opened",
                    "dispute_won",
                    "dispute_lost",
                    "unlinked",
                ]
            ),
            st.decimals(min_value=0, max_value=40, places=2),
            dt,
        )
    ]
    * 2,
    st.tuples(
        st.just("grant"),
        st.decimals(min_value=D("0.01"), max_value=30, places=2),
        st.integers(-1, 2),
        st.one_of(st.none(), st.integers(1, 20 * DAY)),
        st.sampled_from([(), ("img",), ("llm", "api")]),
    ),
    st.tuples(st.just("void"), st.integers(0, 50)),
    st.tuples(st.just("tick"), st.integers(0, 10 * DAY)),
    st.tuples(
        st.just("advance"),
    ),
)
histories = st.lists(op, max_size=45)


def new_account() -> Account:
    account = Account("cust")
    account.upsert(every_model_plan(), BillingAnchor(START, "Europe/Berlin"), START, topup=POLICY)
    return account


def payment_for(
    account: Account, pick: int, status: str, amount: Decimal, at: int
) -> PaymentOutcome | None:
    succeeded = sorted(p for p, r in account.payments.items() if "succeeded" in r.statuses)
    after_success = ("refunded", "canceled", "dispute_opened", "dispute_won", "dispute_lost")
    if status in (*after_success, "unlinked") and succeeded and pick % 4:
        # Mostly refund or cancel something that was paid, or those paths are never reached.
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
    return PaymentOutcome.from_dict(
        {
            "payment_id": payment_id,
            "customer_id": "cust",
            "processor": "acme-pay",
            "status": status,
            "amount": amount,
            "currency": "USD",
            "pays_kind": kind,
            "pays_id": pays,
            "occurred_at": at,
        }
    )


def apply(account: Account, op: tuple, n: int) -> tuple[Effects, PaymentOutcome | None]:
    """Apply op number ``n`` of a history. Time only moves forward from the account's clock."""
    now = account.clock or START
    kind = op[0]
    if kind == "use":
        _, meter, qty, step, cost = op
        return account.apply_usage(
            f"e{n}", meter, D(qty), now + step, cost if meter == "llm" else None
        ), None
    if kind == "pay":
        _, pick, status, amount, step = op
        outcome = payment_for(account, pick, status, amount, now + step)
        if outcome is None:
            return Effects(), None
        return account.apply_payment(outcome), outcome
    if kind == "grant":
        _, amount, prio, expires_in, scope = op
        expires = None if expires_in is None else now + expires_in
        return account.grant(
            f"g{n}", amount, now, priority=prio, expires_at=expires, scope=scope
        ), None
    if kind == "void":
        # Grants the account still holds or remembers (retention drops spent ones).
        ids = sorted({*account.wallet.grants, *account.wallet.retired})
        if not ids:
            return Effects(), None
        return account.void(ids[op[1] % len(ids)], now), None
    if kind == "tick":
        return account.tick(now + op[1]), None
    return account.bill_in_advance(now), None
