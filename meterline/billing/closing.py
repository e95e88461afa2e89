"""Time passing on an account: period close and open, grant expiry, alerts, the top-up decision
after every change, due retries of unpaid invoices (dunning.py), and the retention pass
(retention.py).

``_advance`` is the one place the clock moves. It runs before any input is applied, so the input
sees the period, grants and retained state of its own time.
"""

from __future__ import annotations

from meterline.billing.account_data import AccountData
from meterline.billing.advance import remaining_fee
from meterline.billing.dunning import due_retries
from meterline.billing.effects import Effects
from meterline.billing.invoice import Invoice, MeterCharge, build_invoice
from meterline.billing.money import ZERO, exact
from meterline.billing.periods import next_period
from meterline.billing.pricing import display_unit_price
from meterline.billing.retention import Holdings, prune, prune_every


class ClosingAccount(AccountData):
    __slots__ = ()

    @exact
    def tick(self, now: int) -> Effects:
        """Let time pass with no input: closes periods, expires grants, sends due retries."""
        fx = Effects()
        if self.plan is None:
            return fx
        at = self._advance(now, fx)
        self._after_change(at, f"tick:{at}", fx, usage=False)
        return fx

    def next_due(self) -> int | None:
        """The earliest time at which ``tick`` would do anything; before it a tick has no
        effect, so a worker's wall-clock pass may skip the account without even decoding it
        (processor/account_state.py). None: only an input can change it. Every time-driven
        rule of ``_advance`` and ``_after_change`` has its time here: the period end, a grant
        taking effect or expiring, an expiry notice, a top-up's retry or cooldown ending, an
        unpaid invoice's retry. The retention pass is left out: it has no effects of its own
        and runs at the next change."""
        if self.plan is None:
            return None
        if self.clock is None:
            return 0
        now = self.clock
        times = [
            self.wallet.next_change(now),
            self.expiry_notices.next_at(self.wallet, self.expiry_notice_ms, now),
        ]
        if self.period is not None:
            times.append(self.period.end)
        if self.topup is not None:
            times.append(self.topup.next_gate(now))
        times += [d.retry_at for d in self.dunning.values() if d.retry_at is not None]
        return min((t for t in times if t is not None), default=None)

    @property
    def _currency(self) -> str | None:
        """The plan's currency: credits and balances are money of it (catalog.py)."""
        return None if self.plan is None else self.plan.currency

    def _advance(self, at: int, fx: Effects) -> int:
        self.clock = at if self.clock is None else max(self.clock, at)
        now = self.clock
        closed = False
        while self.period is not None and now >= self.period.end:
            self._close_period(fx)
            closed = True
        fx.entries += self.wallet.expire(now)
        fx.alerts += self.expiry_notices.check(
            self.wallet, self.customer_id, self.expiry_notice_ms, now, self._currency
        )
        if (
            self.payment_retention_ms is not None
            and self.period is not None
            and (closed or self.next_prune_at is None or now >= self.next_prune_at)
        ):
            self._prune(now, self.payment_retention_ms)
        return now

    def _prune(self, now: int, retention_ms: int) -> None:
        assert self.period is not None
        holdings = Holdings(
            self.wallet, self.payments, self.topup, self.invoices, self.usage, self.period.start
        )
        self.forgotten_until = prune(holdings, now, retention_ms, self.forgotten_until)
        self.next_prune_at = now + prune_every(retention_ms)

    def preview_invoice(self) -> Invoice | None:
        """The open period's invoice as it would be issued if the period closed now; changes
        nothing (it closes a copy)."""
        if self.plan is None or self.period is None:
            return None
        copy = self.from_dict(self.to_dict(), payment_retention_ms=self.payment_retention_ms)
        copy.fx_rates = self.fx_rates
        fx = Effects()
        copy._close_period(fx)
        return fx.invoices[0] if fx.invoices else None

    def _close_period(self, fx: Effects) -> None:
        assert self.plan is not None and self.anchor is not None and self.period is not None
        period, end = self.period, self.period.end
        fx.entries += self.wallet.expire(end)
        charges = []
        for meter, u in self.usage.items():
            entry = self.plan.entry(meter)
            model = entry.model if entry is not None else None
            price = display_unit_price(model) if model is not None else None
            charges.append(MeterCharge(meter, u.quantity, u.amount, u.credits, price))
        # A fee billed ahead is billed once: whole, no fee line; partial, the rest of it.
        fee = (
            None
            if period.start in self.advance_billed
            else remaining_fee(
                self.period_fee, self.prebilled.partial_fee.get(period.start), self.plan.currency
            )
        )
        inv = build_invoice(
            self.customer_id,
            self.plan.currency,
            period,
            end,
            fee=fee,
            charges=charges,
            adjustment=self.owed,
            dispute_fees=self.dispute_fees,
            fx=self.fx_quote(end),
        )
        self.owed = self.dispute_fees = ZERO
        self.invoices[inv.invoice_id] = inv
        fx.invoices.append(inv)
        self.usage = {}
        self.period = next_period(self.anchor, period)
        self.advance_billed = [s for s in self.advance_billed if s >= self.period.start]
        self.prebilled.drop_before(self.period.start)
        if self.topup is not None:
            self.topup.new_period()
        self._open_period(self.period.start, fx)

    def _open_period(self, at: int, fx: Effects) -> None:
        """Fix the open period's fee and grant its recurring credits, from the current plan."""
        assert self.plan is not None and self.period is not None
        p = self.period
        self.period_fee = self.plan.fee
        for i, credit in enumerate(self.plan.recurring_credits):
            fx.entries += self.wallet.grant(
                f"plan:{self.customer_id}:{p.start}:{i}",
                credit.amount,
                at,
                priority=credit.priority,
                effective_at=p.start,
                expires_at=p.end,
                scope=credit.scope,
                category=credit.category,
                ref=f"period:{p.start}",
            )

    def _after_change(self, now: int, ref: str, fx: Effects, *, usage: bool) -> None:
        balance = self.wallet.balance(now)
        fx.alerts += self.balance_alerts.check(
            self.customer_id,
            balance,
            self.low_balance_threshold,
            now,
            ref,
            usage=usage,
            currency=self._currency,
        )
        if self.topup is not None and (request := self.topup.decide(balance, now)):
            fx.topups.append(request)
        if self.dunning:  # retries of unpaid invoices now due; ends those paid meanwhile
            fx.topups += due_retries(self.dunning, self.invoices, now)
