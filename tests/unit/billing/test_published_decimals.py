"""The records billing publishes print decimals by the one rule of money.py (issue 9, item 5):
the issue's Lora month, with values as Avro decodes them (Decimal(38, 12): 1.000000000000), as
the processor's outbox holds them for meterline.invoices, .topups and .alerts and for
credit_ledger. The outbox dicts are the published records (streams/outputs.py dumps them)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from meterline.billing.account import Account
from meterline.billing.catalog import Plan
from meterline.billing.periods import BillingAnchor
from meterline.billing.topup import TopupPolicy
from meterline.metering.catalog_file import load_catalog
from meterline.processor.account_state import OUTBOX_KINDS, AccountState
from meterline.processor.billing_rules import BillingRules
from meterline.processor.inputs import InputKind
from sinks.tables.billing import INVOICE_LINES, outbox_rows

from .helpers import MINUTE, utc

D = Decimal
START = utc(2026, 1, 1)
END = utc(2026, 2, 1)
SCALE12 = D("0.000000000001")  # Avro's Decimal(38, 12): every decoded value has this scale


def _usage(n: int, meter: str, value: str, **dims: str) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "customer_id": "lora-u",
        "meter": meter,
        "value": D(value).quantize(SCALE12),
        "timestamp": START + n * MINUTE,
        "dimensions": dims,
    }


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def _is_decimal(text: str) -> bool:
    try:
        return D(text).is_finite()
    except ArithmeticError:
        return False


def _issue_month() -> AccountState:
    seed = load_catalog()
    adapter = BillingRules(seed.meter_catalog(), seed.price_book(), {})
    plan = Plan.from_dict(next(p for p in seed.plans if p["plan_id"] == "lora-pro"))
    account = Account("lora-u")
    # A target top-up below 60: its request asks an exact 12-place difference.
    policy = TopupPolicy.from_dict(
        {"threshold": "60.000000000000", "mode": "target", "target": "80.000000000000"}
    )
    state = AccountState("lora-u", account)
    state.record(
        account.upsert(
            plan,
            BillingAnchor(START, "UTC"),
            START,
            topup=policy,
            low_balance_threshold=D("60.000000000000"),
        )
    )
    events = [("active_users", "1", {"user_id": f"u{i % 105}"}) for i in range(120)]
    events += [("storage_gb", gb, {}) for gb in ("30", "120", "250")]
    events += [("api_calls", "1", {})] * 120  # free tier: amount 0, unit price 0E-12 before
    events += [("image_generations", "1", {})] * 3
    for n, (meter, value, dims) in enumerate(events, 1):
        assert adapter.usage(state, InputKind.USAGE, _usage(n, meter, value, **dims)) == []
    state.record(state.account.tick(END))
    return state


def test_the_issue_invoice_as_published_has_plain_decimals() -> None:
    state = _issue_month()
    [record] = [r for kind, r in state.outbound_records() if kind == "invoices"]
    lines = {(x["kind"], x["meter"]): x for x in record["lines"]}
    assert (
        lines["usage", "active_users"]["quantity"],
        lines["usage", "storage_gb"]["quantity"],
    ) == (
        "105",
        "250",
    )
    free = lines["usage", "api_calls"]
    assert (free["quantity"], free["unit_price"], free["amount"]) == ("120", "0", "0.00")
    images = lines["usage", "image_generations"]
    assert (images["quantity"], images["unit_price"], images["amount"]) == ("3", "0.04", "0.12")
    assert lines["usage", "active_users"]["amount"] == "42.00"
    assert lines["fee", ""]["amount"] == "49.00"
    for line in record["lines"]:
        for key in ("quantity", "unit_price"):
            text = line[key]
            assert text is None or not ("." in text and text.endswith("0")), line
        assert len(line["amount"].partition(".")[2]) == 2, line  # USD: exactly two digits
    # 49.00 fee + 42.00 seats + 6.00 storage + 0.12 images - 0.12 credits for the images.
    assert (record["amount_due"], record["amount_paid"]) == ("97.00", "0.00")


def test_every_published_record_is_free_of_exponents() -> None:
    state = _issue_month()
    assert all(state.outbox[k] for k in ("entries", "topups", "invoices")), state.outbox
    for kind in OUTBOX_KINDS:
        for record in state.outbox[kind]:
            for text in filter(_is_decimal, _strings(record)):
                assert "E" not in text.upper(), (kind, record)
    # Printing changed nothing: the table rows are the same exact values.
    rows = outbox_rows(state)[INVOICE_LINES]
    inv = next(r for k, r in state.outbound_records() if k == "invoices")
    assert [row[-3:] for row in rows] == [
        [
            None if ln["quantity"] is None else D(ln["quantity"]),
            None if ln["unit_price"] is None else D(ln["unit_price"]),
            D(ln["amount"]),
        ]
        for ln in inv["lines"]
    ]


def test_topups_alerts_and_ledger_entries_as_published() -> None:
    state = _issue_month()
    [topup] = state.outbox["topups"]
    assert topup["amount"] == "30.00"  # 80.000000000000 - 50.00, as money of USD
    [low] = state.outbox["alerts"]
    assert low["data"] == {"balance": "50.00", "threshold": "60.00"}
    for e in state.outbox["entries"]:
        for key in ("amount", "balance_after"):
            assert "." not in e[key] or not e[key].endswith("0"), e
    # The state is not an output: the pending request keeps str() of its exact amount.
    pending = state.account.to_dict()["topup"]["pending"]
    assert pending["amount"] == "30.000000000000"
