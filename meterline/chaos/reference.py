"""What the chaos run must end with, computed inside the harness.

Metering figures are computed here from first principles (plain sums over the first-seen event
of each id, the catalog file's meters and prices read as JSON), not through Meterline's
metering code, so a bug there cannot hide in the reference. Billing figures drive the pure
billing domain (meterline/billing) with the inputs in the order the worker applies them, as
tests/integration/billing_scenario.py does: the exactness under test is the pipeline's
(crashes, replays, outages, two writers), and the domain's own rules are tested by its unit
and property tests.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterline.billing.account import Account
from meterline.billing.catalog import Plan
from meterline.billing.commands import apply_command
from meterline.billing.effects import Effects
from meterline.billing.payments import PaymentOutcome
from meterline.billing.usage import ADDITIVE, Reading
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH, load_catalog
from meterline.metering.meters import dims_key

MILLION = Decimal(1_000_000)
WINDOWS = ("minute", "hour", "day", "month")

UsageKey = tuple[str, str, tuple[tuple[str, str], ...], str, int]
TokenKey = tuple[str, str, str, int]


def window_starts(ts: int) -> dict[str, int]:
    d = datetime.fromtimestamp(ts / 1000, tz=UTC)
    month = int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)
    return {
        "minute": ts // 60_000 * 60_000,
        "hour": ts // 3_600_000 * 3_600_000,
        "day": ts // 86_400_000 * 86_400_000,
        "month": month,
    }


def _iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


class MeteringReference:
    """Usage windows at every size and token usage, over the first-seen event of each id."""

    def __init__(self, catalog_path: Path = DEFAULT_CATALOG_PATH) -> None:
        raw = json.loads(Path(catalog_path).read_text())
        self.meters: dict[str, dict[str, Any]] = {m["code"]: m for m in raw["meters"]}
        self.prices: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for p in raw["model_prices"]:
            self.prices[p["model"]].append((_iso_ms(p["effective_from"]), p))
        self.markup = Decimal(raw["markups"][0]["rate"])
        self.seen: set[str] = set()
        self.usage: list[dict[str, Any]] = []
        self.tokens: list[dict[str, Any]] = []

    def price_change(self, change: dict[str, Any]) -> None:
        self.prices[change["model"]].append((change["effective_from"], change))

    def offer(self, event: dict[str, Any]) -> bool:
        """True when this is the first event of its id (the one that counts)."""
        key = ("t:" if "model" in event else "u:") + event["customer_id"] + "|" + event["event_id"]
        if key in self.seen:
            return False
        self.seen.add(key)
        (self.tokens if "model" in event else self.usage).append(event)
        return True

    def usage_windows(self) -> dict[UsageKey, tuple[Decimal, int]]:
        groups: dict[UsageKey, list[dict[str, Any]]] = defaultdict(list)
        for e in self.usage:
            meter = self.meters.get(e["meter"], {"group_by": []})
            dims = tuple(
                sorted((k, v) for k, v in e["dimensions"].items() if k in meter["group_by"])
            )
            for window, start in window_starts(e["timestamp"]).items():
                groups[(e["customer_id"], e["meter"], dims, window, start)].append(e)
        out: dict[UsageKey, tuple[Decimal, int]] = {}
        for key, evs in groups.items():
            m = self.meters.get(key[1], {"aggregation": "sum", "value_field": "value"})
            agg, fld = m["aggregation"], m["value_field"]
            values = [e["value"] if fld == "value" else e["dimensions"].get(fld) for e in evs]
            if agg == "count":
                v = Decimal(len(evs))
            elif agg == "unique_count":
                v = Decimal(len({x for x in values if x is not None}))
            elif agg == "min":
                v = min(values)
            elif agg == "max":
                v = max(values)
            elif agg == "latest":
                v = max(evs, key=lambda e: (e["timestamp"], e["event_id"]))["value"]
            else:
                v = sum(values, Decimal(0))
            out[key] = (v, len(evs))
        return out

    def _price(self, model: str, ts: int) -> dict[str, Any]:
        in_force = [(t, p) for t, p in self.prices[model] if t <= ts]
        return max(in_force, key=lambda tp: tp[0])[1]

    def token_usage(self) -> dict[TokenKey, tuple[int, int, Decimal, Decimal]]:
        acc: dict[TokenKey, list[Any]] = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
        for e in self.tokens:
            p = self._price(e["model"], e["timestamp"])
            cost = (
                e["input_tokens"] * Decimal(p["input_per_million"])
                + e["output_tokens"] * Decimal(p["output_per_million"])
            ) / MILLION
            for window, start in window_starts(e["timestamp"]).items():
                a = acc[(e["customer_id"], e["model"], window, start)]
                a[0] += e["input_tokens"]
                a[1] += e["output_tokens"]
                a[2] += cost
                a[3] += cost * (1 + self.markup)
        return {k: (v[0], v[1], v[2], v[3]) for k, v in acc.items()}

    def events_by_customer(self) -> dict[tuple[str, str], int]:
        """(customer, 'usage'|'tokens') → unique events, for lost/double counts."""
        out: dict[tuple[str, str], int] = defaultdict(int)
        for e in self.usage:
            out[(e["customer_id"], "usage")] += 1
        for e in self.tokens:
            out[(e["customer_id"], "tokens")] += 1
        return dict(out)


class BillingReference:
    """The billing domain fed what each billing customer's account applies, in order."""

    def __init__(self, customers: list[str], catalog_path: Path = DEFAULT_CATALOG_PATH) -> None:
        seed = load_catalog(catalog_path)
        self.plans = {p.plan_id: p for p in (Plan.from_dict(d) for d in seed.plans)}
        self.meters = seed.meter_catalog()
        self.accounts = {c: Account(c) for c in customers}
        self.entries: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.topups: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.payments: dict[tuple[str, str], dict[str, Any]] = {}
        self.rejected = 0  # inputs the domain refuses: each one is a DLQ row

    def _record(self, fx: Effects) -> None:
        if fx.errors:
            self.rejected += 1
        for e in fx.entries:
            self.entries[e.customer_id][e.entry_id] = e.to_dict()
        for t in fx.topups:
            self.topups[t.request_id] = t.to_dict()
        for i in fx.invoices:
            self.invoices[i.invoice_id] = i.to_dict()
        for a in fx.alerts:
            self.alerts[a.alert_id] = a.to_dict()

    def command(self, cmd: dict[str, Any]) -> None:
        account = self.accounts.get(cmd.get("customer_id", ""))
        if account is None:
            self.rejected += 1
            return
        self._record(apply_command(account, cmd, self.plans))

    def usage(self, e: dict[str, Any]) -> None:
        """As metering reads an event: the meter's own value field, and a non-additive
        meter's event as a reading of the period aggregate."""
        account = self.accounts[e["customer_id"]]
        entry = account.plan.entry(e["meter"]) if account.plan is not None else None
        if entry is None or entry.model is None:
            return
        meter = self.meters.get(e["meter"])
        value, unique = meter.extract(e)
        if meter.aggregation in ADDITIVE:
            fx = account.apply_usage(e["event_id"], e["meter"], value, e["timestamp"])
        else:
            group = dims_key(meter.group_dims(e["dimensions"]))
            reading = Reading(meter.aggregation, group, value, e["timestamp"], unique)
            fx = account.apply_reading(e["event_id"], e["meter"], reading)
        self._record(fx)

    def payment(self, p: dict[str, Any]) -> None:
        fx = self.accounts[p["customer_id"]].apply_payment(PaymentOutcome.from_dict(p))
        if not fx.errors:
            self.payments[(p["payment_id"], p["status"])] = p
        self._record(fx)

    def balance(self, customer: str) -> Decimal:
        return self.accounts[customer].balance()

    def pending_topups(self) -> list[dict[str, Any]]:
        return [t for t in self.topups.values()]
