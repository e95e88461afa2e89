"""Automatic top-up: when to ask the payment processor for more credits, and how to react.

Rules, in the order ``decide`` checks them:

1. never while a request is pending (one low balance must not cause two charges), and never
   while suspended;
2. only when the spendable balance is below ``threshold``;
3. not within ``cooldown_ms`` of the previous request (the schema's "minimum time between
   requests": counted from when the last request was asked, not from its outcome), and not
   before ``not_before``: the dunning delay after a decline, or ``cooldown_ms`` after a cancel;
4. at most ``max_per_period`` successful top-ups per billing period (declines are bounded by the
   dunning schedule instead, so a failing card cannot use up the cap);
5. the amount is ``amount`` (fixed mode) or ``target - balance`` (target mode); a dunning
   retry asks for what the declined attempt asked (as Stripe retries the same amount), even in
   target mode where the balance has moved since.

Dunning: after the k-th consecutive decline the next attempt waits ``retry_delays_ms[k-1]``
(default 1 h, 6 h, 24 h; ``exponential_delays`` builds a geometric schedule). A decline after the
schedule is used up suspends auto top-up until the customer's policy is updated (a new upsert);
the account raises an alert for each decline and for the suspension. A retry is a new request
with a new id (the declined one is final at the processor) and the declined amount; once a
request succeeds or is canceled, or the policy changes, the next request is a new one.

Request ids are ``f"topup:{customer_id}:{n}"`` with ``n`` counting this customer's requests, so a
replay of the same input asks for the same ids and the processor's idempotency key dedups them.

``requests`` keeps the pending request and closed ones a payment the account still retains refers
to (``forget_closed``, called by retention.py): an outcome can only name a request through a
payment, and a closed request with no retained payment can get no new outcome in the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from meterline.billing.money import ZERO, exact, money_text, to_decimal

HOUR_MS = 3_600_000
DEFAULT_COOLDOWN_MS = 10 * 60_000
DEFAULT_RETRY_DELAYS_MS = (HOUR_MS, 6 * HOUR_MS, 24 * HOUR_MS)
DEFAULT_PAID_PRIORITY = 100  # credits bought are burned after plan and promotional credits
TopupMode = Literal["fixed", "target"]
RequestStatus = Literal["pending", "succeeded", "failed", "canceled"]


def exponential_delays(first_ms: int, factor: int, count: int) -> tuple[int, ...]:
    return tuple(first_ms * factor**i for i in range(count))


def retry_delay(delays: tuple[int, ...], failures: int) -> int | None:
    """How long to wait after the ``failures``-th consecutive decline; None once the schedule
    is used up. One rule for top-ups and for unpaid invoices (dunning.py)."""
    return delays[failures - 1] if 1 <= failures <= len(delays) else None


@dataclass(frozen=True, slots=True)
class TopupPolicy:
    threshold: Decimal
    mode: TopupMode = "fixed"
    amount: Decimal = ZERO
    target: Decimal = ZERO
    cooldown_ms: int = DEFAULT_COOLDOWN_MS
    retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS
    max_per_period: int | None = None
    paid_priority: int = DEFAULT_PAID_PRIORITY
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.mode == "fixed" and self.amount <= 0:
            raise ValueError("fixed top-up needs a positive amount")
        if self.mode == "target" and self.target <= self.threshold:
            raise ValueError("target top-up needs a target above the threshold")
        if self.mode not in ("fixed", "target"):
            raise ValueError(f"unknown top-up mode {self.mode!r}")
        if self.cooldown_ms < 0 or any(d < 0 for d in self.retry_delays_ms):
            raise ValueError("delays must not be negative")

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": str(self.threshold),
            "mode": self.mode,
            "amount": str(self.amount),
            "target": str(self.target),
            "cooldown_ms": self.cooldown_ms,
            "retry_delays_ms": list(self.retry_delays_ms),
            "max_per_period": self.max_per_period,
            "paid_priority": self.paid_priority,
            "enabled": self.enabled,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TopupPolicy:
        cap = data.get("max_per_period")
        return cls(
            threshold=to_decimal(data["threshold"], "threshold"),
            mode=data.get("mode", "fixed"),
            amount=to_decimal(data.get("amount", 0), "amount"),
            target=to_decimal(data.get("target", 0), "target"),
            cooldown_ms=int(data.get("cooldown_ms", DEFAULT_COOLDOWN_MS)),
            retry_delays_ms=tuple(
                int(d) for d in data.get("retry_delays_ms", DEFAULT_RETRY_DELAYS_MS)
            ),
            max_per_period=None if cap is None else int(cap),
            paid_priority=int(data.get("paid_priority", DEFAULT_PAID_PRIORITY)),
            enabled=bool(data.get("enabled", True)),
        )


@dataclass(frozen=True, slots=True)
class TopupRequest:
    request_id: str
    customer_id: str
    amount: Decimal
    currency: str
    requested_at: int
    attempt: int  # 1 for a first try, k for the (k-1)-th dunning retry
    # What it pays: a top-up (its outcome names the request id), or an unpaid invoice's
    # dunning retry (dunning.py; its outcome names the invoice).
    pays_kind: Literal["topup", "invoice"] = "topup"
    pays_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The meterline.topups record: the amount as outputs print money (money.money_text:
        "30.00", not str()'s "30.000000000000"); exact, so a payment service charges exactly it."""
        return {**self.state_dict(), "amount": money_text(self.amount, self.currency)}

    def state_dict(self) -> dict[str, Any]:
        """The pending request as the state keeps it: str() of the amount, scale and all, so a
        state decodes to exactly what was encoded (the state is not an output)."""
        return {
            "request_id": self.request_id,
            "customer_id": self.customer_id,
            "amount": str(self.amount),
            "currency": self.currency,
            "requested_at": self.requested_at,
            "attempt": self.attempt,
            # Only on an invoice retry: a top-up request keeps the shape it always had.
            **(
                {}
                if self.pays_kind == "topup"
                else {"pays_kind": self.pays_kind, "pays_id": self.pays_id}
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TopupRequest:
        return cls(
            data["request_id"],
            data["customer_id"],
            to_decimal(data["amount"]),
            data["currency"],
            int(data["requested_at"]),
            int(data["attempt"]),
            data.get("pays_kind", "topup"),
            data.get("pays_id"),
        )


OutcomeResult = Literal["applied", "stale", "suspended"]


@dataclass(slots=True)
class AutoTopup:
    customer_id: str
    currency: str
    policy: TopupPolicy
    n: int = 0
    pending: TopupRequest | None = None
    failures: int = 0
    not_before: int | None = None
    suspended: bool = False
    succeeded_in_period: int = 0
    requests: dict[str, RequestStatus] = field(default_factory=dict)
    last_requested_at: int | None = None
    # The amount a dunning retry asks for: the declined attempt's.
    retry_amount: Decimal | None = None

    @exact
    def next_gate(self, after: int) -> int | None:
        """When a time gate of ``decide`` (a retry's not-before, the cooldown) next opens after
        ``after``; None when none is closed, so only a change of balance can make it ask."""
        gates = [self.not_before]
        if self.last_requested_at is not None:
            gates.append(self.last_requested_at + self.policy.cooldown_ms)
        return min((g for g in gates if g is not None and g > after), default=None)

    def decide(self, balance: Decimal, now: int) -> TopupRequest | None:
        """The request to send now, if any; it becomes the pending request."""
        p = self.policy
        if not p.enabled or self.suspended or self.pending is not None:
            return None
        if balance >= p.threshold:
            return None
        if self.not_before is not None and now < self.not_before:
            return None
        if self.last_requested_at is not None and now < self.last_requested_at + p.cooldown_ms:
            return None
        if p.max_per_period is not None and self.succeeded_in_period >= p.max_per_period:
            return None
        if self.retry_amount is not None:
            amount = self.retry_amount
        else:
            amount = p.amount if p.mode == "fixed" else p.target - balance
        if amount <= 0:
            return None
        self.n += 1
        request = TopupRequest(
            f"topup:{self.customer_id}:{self.n}",
            self.customer_id,
            amount,
            self.currency,
            now,
            self.failures + 1,
        )
        self.pending = request
        self.requests[request.request_id] = "pending"
        self.last_requested_at = now
        return request

    def knows(self, request_id: str) -> bool:
        return request_id in self.requests

    def issued(self, request_id: str) -> bool:
        """Whether this account ever asked for ``request_id``, kept or since forgotten."""
        prefix = f"topup:{self.customer_id}:"
        tail = request_id[len(prefix) :]
        return (
            request_id.startswith(prefix)
            and tail.isascii()
            and tail.isdigit()
            and 1 <= int(tail) <= self.n
        )

    def _close(self, request_id: str, status: RequestStatus) -> bool:
        """Record a final status; False when the request was already final (a stale outcome)."""
        if self.requests.get(request_id) != "pending":
            return False
        self.requests[request_id] = status
        if self.pending is not None and self.pending.request_id == request_id:
            self.pending = None
        return True

    def on_succeeded(self, request_id: str, at: int) -> OutcomeResult:
        status = self.requests.get(request_id)
        if status is None or status == "succeeded":
            return "stale"
        if status == "pending":
            self._close(request_id, "succeeded")
        else:
            # Success reported after a decline or cancel: the money was taken all the same.
            self.requests[request_id] = "succeeded"
        self.succeeded_in_period += 1
        self.failures = 0
        self.suspended = False
        self.not_before = None
        self.retry_amount = None
        return "applied"

    def on_failed(self, request_id: str, at: int) -> OutcomeResult:
        declined = self.pending
        if not self._close(request_id, "failed"):
            return "stale"
        if declined is not None and declined.request_id == request_id:
            self.retry_amount = declined.amount
        self.failures += 1
        wait = retry_delay(self.policy.retry_delays_ms, self.failures)
        if wait is None:
            self.suspended = True
            self.not_before = None
            self.retry_amount = None
            return "suspended"
        self.not_before = at + wait
        return "applied"

    def on_canceled(self, request_id: str, at: int) -> OutcomeResult:
        # Not a decline: no dunning step. A charge the customer canceled must not be asked
        # again on the very next event, however long ago it was requested, so here the
        # cooldown runs from the cancel.
        if not self._close(request_id, "canceled"):
            return "stale"
        self.not_before = at + self.policy.cooldown_ms
        self.retry_amount = None
        return "applied"

    def forget_closed(self, keep: set[str]) -> None:
        """Drop closed requests not in ``keep``; the pending one always stays."""
        for request_id in [
            r for r, status in self.requests.items() if status != "pending" and r not in keep
        ]:
            del self.requests[request_id]

    def new_period(self) -> None:
        self.succeeded_in_period = 0

    def update_policy(self, policy: TopupPolicy) -> None:
        """A new policy (the customer's upsert) is also how a suspended top-up is resumed."""
        self.policy = policy
        self.suspended = False
        self.failures = 0
        self.not_before = None
        self.retry_amount = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "currency": self.currency,
            "policy": self.policy.to_dict(),
            "n": self.n,
            "pending": None if self.pending is None else self.pending.state_dict(),
            "failures": self.failures,
            "not_before": self.not_before,
            "suspended": self.suspended,
            "succeeded_in_period": self.succeeded_in_period,
            "requests": dict(self.requests),
            "last_requested_at": self.last_requested_at,
            "retry_amount": None if self.retry_amount is None else str(self.retry_amount),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutoTopup:
        pending = data.get("pending")
        return cls(
            data["customer_id"],
            data["currency"],
            TopupPolicy.from_dict(data["policy"]),
            int(data["n"]),
            None if pending is None else TopupRequest.from_dict(pending),
            int(data["failures"]),
            data.get("not_before"),
            bool(data["suspended"]),
            int(data["succeeded_in_period"]),
            dict(data.get("requests", {})),
            data.get("last_requested_at"),
            None if data.get("retry_amount") is None else to_decimal(data["retry_amount"]),
        )
