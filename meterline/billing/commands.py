"""Account commands as they arrive on ``meterline.accounts`` (JSON-able dicts), applied to an
account. A malformed command is rejected with a reason (for the DLQ), never raised."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from meterline.billing.account import DEFAULT_EXPIRY_NOTICE_MS, Account
from meterline.billing.advance import DEFAULT_ITEMS, AdvanceItem
from meterline.billing.catalog import Plan, check_category
from meterline.billing.effects import Effects
from meterline.billing.money import opt_decimal, to_decimal
from meterline.billing.periods import BillingAnchor
from meterline.billing.topup import TopupPolicy


def _opt_int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def apply_command(account: Account, cmd: Mapping[str, Any], plans: Mapping[str, Plan]) -> Effects:
    """``plans`` is the catalog's current plans by id (the command names a plan, the catalog
    defines it)."""
    kind = cmd.get("type")
    if cmd.get("customer_id") != account.customer_id:
        return Effects(errors=["command for another customer"], status="rejected")
    try:
        at = int(cmd["at"])
        if kind == "upsert":
            plan = plans.get(cmd["plan_id"])
            if plan is None:
                return Effects(errors=[f"unknown plan {cmd['plan_id']!r}"], status="rejected")
            topup = cmd.get("topup")
            return account.upsert(
                plan,
                BillingAnchor(int(cmd["billing_anchor"]), cmd.get("tz", "UTC")),
                at,
                topup=None if topup is None else TopupPolicy.from_dict(topup),
                low_balance_threshold=opt_decimal(cmd.get("low_balance_threshold")),
                expiry_notice_ms=_opt_int(cmd.get("expiry_notice_ms", DEFAULT_EXPIRY_NOTICE_MS)),
                invoice_currency=cmd.get("invoice_currency"),
            )
        if kind == "grant":
            amount: Decimal = to_decimal(cmd["amount"], "amount")
            return account.grant(
                str(cmd["grant_id"]),
                amount,
                at,
                priority=int(cmd.get("priority", 0)),
                effective_at=_opt_int(cmd.get("effective_at")),
                expires_at=_opt_int(cmd.get("expires_at")),
                scope=tuple(cmd.get("scope", ())),
                category=check_category(cmd.get("category", "promotional")),
            )
        if kind == "void":
            return account.void(str(cmd["grant_id"]), at)
        if kind == "bill_in_advance":
            # No items: the fee, as the command always meant (advance.py).
            items = tuple(AdvanceItem.from_dict(i) for i in cmd.get("items") or ())
            return account.bill_in_advance(
                at,
                _opt_int(cmd.get("period_start")),
                periods=_opt_int(cmd.get("periods")),
                until=_opt_int(cmd.get("until")),
                items=items or DEFAULT_ITEMS,
            )
    # AttributeError: an object field given as something else (``"items": [null]``,
    # ``"topup": "x"``); raised, it stopped the worker on the record at every replay.
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Effects(errors=[f"malformed {kind} command: {exc!r}"], status="rejected")
    return Effects(errors=[f"unknown command type {kind!r}"], status="rejected")
