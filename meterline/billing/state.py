"""Compact codecs for the parts of an account state that there are many of.

The account table's changelog holds the whole state on every batch that touches the customer,
so its size is a cost paid per batch. A busy customer's state is mostly the payments of the
retention window and the top-up grants they bought (one pair per top-up), so those are rows,
not dicts (state_rows.py). Invoice lines drop the fields their invoice already has; top-up
requests are one status letter each; the open period's per-grant credits name grants by their
sequence number. Old states (no version) are read as they were written, and what they lack is
inferred here (``infer_*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from meterline.billing.credits import Grant, Wallet
from meterline.billing.fx import FxQuote
from meterline.billing.invoice import Invoice, InvoiceLine
from meterline.billing.money import opt_decimal, opt_str, to_decimal
from meterline.billing.payments import PaymentRecord
from meterline.billing.state_rows import request_number
from meterline.billing.topup import AutoTopup, RequestStatus
from meterline.billing.usage import MeterPeriod

STATE_VERSION = 2
_REQUEST_CODES: dict[str, str] = {"pending": "p", "succeeded": "s", "failed": "f", "canceled": "c"}
_REQUEST_NAMES = {v: k for k, v in _REQUEST_CODES.items()}
_NO_REQUEST = "-"


# -- invoices ---------------------------------------------------------------------------------


def encode_invoice(inv: Invoice) -> dict[str, Any]:
    """Lines without the fields their invoice has (the full form when a line differs)."""
    if not all(
        (x.invoice_id, x.customer_id, x.period_start, x.period_end, x.line_no)
        == (inv.invoice_id, inv.customer_id, inv.period_start, inv.period_end, i)
        for i, x in enumerate(inv.lines, start=1)
    ):
        return {**inv.to_dict(), "past_due": inv.past_due}
    out = {
        "id": inv.invoice_id,
        "c": inv.customer_id,
        "cur": inv.currency,
        "k": inv.kind,
        "p": [inv.period_start, inv.period_end, inv.issued_at],
        "due": str(inv.amount_due),
        "paid": str(inv.amount_paid),
        "l": [
            [x.kind, x.meter, opt_str(x.quantity), opt_str(x.unit_price), str(x.amount)]
            for x in inv.lines
        ],
    }
    # Newer fields only when set: a state without them is what older code wrote.
    if inv.past_due:
        out["pd"] = 1
    if inv.payment_method_id is not None or inv.payment_method_name is not None:
        out["pm"] = [inv.payment_method_id, inv.payment_method_name]
    if inv.fx is not None:  # invoiced in the customer's currency (fx.py)
        out["fx"] = [inv.fx.base, str(inv.fx.rate), inv.fx.effective_from]
    return out


def decode_invoice(data: Mapping[str, Any]) -> Invoice:
    if "l" not in data:
        return Invoice.from_dict(data)
    start, end, issued = (int(t) for t in data["p"])
    lines = tuple(
        InvoiceLine(
            data["id"],
            data["c"],
            start,
            end,
            i,
            kind,
            meter,
            opt_decimal(quantity),
            opt_decimal(price),
            to_decimal(amount),
        )
        for i, (kind, meter, quantity, price, amount) in enumerate(data["l"], start=1)
    )
    return Invoice(
        data["id"],
        data["c"],
        data["cur"],
        data["k"],
        start,
        end,
        issued,
        lines,
        to_decimal(data["due"]),
        to_decimal(data["paid"]),
        bool(data.get("pd")),
        *data.get("pm", (None, None)),
        _decode_fx(data.get("fx"), data["cur"]),
    )


def _decode_fx(raw: list[Any] | None, currency: str) -> FxQuote | None:
    if raw is None:
        return None
    base, rate, effective_from = raw
    return FxQuote(base, currency, to_decimal(rate), int(effective_from))


# -- top-up requests --------------------------------------------------------------------------


def encode_topup(topup: AutoTopup) -> dict[str, Any]:
    """Requests as ``[first n, one status letter per n from there]`` ("-": forgotten)."""
    out = topup.to_dict()
    prefix = f"topup:{topup.customer_id}:"
    numbers = {request_number(prefix, r): s for r, s in topup.requests.items()}
    if numbers and None not in numbers:
        known = cast(dict[int, RequestStatus], numbers)
        first = min(known)
        if max(known) - first < 4 * len(known) + 16:  # dense, as kept requests are
            out["requests"] = [
                first,
                "".join(
                    _REQUEST_CODES[known[k]] if k in known else _NO_REQUEST
                    for k in range(first, max(known) + 1)
                ),
            ]
    return out


def decode_topup(data: Mapping[str, Any]) -> AutoTopup:
    requests = data.get("requests", {})
    if isinstance(requests, list):
        first, codes = requests
        data = {
            **data,
            "requests": {
                f"topup:{data['customer_id']}:{first + i}": _REQUEST_NAMES[c]
                for i, c in enumerate(codes)
                if c != _NO_REQUEST
            },
        }
    return AutoTopup.from_dict(data)


# -- the open period's usage ------------------------------------------------------------------


def encode_usage(u: MeterPeriod, wallet: Wallet) -> dict[str, Any]:
    """``by_grant`` as ``[[grant created_seq, amount], ...]`` (a grant it names is always kept)."""
    out = u.to_dict()
    grants = wallet.grants
    if all(gid in grants for gid in u.by_grant):
        out["by_grant"] = [[grants[gid].created_seq, str(v)] for gid, v in u.by_grant.items()]
    return out


def decode_usage(data: Mapping[str, Any], ids_by_seq: Mapping[int, str]) -> MeterPeriod:
    by_grant = data.get("by_grant", {})
    if isinstance(by_grant, list):
        data = {**data, "by_grant": {ids_by_seq[int(s)]: v for s, v in by_grant}}
    return MeterPeriod.from_dict(data)


# -- states written before retention (no "v") ------------------------------------------------


def infer_last_at(rec: PaymentRecord, wallet: Wallet, clock: int) -> int:
    """When the last outcome of an old record was applied. A top-up whose last new status was
    its success was applied when its grant was made (grants take the clock as effective time);
    for anything else the time is unknown and the record gets a whole window from now, so an
    upgrade never drops what a refund may still need."""
    g = None if rec.grant_id is None else wallet.grants.get(rec.grant_id)
    if rec.pays_kind == "topup" and g is not None and rec.statuses[-1:] == ["succeeded"]:
        return g.effective_at
    return clock


def infer_granted_at(g: Grant, customer_id: str) -> int | None:
    """Plan and top-up grants are made at their effective time; a commanded grant may not be."""
    if g.grant_id.startswith(("topup:", f"plan:{customer_id}:")):
        return g.effective_at
    return None
