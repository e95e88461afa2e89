"""Who is calling, which key goes upstream, and errors in the provider's own shape.

A customer is identified, in this order, by:

1. ``X-Meterline-Key: <meterline key>``: the client's own ``Authorization`` / ``x-api-key``
   is then its provider key and is passed through, unless a provider key is configured.
2. The SDK's api key being a Meterline key (``Authorization: Bearer`` for OpenAI,
   ``x-api-key`` or ``Authorization: Bearer`` for Anthropic): the key is consumed here and the
   configured provider key goes upstream (none configured: 401, there is nothing to send).
3. ``X-Meterline-Customer: <customer id>``, only when ``proxy_trust_customer_header`` is on
   and only from a loopback peer (a sidecar or an internal caller on the same host); the
   client's own key is passed through unless one is configured.

Anything else is 401. Meterline headers never go upstream.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from multidict import CIMultiDict

# Hop-by-hop and per-connection headers (RFC 9110 §7.6.1) plus what the proxy sets itself.
_DROP_REQUEST = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",  # the proxy must read the usage: aiohttp negotiates and decodes
        "x-meterline-key",
        "x-meterline-customer",
    }
)
_DROP_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",  # the body is forwarded decoded
        "trailer",
        "upgrade",
        "server",
        "date",
    }
)


@dataclass(frozen=True, slots=True)
class Caller:
    customer: str
    headers: CIMultiDict[str]  # what goes upstream
    via: str  # key | header


@dataclass(slots=True)
class ProxyError(Exception):
    status: int
    kind: str  # OpenAI error type / Anthropic error type
    message: str
    extra: dict[str, str] = field(default_factory=dict)

    def body(self, provider: str) -> bytes:
        if provider == "anthropic":
            doc: dict = {"type": "error", "error": {"type": self.kind, "message": self.message}}
        else:
            doc = {
                "error": {
                    "message": self.message,
                    "type": self.kind,
                    "param": None,
                    "code": self.extra.get("code", self.kind),
                }
            }
        return json.dumps(doc).encode()


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _client_key(headers: Mapping[str, str], provider: str) -> str | None:
    if provider == "anthropic":
        return headers.get("x-api-key") or _bearer(headers)
    return _bearer(headers)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class CallerPolicy:
    keys: Mapping[str, str]  # Meterline key → customer
    trust_customer_header: bool
    provider_keys: Mapping[str, str]  # provider → configured upstream key ("" = none)

    def identify(self, headers: Mapping[str, str], peer: str | None, provider: str) -> Caller:
        upstream: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in headers.items() if k.lower() not in _DROP_REQUEST
        )
        explicit = headers.get("x-meterline-key")
        sdk_key = _client_key(headers, provider)
        if explicit is not None:
            customer = self.keys.get(explicit.strip())
            if customer is None:
                raise ProxyError(401, _auth_kind(provider), "unknown X-Meterline-Key")
            return Caller(customer, self._auth(upstream, provider, consumed=False), "key")
        if sdk_key is not None and sdk_key in self.keys:
            if not self.provider_keys.get(provider):
                raise ProxyError(
                    401,
                    _auth_kind(provider),
                    f"no {provider} key is configured on the proxy: send your provider key as "
                    "the api key and your Meterline key in X-Meterline-Key",
                )
            return Caller(self.keys[sdk_key], self._auth(upstream, provider, consumed=True), "key")
        named = headers.get("x-meterline-customer", "").strip()
        if named and self.trust_customer_header and is_loopback(peer):
            return Caller(named, self._auth(upstream, provider, consumed=False), "header")
        raise ProxyError(
            401,
            _auth_kind(provider),
            "no Meterline customer: use a Meterline key as the api key (or X-Meterline-Key)",
        )

    def _auth(self, headers: CIMultiDict[str], provider: str, consumed: bool) -> CIMultiDict[str]:
        configured = self.provider_keys.get(provider)
        if consumed or configured:
            headers.popall("authorization", None)
            headers.popall("x-api-key", None)
        if configured:
            if provider == "anthropic":
                headers["x-api-key"] = configured
            else:
                headers["Authorization"] = f"Bearer {configured}"
        return headers


def _auth_kind(provider: str) -> str:
    return "authentication_error" if provider == "anthropic" else "invalid_api_key"


def response_headers(upstream: Mapping[str, str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in upstream.items() if k.lower() not in _DROP_RESPONSE)
