"""The reference scenario "Lora" (DESIGN.md) over two billing periods, expected values by hand.

Lora's plan: 49.00/month; every month 20.00 general credits (priority 1) and 5.00 image-only
credits (priority 0), both expiring at the period end; API calls in packages of 1000 at 2.00,
images graduated (first 10 at 0.10, then 0.05), LLM tokens priced by the price book (the cost
arrives with the event). Auto top-up: below 5.00 buy 25.00, cooldown 10 min, dunning 1h/6h/24h,
at most 3 per period. Billing anchor: 31 January, midnight in New York, so the periods are
[31 Jan 05:00Z, 28 Feb 05:00Z) (clamped) and [28 Feb 05:00Z, 31 Mar 04:00Z) (DST began 9 Mar).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from meterline.billing.account import Account
from meterline.billing.effects import Effects
from meterline.billing.payments import PaymentOutcome, PaymentStatus, PaysKind
from meterline.billing.periods import BillingAnchor
from meterline.billing.topup import TopupPolicy

from .helpers import HOUR, MINUTE, effects_dict, is_empty, lora_plan, through_json, utc

D = Decimal
C = "c-lora"
P1 = utc(2025, 1, 31, 5)  # period starts, written out by hand
P2 = utc(2025, 2, 28, 5)
P3 = utc(2025, 3, 31, 4)
POLICY = TopupPolicy(
    threshold=D("5.00"),
    amount=D("25.00"),
    cooldown_ms=10 * MINUTE,
    retry_delays_ms=(HOUR, 6 * HOUR, 24 * HOUR),
    max_per_period=3,
)

Step = tuple[str, Callable[[Account], Effects]]


def pay(
    payment_id: str,
    processor: str,
    status: PaymentStatus,
    amount: str,
    pays: str,
    at: int,
    failure_code: str | None = None,
    kind: PaysKind = "topup",
) -> Callable[[Account], Effects]:
    outcome = PaymentOutcome(
        payment_id, C, processor, status, D(amount), "USD", kind, pays, at, failure_code
    )
    return lambda a: a.apply_payment(outcome)


def use(
    event_id: str, meter: str, qty: int, at: int, cost: str | None = None
) -> Callable[[Account], Effects]:
    return lambda a: a.apply_usage(event_id, meter, D(qty), at, None if cost is None else D(cost))


T = {  # event times
    "e1": utc(2025, 2, 1, 10),
    "e2": utc(2025, 2, 2),
    "e3": utc(2025, 2, 3),
    "e4": utc(2025, 2, 5),
    "pay_1": utc(2025, 2, 5, 0, 5),
    "e5": utc(2025, 2, 10),
    "e6": utc(2025, 2, 12),
    "e7": utc(2025, 2, 26),
    "inv1a": utc(2025, 3, 1),
    "inv1b": utc(2025, 3, 2),
    "e8": utc(2025, 3, 3),
    "e9": utc(2025, 3, 3, 12),
    "e10": utc(2025, 3, 4),
    "e11": utc(2025, 3, 5),
    "pay_2": utc(2025, 3, 5, 0, 1),
    "e12": utc(2025, 3, 5, 0, 30),
    "e13": utc(2025, 3, 5, 2),
    "pay_3": utc(2025, 3, 5, 2, 5),
    "ref_3": utc(2025, 3, 6),
    "ref_1": utc(2025, 3, 6, 1),
    "e14": utc(2025, 3, 10),
    "pay_4": utc(2025, 3, 10, 0, 2),
    "e15": utc(2025, 3, 10, 0, 5),
}
INV1, INV2 = f"inv:{C}:{P1}", f"inv:{C}:{P2}"

STEPS: list[Step] = [
    (
        "upsert",
        lambda a: a.upsert(lora_plan(), BillingAnchor(P1, "America/New_York"), P1, topup=POLICY),
    ),
    ("e1", use("e1", "api_calls", 1500, T["e1"])),  # 2 packages: 4.00
    ("e2", use("e2", "image_gen", 8, T["e2"])),  # 0.80
    ("e3", use("e3", "image_gen", 4, T["e3"])),  # 2 at 0.10 + 2 at 0.05
    ("e4", use("e4", "llm_tokens", 800_000, T["e4"], "16.00")),
    ("pay_1", pay("pay_1", "stripe", "succeeded", "25.00", f"topup:{C}:1", T["pay_1"])),
    ("pay_1 again", pay("pay_1", "stripe", "succeeded", "25.00", f"topup:{C}:1", T["pay_1"])),
    ("e5", use("e5", "llm_tokens", 300_000, T["e5"], "6.005")),
    ("e6", use("e6", "api_calls", 700, T["e6"])),  # 2200 calls: a third package
    ("e7", use("e7", "image_gen", 1, T["e7"])),  # 0.05, inside the expiry notice
    ("close 1", lambda a: a.tick(P2)),
    ("inv1a", pay("inv1a", "adyen", "succeeded", "20.00", INV1, T["inv1a"], kind="invoice")),
    ("inv1b", pay("inv1b", "adyen", "succeeded", "29.00", INV1, T["inv1b"], kind="invoice")),
    ("e8", use("e8", "llm_tokens", 1_500_000, T["e8"], "30.00")),
    ("e9", use("e9", "image_gen", 2, T["e9"])),
    ("e10", use("e10", "api_calls", 3000, T["e10"])),
    ("e11", use("e11", "api_calls", 1500, T["e11"])),  # 5 packages: +4.00, 0.995 covered
    (
        "pay_2",
        pay("pay_2", "adyen", "failed", "25.00", f"topup:{C}:2", T["pay_2"], "card_declined"),
    ),
    ("e12", use("e12", "llm_tokens", 100_000, T["e12"], "2.00")),  # all overage; retry not due
    ("e13", use("e13", "image_gen", 3, T["e13"])),  # retry due: request 3
    ("pay_3", pay("pay_3", "adyen", "succeeded", "25.00", f"topup:{C}:3", T["pay_3"])),
    ("ref_3", pay("pay_3", "adyen", "refunded", "10.00", f"topup:{C}:3", T["ref_3"])),
    ("ref_3 again", pay("pay_3", "adyen", "refunded", "10.00", f"topup:{C}:3", T["ref_3"])),
    ("ref_1", pay("pay_1", "stripe", "refunded", "5.00", f"topup:{C}:1", T["ref_1"])),
    ("e14", use("e14", "llm_tokens", 750_000, T["e14"], "15.00")),
    ("pay_4", pay("pay_4", "braintree", "canceled", "25.00", f"topup:{C}:4", T["pay_4"])),
    ("e15", use("e15", "llm_tokens", 50_000, T["e15"], "1.00")),  # cooldown after the cancel
    ("close 2", lambda a: a.tick(P3)),
]

G1a, G1b = f"plan:{C}:{P1}:0", f"plan:{C}:{P1}:1"
G2a, G2b = f"plan:{C}:{P2}:0", f"plan:{C}:{P2}:1"
G3a, G3b = f"plan:{C}:{P3}:0", f"plan:{C}:{P3}:1"
TP1, TP3 = "topup:pay_1", "topup:pay_3"

# (at, kind, amount, balance_after, grant_id, ref); entry_id is f"{C}:{n}" for the n-th.
LEDGER = [
    (P1, "grant", "20.00", "20.00", G1a, f"period:{P1}"),
    (P1, "grant", "5.00", "25.00", G1b, f"period:{P1}"),
    (T["e1"], "debit", "-4.00", "21.00", G1a, "e1"),
    (T["e2"], "debit", "-0.80", "20.20", G1b, "e2"),  # image credits first: priority 0
    (T["e3"], "debit", "-0.30", "19.90", G1b, "e3"),
    (T["e4"], "debit", "-16.00", "3.90", G1a, "e4"),
    (T["pay_1"], "topup", "25.00", "28.90", TP1, "pay_1"),
    (T["e5"], "debit", "-6.005", "22.895", TP1, "e5"),
    (T["e6"], "debit", "-2.00", "20.895", TP1, "e6"),
    (T["e7"], "debit", "-0.05", "20.845", G1b, "e7"),
    (P2, "expiry", "-3.85", "16.995", G1b, f"expired:{P2}"),
    (P2, "grant", "20.00", "36.995", G2a, f"period:{P2}"),
    (P2, "grant", "5.00", "41.995", G2b, f"period:{P2}"),
    (T["e8"], "debit", "-20.00", "21.995", G2a, "e8"),  # plan credits before paid ones
    (T["e8"], "debit", "-10.00", "11.995", TP1, "e8"),
    (T["e9"], "debit", "-0.20", "11.795", G2b, "e9"),
    (T["e10"], "debit", "-6.00", "5.795", TP1, "e10"),
    (T["e11"], "debit", "-0.995", "4.800", TP1, "e11"),  # 3.005 left as overage
    (T["e13"], "debit", "-0.30", "4.50", G2b, "e13"),
    (T["pay_3"], "topup", "25.00", "29.50", TP3, "pay_3"),
    (T["ref_3"], "reversal", "-10.00", "19.50", TP3, "pay_3"),  # unspent: reversed
    (T["e14"], "debit", "-15.00", "4.50", TP3, "e14"),
    (P3, "expiry", "-4.50", "0.00", G2b, f"expired:{P3}"),
    (P3, "grant", "20.00", "20.00", G3a, f"period:{P3}"),
    (P3, "grant", "5.00", "25.00", G3b, f"period:{P3}"),
]

TOPUPS = [  # (request_id, requested_at, amount, attempt)
    (f"topup:{C}:1", T["e4"], "25.00", 1),
    (f"topup:{C}:2", T["e11"], "25.00", 1),
    (f"topup:{C}:3", T["e13"], "25.00", 2),  # dunning retry, 1 h after the decline
    (f"topup:{C}:4", T["e14"], "25.00", 1),
]

ALERTS = [  # (kind, at, ref, data)
    ("balance_low", T["e4"], "e4", {"balance": "3.90", "threshold": "5.00"}),
    ("grant_expiring", T["e7"], G1b, {"expires_at": str(P2), "remaining": "3.90"}),
    ("balance_low", T["e11"], "e11", {"balance": "4.80", "threshold": "5.00"}),
    (
        "topup_failed",
        T["pay_2"],
        "pay_2",
        {
            "request_id": f"topup:{C}:2",
            "failure_code": "card_declined",
            "retry_at": str(T["pay_2"] + HOUR),
        },
    ),
    ("refund_debt", T["ref_1"], "pay_1:5.00", {"owed": "5.00", "payment_id": "pay_1"}),
    ("balance_low", T["e14"], "e14", {"balance": "4.50", "threshold": "5.00"}),
]

# (kind, meter, quantity, unit_price, amount)
INVOICE_1 = [
    ("fee", "", "1", "49.00", "49.00"),
    ("usage", "api_calls", "2200", "0.002727272727", "6.00"),
    ("usage", "image_gen", "13", "0.088461538462", "1.15"),
    ("usage", "llm_tokens", "1100000", "0.000020004545", "22.00"),  # 22.005, half to even
    ("credits_applied", "api_calls", None, None, "-6.00"),
    ("credits_applied", "image_gen", None, None, "-1.15"),
    ("credits_applied", "llm_tokens", None, None, "-22.00"),
    ("overage", "", None, None, "0.00"),
    ("amount_due", "", None, None, "49.00"),
]
INVOICE_2 = [
    ("fee", "", "1", "49.00", "49.00"),
    ("usage", "api_calls", "4500", "0.002222222222", "10.00"),
    ("usage", "image_gen", "5", "0.100000000000", "0.50"),
    ("usage", "llm_tokens", "2400000", "0.000020000000", "48.00"),
    ("credits_applied", "api_calls", None, None, "-7.00"),  # 6.995 rounds to even: 7.00
    ("credits_applied", "image_gen", None, None, "-0.50"),
    ("credits_applied", "llm_tokens", None, None, "-45.00"),
    ("refund_adjustment", "", None, None, "5.00"),  # pay_1's refund of spent credits
    ("overage", "", None, None, "6.00"),  # exact overage 6.005; lines are rounded first
    ("amount_due", "", None, None, "60.00"),
]


def run(json_between_steps: bool) -> tuple[Account, dict[str, Effects]]:
    account = Account(C)
    out: dict[str, Effects] = {}
    for name, step in STEPS:
        out[name] = step(account)
        if json_between_steps:
            account = through_json(account)
    return account, out


def _lines(inv_fx: Effects, invoice_id: str) -> list[tuple]:
    [inv] = [i for i in inv_fx.invoices if i.invoice_id == invoice_id]
    assert [x.line_no for x in inv.lines] == list(range(1, len(inv.lines) + 1))
    return [
        (
            x.kind,
            x.meter,
            None if x.quantity is None else str(x.quantity),
            None if x.unit_price is None else str(x.unit_price),
            str(x.amount),
        )
        for x in inv.lines
    ]


def test_ledger() -> None:
    account, fx = run(json_between_steps=False)
    entries = [e for f in fx.values() for e in f.entries]
    assert [(e.at, e.kind, e.amount, e.balance_after, e.grant_id, e.ref) for e in entries] == [
        (at, kind, D(amount), D(after), grant, ref)
        for at, kind, amount, after, grant, ref in LEDGER
    ]
    assert [e.entry_id for e in entries] == [f"{C}:{n}" for n in range(1, len(LEDGER) + 1)]
    assert account.balance(P3) == D(25)
    # Amounts are kept exact, down to the strings a sink would write.
    assert [str(e.amount) for e in entries] == [row[2] for row in LEDGER]


def test_topups_never_two_pending() -> None:
    account, fx = run(json_between_steps=False)
    requests = [t for f in fx.values() for t in f.topups]
    assert [(t.request_id, t.requested_at, str(t.amount), t.attempt) for t in requests] == TOPUPS
    assert [name for name, f in fx.items() if f.topups] == ["e4", "e11", "e13", "e14"]
    # Each request was answered before the next was sent.
    answered = {"e4": "pay_1", "e11": "pay_2", "e13": "pay_3", "e14": "pay_4"}
    names = [n for n, _ in STEPS]
    order = [names.index(n) for pair in answered.items() for n in pair]
    assert order == sorted(order)
    assert account.topup is not None and account.topup.pending is None


def test_alerts() -> None:
    _, fx = run(json_between_steps=False)
    alerts = [a for f in fx.values() for a in f.alerts]
    assert [(a.kind, a.at, a.ref, dict(a.data)) for a in alerts] == ALERTS
    assert alerts[0].alert_id == f"alert:{C}:balance_low:e4"


def test_invoices() -> None:
    account, fx = run(json_between_steps=False)
    assert _lines(fx["close 1"], INV1) == INVOICE_1
    assert _lines(fx["close 2"], INV2) == INVOICE_2
    inv1, inv2 = account.invoices[INV1], account.invoices[INV2]
    assert (inv1.period_start, inv1.period_end, inv1.issued_at) == (P1, P2, P2)
    assert (inv2.period_start, inv2.period_end, inv2.issued_at) == (P2, P3, P3)
    assert inv2.amount_due == D("60.00") and inv2.status == "open"


def test_partial_invoice_payments() -> None:
    _, fx = run(json_between_steps=False)
    [after_a] = fx["inv1a"].invoices
    assert (after_a.amount_paid, after_a.remaining, after_a.status) == (
        D("20.00"),
        D("29.00"),
        "partially_paid",
    )
    [after_b] = fx["inv1b"].invoices
    assert (after_b.amount_paid, after_b.remaining, after_b.status) == (
        D("49.00"),
        D("0.00"),
        "paid",
    )


def test_every_payment_outcome_kind() -> None:
    account, fx = run(json_between_steps=False)
    assert fx["pay_1 again"].status == "duplicate" and is_empty(fx["pay_1 again"])
    assert fx["ref_3 again"].status == "duplicate" and is_empty(fx["ref_3 again"])
    assert fx["pay_2"].entries == [] and fx["pay_2"].alert_kinds() == ["topup_failed"]
    assert fx["pay_4"].entries == [] and fx["pay_4"].topups == []
    accepted = [p.payment_id for f in fx.values() for p in f.payments]
    assert accepted == ["pay_1", "inv1a", "inv1b", "pay_2", "pay_3", "pay_3", "pay_1", "pay_4"]
    assert account.topup is not None
    assert account.topup.requests == {
        f"topup:{C}:1": "succeeded",
        f"topup:{C}:2": "failed",
        f"topup:{C}:3": "succeeded",
        f"topup:{C}:4": "canceled",
    }
    assert account.owed == 0  # billed on invoice 2


def test_redelivering_every_outcome_changes_nothing() -> None:
    account, _ = run(json_between_steps=False)
    before = account.to_dict()
    for name, step in STEPS:
        if name.startswith(("pay", "ref", "inv1")):
            fx = step(account)
            assert fx.status == "duplicate" and is_empty(fx), name
    assert account.to_dict() == before


def test_state_through_json_after_every_step_changes_nothing() -> None:
    straight, fx_a = run(json_between_steps=False)
    restored, fx_b = run(json_between_steps=True)
    assert {k: effects_dict(v) for k, v in fx_a.items()} == {
        k: effects_dict(v) for k, v in fx_b.items()
    }
    assert straight.to_dict() == restored.to_dict()
