"""Multi-currency invoices (issue 9): credits stay in the plan's currency, each invoice line is
converted at the rate in force at the issue time and rounded in the invoice currency."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from meterline.billing.account import Account
from meterline.billing.fx import FxQuote, FxRate, FxRates
from meterline.billing.invoice import SUMMARY_KINDS, Invoice, MeterCharge, build_invoice
from meterline.billing.money import minor_units
from meterline.billing.periods import Period

from .accounts import START, new_account
from .helpers import DAY, through_json
from .payment_outcomes import pay

D = Decimal
PERIOD = Period(1000, 2000, 0)


def test_the_rate_in_force_at_the_issue_time_is_chosen() -> None:
    rates = FxRates([FxRate("USD", "EUR", D("0.90"), 100), FxRate("USD", "EUR", D("0.95"), 2000)])
    assert rates.quote("USD", "EUR", 99) is None
    assert rates.quote("USD", "EUR", 1999) == FxQuote("USD", "EUR", D("0.90"), 100)
    assert rates.quote("USD", "EUR", 2000) == FxQuote("USD", "EUR", D("0.95"), 2000)
    assert rates.quote("USD", "USD", 5000) is None  # no conversion
    rates.add(FxRate("USD", "EUR", D("0.91"), 100))  # a correction replaces its entry
    assert rates.quote("USD", "EUR", 150) == FxQuote("USD", "EUR", D("0.91"), 100)


def test_lines_are_rounded_in_the_invoice_currency() -> None:
    jpy = FxQuote("USD", "JPY", D("151.237"), 500)
    inv = build_invoice(
        "c",
        "USD",
        PERIOD,
        2000,
        fee=D("49"),
        charges=[MeterCharge("api", D(10), D("0.125"), D("0.1"))],
        fx=jpy,
    )
    assert inv.currency == "JPY" and inv.fx == jpy
    assert [(x.kind, x.amount) for x in inv.lines] == [
        ("fee", D("7411")),  # 7410.613
        ("usage", D("19")),  # 18.904625
        ("credits_applied", D("-15")),  # -15.1237
        ("overage", D("4")),
        ("amount_due", D("7415")),
    ]
    record = inv.to_dict()
    assert (record["currency"], record["plan_currency"], record["fx_rate"]) == (
        "JPY",
        "USD",
        "151.237",
    )
    assert record["amount_due"] == "7415" and record["fx_rate_effective_from"] == 500
    assert Invoice.from_dict(record).fx == jpy


@given(
    st.sampled_from(["EUR", "JPY", "KWD", "GBP"]),
    st.decimals(min_value=D("0.001"), max_value=D(500), places=6),
    st.lists(
        st.tuples(
            st.decimals(min_value=0, max_value=1000, places=6),
            st.decimals(min_value=0, max_value=1000, places=6),
        ),
        max_size=4,
    ),
    st.decimals(min_value=0, max_value=100, places=4),
)
def test_amount_due_is_the_sum_of_the_lines_shown(
    currency: str, rate: Decimal, charges: list[tuple[Decimal, Decimal]], fee: Decimal
) -> None:
    quote = FxQuote("USD", currency, rate, 0)
    inv = build_invoice(
        "c",
        "USD",
        PERIOD,
        2000,
        fee=fee,
        charges=[MeterCharge(f"m{i}", D(1), a, min(a, c)) for i, (a, c) in enumerate(charges)],
        fx=quote,
    )
    lines = [x for x in inv.lines if x.kind not in SUMMARY_KINDS]
    assert inv.amount_due == sum((x.amount for x in lines), D(0)) == inv.line("amount_due").amount
    for x in lines:
        assert -x.amount.as_tuple().exponent <= minor_units(currency)  # type: ignore[operator]


def test_an_account_invoiced_in_eur_keeps_credits_in_usd() -> None:
    account = new_account()  # every-model plan, USD, 15 credits a period
    account.upsert(account.plan, account.anchor, START + 1, invoice_currency="eur")  # type: ignore[arg-type]
    account.fx_rates = FxRates([FxRate("USD", "EUR", D("0.9"), START - DAY)])
    fx = account.apply_usage("e1", "api", D(1000), START + DAY)  # 3.00 USD of credits
    assert sum(e.amount for e in fx.entries if e.kind == "debit") == D("-3.000")
    assert account.balance() == D(16)  # 15 + 4 - 3, in USD
    restored = through_json(account)
    assert restored.invoice_currency == "EUR"
    restored.fx_rates = account.fx_rates
    [inv] = restored.tick(START + 40 * DAY).invoices
    assert inv.currency == "EUR" and inv.fx == FxQuote("USD", "EUR", D("0.9"), START - DAY)
    assert inv.line("fee").amount == D("9.00") and inv.line("usage", "api").amount == D("2.70")
    # No rate in force: the plan's currency, as before.
    account.fx_rates = FxRates()
    [plain_inv] = account.tick(START + 40 * DAY).invoices
    assert plain_inv.currency == "USD" and plain_inv.fx is None


def _eur_invoice() -> tuple[Account, str, int]:
    """An account invoiced in EUR at 0.92: its first invoice, 9.20 EUR (the 10.00 USD fee)."""
    account = new_account()
    account.upsert(account.plan, account.anchor, START + 1, invoice_currency="EUR")  # type: ignore[arg-type]
    account.fx_rates = FxRates([FxRate("USD", "EUR", D("0.92"), START - DAY)])
    [inv] = account.tick(START + 40 * DAY).invoices
    assert (inv.currency, inv.amount_due) == ("EUR", D("9.20"))
    return account, inv.invoice_id, START + 41 * DAY


def _eur(payment_id: str, status: str, amount: str, pays: str, at: int, **extra: str) -> Any:
    return pay(payment_id, status, amount, pays, at, currency="EUR", **extra)


def _identity(account: Account) -> None:
    w = account.wallet
    assert w.balance_total == sum((g.remaining for g in w.grants.values()), D(0))
    assert w.balance_total == sum(w.totals.values(), D(0))


def test_an_eur_invoice_is_paid_in_eur_and_its_overpayment_is_credit_at_its_rate() -> None:
    account, inv_id, t = _eur_invoice()
    usd = account.apply_payment(pay("u", "succeeded", "9.20", inv_id, t))
    assert (usd.status, usd.errors) == ("rejected", ["payment in USD, expected EUR"])
    account.apply_payment(_eur("a", "succeeded", "5", inv_id, t))
    fx = account.apply_payment(_eur("b", "succeeded", "5.20", inv_id, t + 1))
    inv = account.invoices[inv_id]
    assert (inv.amount_paid, inv.remaining, inv.status) == (D("9.20"), D(0), "paid")
    # 1.00 EUR over: credits in the plan's currency, 1 / 0.92 to 12 decimals.
    [entry] = fx.entries
    assert (entry.kind, entry.amount) == ("overpayment", D("1.086956521739"))
    # A refund of the overpayment in three parts takes back exactly the credits granted.
    before = account.wallet.balance_total
    for i, cumulative in enumerate(("0.30", "0.70", "1.00")):
        account.apply_payment(_eur("b", "refunded", cumulative, inv_id, t + 2 + i))
    assert before - account.wallet.balance_total == D("1.086956521739")
    assert account.wallet.grants["overpay:b"].remaining == 0
    assert account.invoices[inv_id].remaining == 0  # the invoice's part is untouched
    _identity(through_json(account))


def test_a_lost_dispute_of_an_eur_payment_reopens_the_invoice_and_bills_its_fee_in_usd() -> None:
    account, inv_id, t = _eur_invoice()
    account.apply_payment(_eur("a", "succeeded", "10.20", inv_id, t))  # 1.00 EUR of credit
    opened = account.apply_payment(_eur("a", "dispute_opened", "10.20", inv_id, t + 1))
    assert [(e.kind, e.amount) for e in opened.entries] == [("dispute_hold", D("-1.086956521739"))]
    assert account.invoices[inv_id].remaining == D("9.20")
    restored = through_json(account)
    restored.fx_rates = account.fx_rates
    restored.apply_payment(_eur("a", "dispute_lost", "10.20", inv_id, t + 2, dispute_fee="9.20"))
    assert restored.invoices[inv_id].remaining == D("9.20")
    assert restored.wallet.grants["overpay:a"].remaining == 0
    assert restored.dispute_fees == D(10)  # 9.20 EUR at 0.92, in USD
    _identity(restored)


def test_an_avro_catalog_change_carries_an_exchange_rate() -> None:
    from schemas.codec import Codec
    from schemas.names import CATALOG_CHANGE
    from schemas.registry import FileRegistry
    from streams.catalog_feed import normalize_change

    codec = Codec(FileRegistry())
    body = {"base": "USD", "quote": "JPY", "rate": D("151.237"), "effective_from": 500}
    record = {"change_id": "fx-1", "at": 600, "payload": ("meterline.FxRate", body)}
    kind, decoded, at = normalize_change(*codec.decode(codec.encode(CATALOG_CHANGE, record)))
    assert (kind, at) == ("fx_rate", 600)
    assert FxRate.from_dict(decoded) == FxRate("USD", "JPY", D("151.237"), 500)
