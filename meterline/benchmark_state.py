"""`meterline benchmark-state`: a customer's billing state and the cost of one of its events do
not grow with the customer's age.

One account on the Lora plan of ``meterline/data/catalog.json`` (49.00 a month, 50.00 recurring
credits) with auto top-up is aged event by event, the way a busy customer lives: one usage event
every 10 minutes (image generations and LLM tokens in turn, 1.00 credit each), a top-up of 21.60
asked whenever the balance falls below 10.00 and paid one minute later by a succeeded payment
outcome (so one top-up every ~3.6 h), and each period's invoice paid by card three days after it
is issued. A "month" of age is 30 days of that. At each age what the state keeps is counted, its
size taken as the account table's changelog codec writes it (compact JSON; also its largest in
the 30 days before, sampled daily: just before a period closes its usage names the most grants),
the next
``events_per_age`` events are timed (``Account.apply_usage`` alone) along with one serialisation.
Figures, not assertions.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from meterline.billing.account import Account
from meterline.billing.catalog import Plan
from meterline.billing.effects import Effects
from meterline.billing.payments import PaymentOutcome
from meterline.billing.periods import BillingAnchor
from meterline.billing.retention import PAYMENT_RETENTION_MS
from meterline.billing.topup import TopupPolicy
from meterline.metering.catalog_file import load_catalog

MINUTE_MS = 60_000
DAY_MS = 1_440 * MINUTE_MS
MONTH_MS = 30 * DAY_MS
EVENT_EVERY_MS = 10 * MINUTE_MS
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the billing anchor
CUSTOMER = "lora-aged"
POLICY = TopupPolicy(
    threshold=Decimal("10.00"),
    amount=Decimal("21.60"),  # 21.6 events of 1.00: one top-up every ~3.6 h
    cooldown_ms=10 * MINUTE_MS,
)
INVOICE_PAID_AFTER_MS = 3 * DAY_MS


@dataclass(frozen=True, slots=True)
class StateFigures:
    months: int
    grants: int
    payments: int
    invoices: int
    topup_requests: int
    state_bytes: int
    peak_state_bytes: int  # the largest state of the 30 days before, sampled daily
    event_us_median: float
    event_us_mean: float
    serialize_ms: float


def lora_plan() -> Plan:
    seed = load_catalog()
    return Plan.from_dict(next(p for p in seed.plans if p["plan_id"] == "lora-pro"))


class AgedAccount:
    """Drives one account through the life described in the module doc."""

    def __init__(
        self,
        account: Account,
        now: int = START_MS,
        n: int = 0,
        unpaid: Iterable[tuple[int, str, Decimal]] = (),
    ) -> None:
        self.account = account
        self.now = now
        self.n = n  # usage events so far
        self.unpaid = list(unpaid)  # (pay at, invoice id, amount due), in issue order

    @classmethod
    def start(cls, account: Account) -> AgedAccount:
        aged = cls(account)
        plan = lora_plan()
        aged._answer(account.upsert(plan, BillingAnchor(START_MS, "UTC"), START_MS, topup=POLICY))
        return aged

    def _answer(self, fx: Effects) -> None:
        """Pay what the effects ask for: top-ups a minute later, invoices after three days.
        A top-up is paid at once (it is what keeps the balance up); invoices wait their turn."""
        for request in fx.topups:
            self._pay(
                f"pi_{request.request_id.rsplit(':', 1)[1]:0>24}",
                "topup",
                request.request_id,
                request.amount,
                request.requested_at + MINUTE_MS,
            )
        for inv in fx.invoices:
            if inv.kind == "period" and inv.amount_due > 0 and inv.amount_paid == 0:
                self.unpaid.append(
                    (inv.issued_at + INVOICE_PAID_AFTER_MS, inv.invoice_id, inv.amount_due)
                )

    def _pay(self, payment_id: str, kind: str, pays: str, amount: Decimal, at: int) -> None:
        outcome = PaymentOutcome.from_dict(
            {
                "payment_id": payment_id,
                "customer_id": CUSTOMER,
                "processor": "stripe",
                "status": "succeeded",
                "amount": str(amount),
                "currency": "USD",
                "pays_kind": kind,
                "pays_id": pays,
                "occurred_at": at,
            }
        )
        self._answer(self.account.apply_payment(outcome))

    def step(self) -> float:
        """One usage event (and whatever it makes due); returns apply_usage's own seconds."""
        self.n += 1
        self.now += EVENT_EVERY_MS
        while self.unpaid and self.unpaid[0][0] <= self.now:
            at, inv_id, due = self.unpaid.pop(0)
            self._pay(f"ch_{inv_id.rsplit(':', 1)[1]:0>24}", "invoice", inv_id, due, at)
        event_id = f"evt-{self.n:010d}"
        started = time.perf_counter()
        if self.n % 2:
            fx = self.account.apply_usage(event_id, "image_generations", Decimal(25), self.now)
        else:
            fx = self.account.apply_usage(
                event_id, "llm_tokens", Decimal(50_000), self.now, Decimal("1.00")
            )
        spent = time.perf_counter() - started
        self._answer(fx)
        return spent

    def age_to(self, at: int) -> None:
        while self.now + EVENT_EVERY_MS <= at:
            self.step()


def _state_json(account: Account) -> bytes:
    return json.dumps(account.to_dict(), separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aged account as its table stores it, with where its driver was."""

    months: int
    state: dict[str, Any]
    now: int
    n: int
    unpaid: tuple[tuple[int, str, Decimal], ...]
    retention_ms: int | None
    peak_bytes: int

    def restore(self) -> AgedAccount:
        account = Account.from_dict(self.state, payment_retention_ms=self.retention_ms)
        return AgedAccount(account, self.now, self.n, self.unpaid)


def snapshot(aged: AgedAccount, months: int, peak_bytes: int) -> Snapshot:
    return Snapshot(
        months,
        aged.account.to_dict(),
        aged.now,
        aged.n,
        tuple(aged.unpaid),
        aged.account.payment_retention_ms,
        peak_bytes,
    )


def _timed_round(snap: Snapshot, events: int) -> tuple[list[float], float]:
    """apply_usage seconds of the ``events`` next events, and one serialisation's seconds."""
    aged = snap.restore()
    gc.collect()
    costs = [aged.step() for _ in range(events)]
    started = time.perf_counter()
    _state_json(aged.account)
    return costs, time.perf_counter() - started


def measure(snaps: list[Snapshot], events: int, rounds: int) -> list[StateFigures]:
    """Each age is timed ``rounds`` times, the ages taking turns so that a slow moment of a
    shared machine falls on all of them; the quickest round's median is kept (the cost of the
    code, not of the neighbours)."""
    medians: dict[int, list[float]] = {s.months: [] for s in snaps}
    means: dict[int, list[float]] = {s.months: [] for s in snaps}
    serial: dict[int, list[float]] = {s.months: [] for s in snaps}
    for _ in range(rounds):
        for snap in snaps:
            costs, ser = _timed_round(snap, events)
            medians[snap.months].append(statistics.median(costs))
            means[snap.months].append(statistics.fmean(costs))
            serial[snap.months].append(ser)
    out = []
    for snap in snaps:
        account = Account.from_dict(snap.state, payment_retention_ms=snap.retention_ms)
        topup = account.topup
        out.append(
            StateFigures(
                months=snap.months,
                grants=len(account.wallet.grants),
                payments=len(account.payments),
                invoices=len(account.invoices),
                topup_requests=0 if topup is None else len(topup.requests),
                state_bytes=len(_state_json(account)),
                peak_state_bytes=snap.peak_bytes,
                event_us_median=min(medians[snap.months]) * 1e6,
                event_us_mean=min(means[snap.months]) * 1e6,
                serialize_ms=min(serial[snap.months]) * 1e3,
            )
        )
    return out


def run_state_benchmark(
    months: Iterable[int] = (1, 12, 24),
    console: Console | None = None,
    *,
    events_per_age: int = 2_000,
    rounds: int = 3,
    payment_retention_ms: int | None = PAYMENT_RETENTION_MS,
) -> list[StateFigures]:
    """Age one account through ``months`` (30 days each), keep its state at each age, then time
    ``events_per_age`` events from each kept state (``rounds`` times, see ``measure``).
    ``payment_retention_ms`` None keeps every payment, grant and invoice forever (what the
    state did before retention)."""
    console = console or Console()
    ages = sorted(set(months))
    aged = AgedAccount.start(Account(CUSTOMER, payment_retention_ms=payment_retention_ms))
    snaps: list[Snapshot] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("ageing the account", total=(ages[-1] * 30) if ages else 0)
        for m in ages:
            target, peak = START_MS + m * MONTH_MS, 0
            while aged.now < target:
                aged.age_to(min(aged.now + DAY_MS, target))
                progress.update(task, completed=(aged.now - START_MS) // DAY_MS)
                if target - aged.now < MONTH_MS:
                    peak = max(peak, len(_state_json(aged.account)))
            snaps.append(snapshot(aged, m, peak))
        progress.update(task, description=f"timing {events_per_age:,} events per age")
        figures = measure(snaps, events_per_age, rounds)
    console.print(_table(figures, events_per_age))
    if len(figures) > 1 and figures[0].event_us_median > 0:
        ratio = figures[-1].event_us_median / figures[0].event_us_median
        console.print(
            f"per-event cost at {figures[-1].months} months / at {figures[0].months} "
            f"month{'s' if figures[0].months != 1 else ''}: {ratio:.2f} (median apply_usage)"
        )
    return figures


def _table(figures: list[StateFigures], events: int) -> Table:
    out = Table(title=f"Billing state by customer age · apply_usage over {events:,} events")
    for name in (
        "age",
        "grants kept",
        "payments kept",
        "invoices kept",
        "top-up requests kept",
        "state JSON",
        "peak, last 30 days",
        "apply_usage median",
        "apply_usage mean",
        "serialize",
    ):
        out.add_column(name, justify="right")
    for f in figures:
        out.add_row(
            f"{f.months} month{'s' if f.months != 1 else ''}",
            f"{f.grants:,}",
            f"{f.payments:,}",
            f"{f.invoices:,}",
            f"{f.topup_requests:,}",
            f"{f.state_bytes / 1024:,.1f} KiB",
            f"{f.peak_state_bytes / 1024:,.1f} KiB",
            f"{f.event_us_median:,.0f} µs",
            f"{f.event_us_mean:,.0f} µs",
            f"{f.serialize_ms:,.2f} ms",
        )
    return out
