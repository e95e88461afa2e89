"""A state written by the code before retention (every grant, payment and invoice as a full
dict, no version) still loads, behaves as that code did, and is pruned by its next operation.

``data/state_before_retention.json`` was written by that code (``data/
make_state_before_retention.py`` says how): a seeded random 230-day history of the every-model
plan (usage on every price model, top-ups paid, failed, canceled and refunded, invoice payments,
grants, voids, advance bills), its state, then 100-odd calls made after it and the effects that
code returned for each."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.billing.account import Account
from meterline.billing.retention import PAYMENT_RETENTION_MS

from .calls import Call, perform
from .helpers import DAY, by_value, effects_dict

FIXTURE = json.loads((Path(__file__).parent / "data" / "state_before_retention.json").read_text())
OLD: dict[str, Any] = FIXTURE["state"]


def _json(fx: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(fx, default=str))


def _load(retention_ms: int | None) -> Account:
    return Account.from_dict(json.loads(json.dumps(OLD)), payment_retention_ms=retention_ms)


def _new_rule_applies(account: Account, call: dict[str, Any]) -> bool:
    """Whether an invoice payment meets a rule the old code did not have (invoice_payments.py:
    an overpayment becomes credit, a failure makes the invoice past due); from there on the
    effects differ from the old code's by design."""
    o = call["args"].get("outcome") if call["kind"] == "payment" else None
    if o is None or o["pays_kind"] != "invoice" or o["payment_id"] in account.payments:
        return False
    inv = account.invoices.get(o["pays_id"])
    if inv is None:
        return False
    return o["status"] == "failed" or (
        o["status"] == "succeeded" and Decimal(o["amount"]) > inv.remaining
    )


@pytest.mark.parametrize("retention_ms", [None, PAYMENT_RETENTION_MS])
def test_old_state_behaves_as_the_old_code_did(retention_ms: int | None) -> None:
    account = _load(retention_ms)
    same = True
    for step in FIXTURE["after"]:
        same = same and not _new_rule_applies(account, step["call"])
        fx = perform(account, Call.from_dict(step["call"]))
        if same:
            # By value: outputs print decimals plainly now (0E-12 -> 0), the old code did not.
            assert by_value(_json(effects_dict(fx))) == by_value(step["effects"]), step["call"]
        w = account.wallet
        assert w.balance_total == sum((g.remaining for g in w.grants.values()), Decimal(0))
        account = Account.from_dict(
            json.loads(json.dumps(account.to_dict())), payment_retention_ms=retention_ms
        )


def test_old_state_is_pruned_by_its_next_operation() -> None:
    assert "v" not in OLD
    account = _load(10 * DAY)
    assert len(account.payments) == len(OLD["payments"])  # loading changes nothing
    account.tick(account.clock or 0)
    state = account.to_dict()
    assert state["v"] == 2
    assert len(account.payments) < len(OLD["payments"])
    assert len(account.wallet.grants) < len(OLD["wallet"]["grants"])
    assert len(json.dumps(state)) < len(json.dumps(OLD)) / 2
    # Invoice payments of an old state have no known time: they, and the settled invoices
    # they paid, get a whole window from the upgrade.
    assert len(account.invoices) == len(OLD["invoices"])
    account.tick((account.clock or 0) + 11 * DAY)
    assert 0 < len(account.invoices) < len(OLD["invoices"])
    assert all(i.status != "paid" or i.issued_at > OLD["clock"] for i in account.invoices.values())
    # What is gone had nothing left: the balance and the ledger's counters are untouched.
    old = _load(None)
    old.tick((old.clock or 0) + 11 * DAY)
    assert account.balance() == old.balance()
    assert account.wallet.balance_total == old.wallet.balance_total
    assert (account.wallet.seq, account.wallet.totals) == (old.wallet.seq, old.wallet.totals)


def test_old_payments_get_the_time_of_their_last_outcome_where_it_can_be_told() -> None:
    account = _load(PAYMENT_RETENTION_MS)
    grants = {g["grant_id"]: g for g in OLD["wallet"]["grants"]}
    for p in OLD["payments"]:
        rec = account.payments[p["payment_id"]]
        grant = grants.get(p["grant_id"] or "")
        if p["pays_kind"] == "topup" and grant and p["statuses"][-1] == "succeeded":
            assert rec.last_at == grant["effective_at"]  # applied when its grant was made
        else:
            assert rec.last_at == OLD["clock"]  # unknown: a whole window from the upgrade
