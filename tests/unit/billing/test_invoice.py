from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from meterline.billing.invoice import SUMMARY_KINDS, Invoice, MeterCharge, build_invoice
from meterline.billing.periods import Period

D = Decimal
PERIOD = Period(1000, 2000, 0)


def test_each_line_is_rounded_and_the_due_is_their_sum() -> None:
    inv = build_invoice(
        "c",
        "USD",
        PERIOD,
        2000,
        fee=D("9.995"),
        charges=[
            MeterCharge("b", D(1), D("0.005"), D(0)),
            MeterCharge("a", D(3), D("0.015"), D("0.010"), unit_price=D("0.005")),
        ],
        adjustment=D("1.125"),
    )
    assert [(x.line_no, x.kind, x.meter, x.amount) for x in inv.lines] == [
        (1, "fee", "", D("10.00")),
        (2, "usage", "a", D("0.02")),
        (3, "usage", "b", D("0.00")),
        (4, "credits_applied", "a", D("-0.01")),
        (5, "refund_adjustment", "", D("1.12")),
        (6, "overage", "", D("0.01")),
        (7, "amount_due", "", D("11.13")),
    ]
    assert inv.line("usage", "a").unit_price == D("0.005")  # the model's own unit price
    assert inv.line("usage", "b").unit_price == D("0.005000000000")
    # The exact total is 11.135; the invoice asks for the sum of its rounded lines.
    assert inv.amount_due == D("11.13") and inv.invoice_id == "inv:c:1000"


def test_zero_decimal_currency_and_advance_kind() -> None:
    inv = build_invoice("c", "JPY", PERIOD, 500, fee=D("1980.5"), kind="advance")
    assert inv.invoice_id == "inv:c:1000:advance"
    assert [(x.kind, str(x.amount)) for x in inv.lines] == [
        ("fee", "1980"),
        ("overage", "0"),
        ("amount_due", "1980"),
    ]


def test_status_and_round_trip() -> None:
    inv = build_invoice("c", "USD", PERIOD, 2000, fee=D(5))
    assert inv.status == "open"
    assert Invoice.from_dict(inv.to_dict()) == inv


charges = st.lists(
    st.builds(
        MeterCharge,
        st.text("abc", min_size=1, max_size=3),
        st.decimals(min_value=0, max_value=10**6, places=2),
        st.decimals(min_value=0, max_value=1000, places=5),
        st.decimals(min_value=0, max_value=1000, places=5),
    ),
    max_size=6,
    unique_by=lambda c: c.meter,
)


@given(charges, st.decimals(min_value=0, max_value=500, places=4))
def test_amount_due_is_always_the_sum_of_rounded_lines(cs: list, fee: Decimal) -> None:
    inv = build_invoice("c", "EUR", PERIOD, 2000, fee=fee, charges=cs)
    lines = [x for x in inv.lines if x.kind not in SUMMARY_KINDS]
    assert all(x.amount == x.amount.quantize(D("0.01")) for x in lines)
    assert inv.amount_due == sum((x.amount for x in lines), D(0))
    exact = fee + sum((c.amount - c.credits for c in cs), D(0))
    assert abs(inv.amount_due - exact) <= D("0.005") * len(lines)
