"""How keys are read and scoped, and Helicone's signature."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from meterline.ingest.auth import Denied, Keys, helicone_signature_ok, is_loopback, presented_key


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"Authorization": "Bearer sk_1"}, "sk_1"),
        ({"Authorization": "bearer  sk_1 "}, "sk_1"),
        # Stripe's older clients: Basic auth, the key as user name and no password.
        ({"Authorization": "Basic " + base64.b64encode(b"sk_2:").decode()}, "sk_2"),
        ({"Authorization": "Basic !!!"}, None),
        ({"X-Api-Key": "sk_3"}, "sk_3"),
        ({}, None),
    ],
)
def test_presented_key(headers: dict, key: str | None) -> None:
    assert presented_key(headers) == key


def test_scopes() -> None:
    keys = Keys({"a": "*", "b": "acme"})
    assert keys.scope_of({"X-Api-Key": "a"}) == "*"
    assert keys.scope_of({"X-Api-Key": "b"}) == "acme"
    with pytest.raises(Denied) as denied:
        keys.scope_of({"X-Api-Key": "c"})
    assert denied.value.status == 401
    Keys.check_customers("acme", ["acme", "acme"])
    with pytest.raises(Denied, match="only for customer 'acme', not 'globex'") as denied:
        Keys.check_customers("acme", ["acme", "globex"])
    assert denied.value.status == 403
    assert Keys({}).scope_of({}) == "*"


def test_helicone_signature() -> None:
    body = b'{"request_id":"r"}'
    good = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert helicone_signature_ok("k", body, good)
    assert helicone_signature_ok("k", body, good.upper())
    assert not helicone_signature_ok("k", body + b" ", good)
    assert not helicone_signature_ok("k", body, None)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("10.0.0.5", False), ("example.com", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
