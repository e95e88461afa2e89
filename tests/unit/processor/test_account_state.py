"""The account inside a stored AccountState is decoded only when used, and a state read but
never used is written back exactly as it was read."""

from __future__ import annotations

import json

from meterline.billing.account import Account
from meterline.processor.account_state import AccountState
from tests.unit.billing.accounts import new_account


def _stored() -> dict:
    account = Account("c-1")
    account.grant("g-1", "10.00", 1_767_225_600_000)
    state = AccountState("c-1", account, {"meterline.usage:0": 41}, version=3)
    return json.loads(json.dumps(state.to_dict()))


def test_a_state_read_but_not_used_is_written_back_unchanged() -> None:
    stored = _stored()
    state = AccountState.from_dict(stored)
    assert state._account is None  # nothing decoded yet
    assert not state.has_outbox
    assert state.to_dict() == stored


def test_the_account_is_decoded_on_first_use_and_kept() -> None:
    stored = _stored()
    state = AccountState.from_dict(stored)
    assert state.account.to_dict() == stored["a"]
    assert state.account is state.account
    assert state.to_dict() == _stored()


def test_the_stored_record_frames_the_account_apart_and_old_records_still_load() -> None:
    from streams.runtime.tables import _AccountStateCodec

    codec = _AccountStateCodec()
    stored = _stored()
    old_record = json.dumps(stored, separators=(",", ":")).encode()
    from_old = codec._loads(old_record)
    assert from_old.to_dict() == stored
    framed = codec._dumps(from_old)
    assert framed.count(b"\n") == 1
    state = codec._loads(framed)
    assert state._account is None and not state.has_outbox
    # Never used: written back byte for byte, without parsing the account.
    assert codec._dumps(state) == framed
    assert state.account.to_dict() == stored["a"]
    assert codec._loads(codec._dumps(state)).to_dict() == stored


def test_the_record_says_when_the_account_is_next_due_and_a_tick_before_it_decodes_nothing() -> (
    None
):
    from streams.runtime.tables import _AccountStateCodec

    codec = _AccountStateCodec()
    account = new_account()  # on a plan: its first timed change is ahead
    due = account.next_due()
    assert due is not None
    state = codec._loads(codec._dumps(AccountState("cust", account)))
    assert state.stored_due == due
    assert not state.due(due - 1) and state.due(due)
    assert state._account is None  # answered from the record
    # A record written before next_due was kept: ticked, to be safe.
    old = AccountState.from_dict({k: v for k, v in _stored().items() if k != "n"})
    assert old.due(0) and old._account is None


def test_a_restart_finds_outboxes_from_the_header_alone() -> None:
    from streams.runtime.tables import _AccountStateCodec, account_headers

    codec = _AccountStateCodec()
    quiet = codec._dumps(AccountState.from_dict(_stored()))
    busy_state = AccountState.from_dict(_stored())
    busy_state.balance_dirty = True
    old = json.dumps(_stored(), separators=(",", ":")).encode()
    headers = dict(account_headers({"q": quiet, "b": codec._dumps(busy_state), "o": old}))
    got = {c for c, h in headers.items() if AccountState.header_has_outbox(h)}
    assert got == {"b"}
    assert AccountState.from_dict(_stored()).has_outbox is False
