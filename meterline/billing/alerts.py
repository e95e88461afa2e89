"""Alerts an account raises as its balance and its grants change. Each fires once per cause (its
id is derived from the cause, effects.alert) and fires again only once the cause went away."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from meterline.billing.credits import Wallet
from meterline.billing.effects import Alert, alert
from meterline.billing.money import money_text, plain


def _money(value: Decimal, currency: str | None) -> str:
    """An amount as outputs print it (money.py): the plan currency's digits, never rounded."""
    return plain(value) if currency is None else money_text(value, currency)


@dataclass(slots=True)
class ExpiryNotices:
    """Grants already warned about (``grant_expiring``), in the order they were warned."""

    alerted: list[str] = field(default_factory=list)

    def check(
        self,
        wallet: Wallet,
        customer_id: str,
        notice_ms: int | None,
        now: int,
        currency: str | None = None,
    ) -> list[Alert]:
        """Warn once about each active grant with credits left that expires within
        ``notice_ms`` of ``now``. Only the front of the wallet's expiry order is looked at, so
        this costs the grants about to expire, not every grant the customer ever had."""
        grants = wallet.grants
        self.alerted = [g for g in self.alerted if g in grants and grants[g].status == "active"]
        if notice_ms is None:
            return []
        warned = set(self.alerted)
        due = [
            g
            for g in wallet.expiring_until(now + notice_ms)
            if g.remaining > 0
            and g.expires_at is not None
            and now < g.expires_at
            and g.grant_id not in warned
        ]
        out: list[Alert] = []
        for g in sorted(due, key=lambda g: g.created_seq):  # the order grants were made in
            self.alerted.append(g.grant_id)
            out.append(
                alert(
                    customer_id,
                    "grant_expiring",
                    now,
                    g.grant_id,
                    expires_at=str(g.expires_at),
                    remaining=_money(g.remaining, currency),
                )
            )
        return out

    def next_at(self, wallet: Wallet, notice_ms: int | None, after: int) -> int | None:
        """When the next notice falls due (one due already counts as ``after``)."""
        if notice_ms is None:
            return None
        warned = set(self.alerted)
        times = [
            max(g.expires_at - notice_ms, after)
            for g in wallet.expiring()
            if g.remaining > 0 and g.expires_at is not None and g.grant_id not in warned
        ]
        return min(times, default=None)


@dataclass(slots=True)
class BalanceAlerts:
    """``balance_low`` below the threshold and ``balance_exhausted`` at zero, each once until the
    balance recovers."""

    low_alerted: bool = False
    exhausted_alerted: bool = False

    def check(
        self,
        customer_id: str,
        balance: Decimal,
        threshold: Decimal | None,
        now: int,
        ref: str,
        *,
        usage: bool,
        currency: str | None = None,
    ) -> list[Alert]:
        out: list[Alert] = []
        if threshold is not None and balance < threshold:
            if not self.low_alerted:
                self.low_alerted = True
                out.append(
                    alert(
                        customer_id,
                        "balance_low",
                        now,
                        ref,
                        balance=_money(balance, currency),
                        threshold=_money(threshold, currency),
                    )
                )
        else:
            self.low_alerted = False
        if balance <= 0:
            # Only usage exhausts a balance; an account merely created empty is not news.
            if usage and not self.exhausted_alerted:
                self.exhausted_alerted = True
                out.append(alert(customer_id, "balance_exhausted", now, ref))
        else:
            self.exhausted_alerted = False
        return out
