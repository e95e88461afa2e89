"""The invoice preview is the invoice the open period would get if it closed now, and looking
at it changes nothing."""

from __future__ import annotations

from hypothesis import given, settings

from .accounts import apply, histories, new_account
from .helpers import through_json


@settings(max_examples=60, deadline=None)
@given(history=histories)
def test_preview_matches_the_invoice_issued_at_period_end(history: list[tuple]) -> None:
    account = new_account()
    for n, op in enumerate(history):
        apply(account, op, n)
    before = through_json(account).to_dict()
    preview = account.preview_invoice()
    assert account.to_dict() == before
    assert preview is not None and account.period is not None
    issued = [i for i in account.tick(account.period.end).invoices if i.kind == "period"]
    assert issued and issued[0].lines == preview.lines
    assert issued[0].amount_due == preview.amount_due
