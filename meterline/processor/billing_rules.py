"""How billing inputs reach a customer's ``Account``: counted usage and token events are
rated and burn credits, account commands and payment outcomes are applied, and the effects go
into the account's outbox. Avro and JSON forms of a command arrive in the same shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from meterline.billing.account import Account
from meterline.billing.catalog import Plan
from meterline.billing.commands import apply_command
from meterline.billing.fx import FxRates
from meterline.billing.payments import PaymentOutcome
from meterline.billing.usage import ADDITIVE, Reading
from meterline.metering.meters import MeterCatalog, dims_key
from meterline.metering.pricebook import PriceBook, PricingError
from meterline.processor.account_state import AccountState
from meterline.processor.inputs import BillingInput, InputKind

TOKENS_METER = "llm_tokens"


def command_from_avro(value: dict[str, Any]) -> dict[str, Any]:
    """The Avro AccountCommand in the shape of meterline.billing.commands."""
    name, body = value["command"]
    base = {"customer_id": value["customer_id"], "at": value["issued_at"]}
    short = name.rsplit(".", 1)[-1]
    if short == "CustomerUpsert":
        topup = body.get("topup")
        return {
            **base,
            "type": "upsert",
            "plan_id": body["plan"],
            "billing_anchor": body["billing_anchor"],
            "tz": body.get("timezone", "UTC"),
            "invoice_currency": body.get("invoice_currency"),
            "topup": None
            if topup is None
            else {
                "threshold": topup["threshold"],
                "mode": topup["mode"],
                "amount": topup["amount"],
                "target": topup.get("target") or 0,
                "cooldown_ms": int(topup["cooldown_seconds"]) * 1000,
                "max_per_period": topup["max_per_period"],
            },
        }
    if short == "CreditGrant":
        return {**base, "type": "grant", **body}
    if short == "GrantVoid":
        return {**base, "type": "void", "grant_id": body["grant_id"]}
    if short == "BillInAdvance":
        # period_start, and (schema id 10 on) periods, until and items, named as the command.
        return {**base, "type": "bill_in_advance", **body}
    raise ValueError(f"unknown account command {name!r}")


class BillingRules:
    def __init__(
        self,
        meters: MeterCatalog,
        prices: PriceBook,
        plans: dict[str, dict[str, Any]],
        fx_rates: FxRates | None = None,
    ) -> None:
        self.meters = meters
        self.prices = prices
        self.plan_dicts = plans
        self.fx_rates = fx_rates if fx_rates is not None else FxRates()
        self._plans: dict[str, Plan] = {}
        self._plans_seen: dict[str, dict[str, Any]] = {}

    def plans(self) -> dict[str, Plan]:
        # Plans change rarely (catalog); parse each version once.
        for plan_id, raw in self.plan_dicts.items():
            if self._plans_seen.get(plan_id) is not raw:
                self._plans[plan_id] = Plan.from_dict(raw)
                self._plans_seen[plan_id] = raw
        return self._plans

    def account(self, state: AccountState) -> Account:
        """The state's account, seeing the catalog's exchange rates (held in memory only, like
        plans: a rate is catalog, not account state)."""
        account = state.account
        account.fx_rates = self.fx_rates
        return account

    def billing_input(self, state: AccountState, kind: InputKind, body: BillingInput) -> list[str]:
        """An account command or a payment outcome; a malformed one comes back as errors."""
        try:
            if kind is InputKind.ACCOUNTS:
                return self.command(state, body.encoding, body.value)
            return self.payment(state, body.encoding, body.value)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            return [f"malformed {kind} record: {exc!r}"]

    def usage(self, state: AccountState, kind: InputKind, record: dict[str, Any]) -> list[str]:
        """Rates one counted event and burns credits. Meters the plan does not price are
        metered but free; an account without a plan is metered only."""
        account = self.account(state)
        if account.plan is None:
            return []
        at = record["timestamp"]
        if kind is InputKind.TOKENS:
            try:
                cost = self.prices.cost(
                    record["model"],
                    record["input_tokens"],
                    record["output_tokens"],
                    record["cached_input_tokens"],
                    at,
                    record.get("cache_write_tokens", 0),
                ).billed
            except PricingError as exc:
                return [str(exc)]
            # TokenEvent semantics: cached, cache-write and reasoning tokens are parts of
            # input_tokens / output_tokens, so these two are all the tokens of the request.
            tokens = record["input_tokens"] + record["output_tokens"]
            fx = account.apply_usage(
                f"tokens:{record['event_id']}", TOKENS_METER, Decimal(tokens), at, cost=cost
            )
        else:
            entry = account.plan.entry(record["meter"])
            if entry is None or entry.model is None:
                return []
            meter = self.meters.get(record["meter"])
            # The meter's own value field and group-by, as metering reads them.
            value, unique_value = meter.extract(record)
            if meter.aggregation in ADDITIVE:
                fx = account.apply_usage(record["event_id"], record["meter"], value, at)
            else:
                reading = Reading(
                    meter.aggregation,
                    dims_key(meter.group_dims(record["dimensions"])),
                    value,
                    at,
                    unique_value,
                )
                fx = account.apply_reading(record["event_id"], record["meter"], reading)
        state.record(fx)
        return fx.errors

    def command(self, state: AccountState, name: str, value: Any) -> list[str]:
        cmd = command_from_avro(value) if name != "json" else value
        fx = apply_command(self.account(state), cmd, self.plans())
        state.record(fx)
        return fx.errors

    def payment(self, state: AccountState, name: str, value: Any) -> list[str]:
        if name != "json":
            value = dict(value, pays_id=value.get("pays_id", ""))
        try:
            outcome = PaymentOutcome.from_dict(value)
        except (KeyError, TypeError, ValueError) as exc:
            return [f"malformed payment outcome: {exc!r}"]
        fx = self.account(state).apply_payment(outcome)
        state.record(fx)
        return fx.errors
