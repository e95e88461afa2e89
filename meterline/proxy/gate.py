"""The spend gate: a hard cap at a zero balance for the customers it is set for.

A gated customer's request is refused (HTTP 402) when its balance is ≤ 0 and no top-up of
it is pending; a customer with no balance recorded at all has no credit either. The balance
is the worker API's ``GET /balance/{customer}`` and the pending top-ups come from its SQL
endpoint (``topups`` without a final outcome in ``payments``), both cached for ``ttl``
seconds per customer. How stale a decision may be: the TTL plus the pipeline lag (a token
event reaches the balance after the worker's next flush, ~1 s, see README), so a customer may
overspend by what it consumes in that time; the gate is a cap, not a reservation.

When the worker API cannot be reached the last known answer is used; with none, the request
is refused (503): a hard cap that fails open is not one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

import aiohttp

log = logging.getLogger(__name__)

# Final outcomes of a top-up request (a failure is retried under a new request id).
_CLOSED = ("succeeded", "failed", "canceled")


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    balance: Decimal | None  # None: no balance recorded
    pending_topup: bool
    reason: str = ""


class GateUnavailable(RuntimeError):
    """The balance could not be read and nothing is cached."""


def _sql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pending_topups_sql(customer: str) -> str:
    c = _sql_text(customer)
    closed = ", ".join(f"'{s}'" for s in _CLOSED)
    return (
        f"SELECT count() FROM topups FINAL WHERE customer_id = {c} AND pays_kind = 'topup' "
        f"AND request_id NOT IN (SELECT pays FROM payments FINAL WHERE customer_id = {c} "
        f"AND pays_kind = 'topup' AND status IN ({closed}))"
    )


class SpendGate:
    def __init__(
        self,
        api_url: str,
        customers: list[str],
        ttl_seconds: float,
        session: aiohttp.ClientSession,
        api_key: str = "",
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.everyone = "*" in customers
        self.customers = frozenset(c for c in customers if c != "*")
        self.ttl = ttl_seconds
        self.session = session
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._cache: dict[str, tuple[float, Verdict]] = {}
        # One lookup at a time per customer: a burst of requests waits for the same answer.
        self._inflight: dict[str, asyncio.Future[Verdict]] = {}

    def applies(self, customer: str) -> bool:
        return self.everyone or customer in self.customers

    async def check(self, customer: str) -> Verdict:
        now = time.monotonic()
        cached = self._cache.get(customer)
        if cached is not None and cached[0] > now:
            return cached[1]
        running = self._inflight.get(customer)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._inflight[customer] = fut
        try:
            try:
                verdict = await self._lookup(customer)
                self._cache[customer] = (time.monotonic() + self.ttl, verdict)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                if cached is None:
                    raise GateUnavailable(f"balance of {customer!r} unavailable: {exc}") from exc
                log.warning("balance of %s unavailable (%s); using the last known", customer, exc)
                verdict = cached[1]
            fut.set_result(verdict)
            return verdict
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        finally:
            self._inflight.pop(customer, None)

    async def _lookup(self, customer: str) -> Verdict:
        timeout = aiohttp.ClientTimeout(total=5)
        url = f"{self.api_url}/balance/{quote(customer, safe='')}"
        async with self.session.get(url, headers=self.headers, timeout=timeout) as r:
            if r.status == 404:
                balance = None
            elif r.status == 200:
                try:
                    balance = Decimal(str((await r.json())["balance"]))
                except (KeyError, InvalidOperation) as exc:
                    raise ValueError(f"unexpected balance answer: {exc!r}") from None
            else:
                raise ValueError(f"GET /balance answered {r.status}")
        if balance is not None and balance > 0:
            return Verdict(True, balance, False)
        pending = await self._pending_topup(customer)
        if pending:
            return Verdict(True, balance, True)
        shown = "none recorded" if balance is None else str(balance)
        return Verdict(
            False, balance, False, f"credit balance exhausted ({shown}) and no top-up pending"
        )

    async def _pending_topup(self, customer: str) -> bool:
        timeout = aiohttp.ClientTimeout(total=5)
        async with self.session.post(
            f"{self.api_url}/sql",
            params={"format": "json"},
            data=pending_topups_sql(customer).encode(),
            headers=self.headers,
            timeout=timeout,
        ) as r:
            if r.status != 200:
                # A store without billing tables has no top-ups: nothing pending.
                text = await r.text()
                if "topups" in text or "payments" in text:
                    return False
                raise ValueError(f"POST /sql answered {r.status}: {text[:200]}")
            rows = (await r.json())["rows"]
        return bool(rows) and int(rows[0][0]) > 0
