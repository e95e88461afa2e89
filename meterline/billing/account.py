"""The account aggregate: everything billing knows about one customer, written by one writer.

Time: the account's clock is the greatest input time it has seen (usage event time, payment
``occurred_at``, command time), and everything happens at that clock. A late event is therefore
charged now, into the open period, against the credits usable now — never dropped, never charged
into a period that is already invoiced. When the clock passes the open period's end, the period
is closed first (``_close_period``): grants expiring by then are written off, the invoice is
built, and the next period starts with the plan's recurring credits.

Every public method returns ``Effects`` (ledger entries, top-up requests, alerts, invoices,
accepted payments, errors for the DLQ); the adapter publishes all of them, whatever the status.
Bad input never raises out of here: it comes back in ``errors`` with status ``rejected``; it
changes no state, except that time it carried may have closed a period, whose effects are then
in the same ``Effects``.

Balances: alerts and the top-up decision look at the whole spendable balance, scoped grants
included (a customer with only image credits left is not "out of credits"); what usage no grant
may pay for becomes overage on the invoice.

Bounded state: the account keeps only what can still change (retention.py); settled history is
in ClickHouse through the effects that made it. An input that names something forgotten gets a
documented answer (README.md, "What state keeps and why"). The window is
``payment_retention_ms`` (a constructor and ``from_dict`` argument, default 120 days).

Layout: the fields and the state format are in account_data.py, time passing (period close,
expiry, alerts, retention) in closing.py, and the inputs here.

Not modelled (yet): proration when a plan changes or an account starts mid-period (a new plan's
fee and recurring credits apply from the next period; its rate card from the next event).
Unpaid invoices follow a dunning schedule (dunning.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal, DecimalException

from meterline.billing.account_data import DAY_MS, DEFAULT_EXPIRY_NOTICE_MS
from meterline.billing.advance import (
    DEFAULT_ITEMS,
    AdvanceItem,
    advance_invoice_id,
    build_advance_invoice,
    check_items,
    conflicts,
    usage_cost,
)
from meterline.billing.advance import span as advance_span
from meterline.billing.catalog import Category, Plan
from meterline.billing.closing import ClosingAccount
from meterline.billing.credits import check_grant
from meterline.billing.effects import Effects
from meterline.billing.money import ZERO, exact, minor_units
from meterline.billing.payments import (
    PaymentContext,
    PaymentOutcome,
    apply_payment,
    check_payment,
)
from meterline.billing.periods import BillingAnchor, next_period, period_at
from meterline.billing.topup import DEFAULT_RETRY_DELAYS_MS, AutoTopup, TopupPolicy
from meterline.billing.usage import MeterPeriod, Reading

__all__ = ["DAY_MS", "DEFAULT_EXPIRY_NOTICE_MS", "Account"]


def _rejected(reason: str) -> Effects:
    return Effects(errors=[reason], status="rejected")


class Account(ClosingAccount):
    """One customer's billing (see the module doc)."""

    __slots__ = ()

    # -- queries ---------------------------------------------------------------------------

    def balance(self, at: int | None = None, meter: str | None = None) -> Decimal:
        when = at if at is not None else (self.clock or 0)
        product = None
        if meter is not None and self.plan is not None and (e := self.plan.entry(meter)):
            product = e.product
        return self.wallet.balance(when, meter, product)

    # -- commands --------------------------------------------------------------------------

    @exact
    def upsert(
        self,
        plan: Plan,
        anchor: BillingAnchor,
        at: int,
        *,
        topup: TopupPolicy | None = None,
        low_balance_threshold: Decimal | None = None,
        expiry_notice_ms: int | None = DEFAULT_EXPIRY_NOTICE_MS,
        invoice_currency: str | None = None,
    ) -> Effects:
        """Create or change the customer. The anchor is fixed by the first upsert; a plan change
        takes effect for the next event (rate card) and the next period (fee, credits)."""
        if self.anchor is not None and anchor != self.anchor:
            return _rejected("the billing anchor of an existing account cannot change")
        if self.plan is not None and plan.currency != self.plan.currency:
            return _rejected(f"account bills in {self.plan.currency}, plan is {plan.currency}")
        if invoice_currency is not None:
            try:
                minor_units(invoice_currency)
            except ValueError as exc:
                return _rejected(str(exc))
        fx = Effects()
        now = self._advance(at, fx)
        self.plan = plan
        # The plan's own currency needs no rate: kept as None (fx.py).
        same = invoice_currency is None or invoice_currency.upper() == plan.currency
        self.invoice_currency = None if same else invoice_currency.upper()
        if self.anchor is None:
            self.anchor = anchor
            self.period = period_at(anchor, now)
            self._open_period(now, fx)
        if topup is not None:
            if self.topup is None:
                self.topup = AutoTopup(self.customer_id, plan.currency, topup)
            else:
                self.topup.update_policy(topup)
        elif self.topup is not None:
            # Kept, disabled, so outcomes of requests already sent still find their request.
            self.topup.update_policy(replace(self.topup.policy, enabled=False))
        self.low_balance_threshold = (
            low_balance_threshold
            if low_balance_threshold is not None
            else (topup.threshold if topup is not None else None)
        )
        self.expiry_notice_ms = expiry_notice_ms
        self._after_change(now, f"upsert:{at}", fx, usage=False)
        return fx

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
    ) -> Effects:
        if self.plan is None:
            return _rejected("grant for a customer with no plan")
        if self.wallet.knows(grant_id):
            return Effects(status="duplicate")
        retention = self.payment_retention_ms
        if retention is not None and self.clock is not None and at < self.clock - retention:
            # Ids of dropped grants are remembered for the window after they were granted: a
            # command older than that may repeat a grant already forgotten, so it is refused
            # rather than risk granting twice. Sent again with a current time, it is applied.
            return _rejected(
                f"grant {grant_id}: command at {at} is older than the account's"
                f" {retention / DAY_MS:g}-day retention window"
            )
        now = at if self.clock is None else max(self.clock, at)  # what _advance will make it
        try:
            check_grant(
                grant_id,
                amount,
                now if effective_at is None else effective_at,
                expires_at,
                category,
            )
        except ValueError as exc:
            return _rejected(str(exc))
        fx = Effects()
        now = self._advance(at, fx)
        fx.entries += self.wallet.grant(
            grant_id,
            amount,
            now,
            priority=priority,
            effective_at=effective_at,
            expires_at=expires_at,
            scope=scope,
            category=category,
        )
        self._after_change(now, grant_id, fx, usage=False)
        return fx

    @exact
    def void(self, grant_id: str, at: int) -> Effects:
        if not self.wallet.knows(grant_id):
            return _rejected(f"void of unknown grant {grant_id}")
        fx = Effects()
        now = self._advance(at, fx)
        if grant_id in self.wallet.grants:  # one dropped meanwhile had nothing left to void
            fx.entries += self.wallet.void(grant_id, now, ref=f"void:{grant_id}")
        self._after_change(now, f"void:{grant_id}", fx, usage=False)
        return fx

    @exact
    def bill_in_advance(
        self,
        at: int,
        period_start: int | None = None,
        *,
        periods: int | None = None,
        until: int | None = None,
        items: Sequence[AdvanceItem] = DEFAULT_ITEMS,
    ) -> Effects:
        """Invoice items of future periods now (advance.py has the rules): from the period
        starting at ``period_start`` (default: the next one), ``periods`` of them (default 1)
        or up to ``until``; the fee by default. Those periods' own invoices then leave out what
        was billed ahead. The same span again is a duplicate."""
        if self.plan is None or self.anchor is None or self.period is None:
            return _rejected("bill in advance for a customer with no plan")
        fx = Effects()
        now = self._advance(at, fx)
        assert self.period is not None

        def reject(reason: str) -> Effects:
            # fx may already hold the effects of time passing: they must still go out.
            fx.errors.append(reason)
            fx.status = "rejected"
            return fx

        if period_start is None:
            first = next_period(self.anchor, self.period)
        else:
            first = period_at(self.anchor, period_start)
            if first.start != period_start or first.start <= self.period.start:
                return reject(f"{period_start} is not the start of a future billing period")
        try:
            covered = advance_span(self.anchor, first, periods, until)
            wanted = check_items(self.plan, items)
        except ValueError as exc:
            return reject(f"bill in advance: {exc}")
        inv_id = advance_invoice_id(self.customer_id, covered)
        if inv_id in self.invoices:
            fx.status = "duplicate"
            return fx
        if taken := conflicts(covered, wanted, self.advance_billed, self.prebilled):
            return reject(f"already billed in advance: {', '.join(taken)}")
        inv = build_advance_invoice(
            self.customer_id, self.plan, covered, wanted, now, self.fx_quote(now)
        )
        self.invoices[inv_id] = inv
        self.advance_billed += self.prebilled.record(covered, wanted, inv)
        fx.invoices.append(inv)
        return fx

    # -- usage -----------------------------------------------------------------------------

    @exact
    def apply_usage(
        self, event_id: str, meter: str, quantity: Decimal, at: int, cost: Decimal | None = None
    ) -> Effects:
        """Rate one usage event and burn credits for it. ``cost`` is for meters priced outside
        the rate card (LLM tokens through the price book, markup included); otherwise the cost
        is the marginal cost of the quantity on the plan's rate card."""
        if self.plan is None:
            return _rejected(f"usage {event_id} for a customer with no plan")
        if quantity < 0:
            return _rejected(f"usage {event_id}: negative quantity")
        if cost is not None and cost < 0:
            return _rejected(f"usage {event_id}: negative cost")
        entry = self.plan.entry(meter)
        if cost is None and (entry is None or entry.model is None):
            return _rejected(f"usage {event_id}: meter {meter!r} has no price on the plan")
        fx = Effects()
        now = self._advance(at, fx)
        u = self.usage.get(meter) or MeterPeriod()
        if cost is None:
            assert entry is not None and entry.model is not None
            try:
                after = u.quantity + quantity
                cost = usage_cost(entry.model, u.quantity, after, self._committed(meter))
            except DecimalException:
                # More digits than exact arithmetic holds: refuse rather than round. Effects of
                # the time that passed (a period close) stay in fx and must still be published.
                fx.errors.append(f"usage {event_id}: quantity {quantity} cannot be rated exactly")
                fx.status = "rejected"
                return fx
        self._charge(meter, u, u.quantity + quantity, cost, now, event_id, fx)
        return fx

    @exact
    def apply_reading(self, event_id: str, meter: str, reading: Reading) -> Effects:
        """Rate one event of a non-additive meter (unique_count, latest, min, max). Such an
        event has no quantity of its own: it moves the period's aggregate (one more distinct
        user, a new latest storage reading), and is charged what that changes the period's
        price by. A change that lowers it (a latest gauge going down, a cheaper volume tier)
        is a rebate, so the credits burned always equal the price of the period's quantity."""
        if self.plan is None:
            return _rejected(f"usage {event_id} for a customer with no plan")
        entry = self.plan.entry(meter)
        if entry is None or entry.model is None:
            return _rejected(f"usage {event_id}: meter {meter!r} has no price on the plan")
        fx = Effects()
        now = self._advance(reading.timestamp, fx)
        u = self.usage.get(meter) or MeterPeriod()
        try:
            after = u.quantity_with(event_id, reading)
            cost = usage_cost(entry.model, u.quantity, after, self._committed(meter))
        except DecimalException:
            fx.errors.append(f"usage {event_id}: {reading.value} cannot be rated exactly")
            fx.status = "rejected"
            return fx
        u.take(event_id, reading)
        self._charge(meter, u, after, cost, now, event_id, fx)
        return fx

    def _committed(self, meter: str) -> Decimal:
        """The open period's quantity of ``meter`` prepaid by an advance invoice."""
        return ZERO if self.period is None else self.prebilled.committed(self.period.start, meter)

    def _charge(
        self,
        meter: str,
        u: MeterPeriod,
        quantity: Decimal,
        cost: Decimal,
        now: int,
        event_id: str,
        fx: Effects,
    ) -> None:
        """Burns credits for ``cost`` (or gives them back when negative) and records the
        meter's new period quantity."""
        assert self.plan is not None
        entry = self.plan.entry(meter)
        self.usage[meter] = u
        product = entry.product if entry is not None else None
        if cost > 0:
            burned = self.wallet.burn(cost, meter, now, event_id, product)
            fx.entries += burned.entries
            for grant_id, amount in burned.debits.items():
                u.paid(grant_id, amount)
        elif cost < 0:
            self._rebate(u, -cost, now, event_id, fx)
        u.quantity = quantity
        u.amount += cost
        self._after_change(now, event_id, fx, usage=True)

    def _rebate(self, u: MeterPeriod, rebate: Decimal, now: int, ref: str, fx: Effects) -> None:
        """A volume tier made the period cheaper: first owe less, then give credits back to the
        grants that paid for this meter (last burned first); what cannot go back (its grant has
        expired or was voided) stays as a negative overage, i.e. an invoice credit."""
        rest = rebate - min(rebate, max(u.overage, ZERO))
        if rest == 0:
            return
        grants = self.wallet.grants
        order = sorted(u.by_grant, key=lambda g: grants[g].burn_key(), reverse=True)
        entries, _ = self.wallet.credit_back({g: u.by_grant[g] for g in order}, rest, now, ref)
        for e in entries:
            u.paid(e.grant_id, -e.amount)
        fx.entries += entries

    # -- payments and time -----------------------------------------------------------------

    @exact
    def apply_payment(self, outcome: PaymentOutcome) -> Effects:
        if self.plan is None:
            return _rejected(f"payment {outcome.payment_id} for a customer with no plan")
        ctx = self._payment_context(self.clock or outcome.occurred_at)
        early = check_payment(outcome, ctx)
        if early is not None:
            fx = Effects(status=early.status)
            if early.status == "rejected":
                fx.errors.append(early.reason)
            return fx
        fx = Effects()
        now = self._advance(outcome.occurred_at, fx)
        result = apply_payment(outcome, self._payment_context(now), fx)
        self.owed += result.owed
        self.dispute_fees += result.dispute_fee
        fx.status = result.status
        self._after_change(now, outcome.payment_id, fx, usage=False)
        return fx

    def _payment_context(self, now: int) -> PaymentContext:
        assert self.plan is not None
        return PaymentContext(
            self.customer_id,
            self.plan.currency,
            now,
            self.wallet,
            self.topup,
            self.invoices,
            self.payments,
            self.forgotten_until,
            self.payment_retention_ms,
            self._paid_priority,
            self.dunning,
            DEFAULT_RETRY_DELAYS_MS if self.topup is None else self.topup.policy.retry_delays_ms,
        )
