"""Who may publish: ingest keys, and Helicone's webhook signature.

A key is presented as ``Authorization: Bearer <key>`` (what OpenMeter and Stripe clients
send), as Basic auth with the key as user name (older Stripe clients), or as ``X-Api-Key``.
``{"<key>": "*"}`` may publish for any customer; ``{"<key>": "acme"}`` only for acme, so a
key handed to one customer's backend cannot bill another customer. Keys are compared in
constant time. With no keys configured the routes are open, which ``IngestConfig`` allows
only on a loopback address.

Helicone signs each webhook body with HMAC-SHA256 (hex, header ``Helicone-Signature``) over
the exact JSON text it sends, so the raw body is verified before it is parsed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ANY_CUSTOMER = "*"


class Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def presented_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("Authorization", "")
    scheme, _, credentials = auth.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and credentials.strip():
        return credentials.strip()
    if scheme == "basic" and credentials.strip():
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user = decoded.partition(":")[0]
        return user or None
    key = headers.get("X-Api-Key", "").strip()
    return key or None


@dataclass(frozen=True, slots=True)
class Keys:
    """The configured keys; empty = no key required (loopback only)."""

    scopes: Mapping[str, str] = field(default_factory=dict)

    @property
    def required(self) -> bool:
        return bool(self.scopes)

    def scope_of(self, headers: Mapping[str, str]) -> str:
        """The presented key's scope (a customer id or ``*``); Denied(401) when a key is
        required and missing or unknown."""
        if not self.scopes:
            return ANY_CUSTOMER
        key = presented_key(headers)
        if key is None:
            raise Denied(401, "an ingest key is required: send 'Authorization: Bearer <key>'")
        found: str | None = None
        for known, scope in self.scopes.items():
            # Every key is compared, so the time taken does not tell which prefix matched.
            if hmac.compare_digest(known.encode(), key.encode()):
                found = scope
        if found is None:
            raise Denied(401, "invalid ingest key")
        return found

    @staticmethod
    def check_customers(scope: str, customers: Iterable[str]) -> None:
        """Denied(403) when a customer-scoped key publishes for another customer."""
        if scope == ANY_CUSTOMER:
            return
        others = sorted({c for c in customers if c != scope})
        if others:
            shown = ", ".join(repr(c) for c in others[:5])
            raise Denied(403, f"this key may publish only for customer {scope!r}, not {shown}")


def helicone_signature_ok(secret: str, body: bytes, signature: str | None) -> bool:
    if not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())
