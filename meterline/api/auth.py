"""Who may call which endpoint.

Every view declares an :class:`Access`; :meth:`ApiAuth.check` answers a request with None
(go ahead) or a :class:`Denial` (401 or 403 with a JSON error). Keys come as
``Authorization: Bearer <key>`` or ``X-Api-Key: <key>`` and are looked up by digest
(meterline/api/keys.py).

With no keys configured the API is open, as it has always been for local development; that
is allowed only while the web server listens on loopback. Bound anywhere else the worker
refuses to start without keys (:func:`load_auth`), so an exposed API is never an open one.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meterline.api.keys import ApiKey, KeyFileError, KeyRing

log = logging.getLogger(__name__)

__all__ = [
    "ROUTE_ACCESS",
    "Access",
    "ApiAuth",
    "ApiKeysRequired",
    "Denial",
    "access_for",
    "is_loopback",
    "load_auth",
    "presented_key",
]


class Access(enum.Enum):
    OPEN = "open"  # /health, /openapi.json, the dashboard page (it asks for a key itself)
    METRICS = "metrics"  # open, or admin only with METERLINE_API_METRICS_REQUIRE_KEY
    ADMIN = "admin"  # /sql, /customers, /debug/consumer
    CUSTOMER = "customer"  # /{resource}/{customer}: admin, or a key scoped to that customer


# The policy of every route, in one place (a route missing here: admin, or CUSTOMER when its
# path names {customer}). The dashboard page and its static assets are open: a browser loads
# them without a key, and the page then sends the key it asks for with every data request.
ROUTE_ACCESS: dict[str, Access] = {
    "/": Access.OPEN,
    "/health": Access.OPEN,
    "/openapi.json": Access.OPEN,
    "/metrics": Access.METRICS,
    "/sql": Access.ADMIN,
    "/customers": Access.ADMIN,
    "/debug/consumer": Access.ADMIN,
}
_OPEN_PREFIXES = ("/static/", "/assets/")


def access_for(path: str) -> Access:
    if path in ROUTE_ACCESS:
        return ROUTE_ACCESS[path]
    if path.startswith(_OPEN_PREFIXES):
        return Access.OPEN
    return Access.CUSTOMER if "{customer}" in path else Access.ADMIN


class ApiKeysRequired(RuntimeError):
    """The API would listen beyond loopback with no key configured."""


@dataclass(frozen=True)
class Denial:
    status: int
    error: str

    @property
    def headers(self) -> dict[str, str]:
        # RFC 6750: a 401 names the scheme the client should use.
        return {"WWW-Authenticate": 'Bearer realm="meterline"'} if self.status == 401 else {}


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; an empty host or 0.0.0.0 / :: listen everywhere."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name resolves to who knows what: treat it as exposed


def presented_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("Authorization", "")
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = headers.get("X-Api-Key", "").strip()
    return api_key or None


@dataclass(frozen=True)
class ApiAuth:
    keys: KeyRing = field(default_factory=lambda: KeyRing({}))
    metrics_require_key: bool = False
    # POST /sql?mode=write (load_auth grants it to a keyless loopback API only).
    sql_writes: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def check(
        self, access: Access, headers: Mapping[str, str], customer: str | None
    ) -> Denial | None:
        if access is Access.OPEN or not self.enabled:
            return None
        if access is Access.METRICS and not self.metrics_require_key:
            return None
        presented = presented_key(headers)
        if presented is None:
            return Denial(
                401, "API key required: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'"
            )
        key = self.keys.lookup(presented)
        if key is None:
            return Denial(401, "unknown API key")
        return self._scope(access, key, customer)

    @staticmethod
    def _scope(access: Access, key: ApiKey, customer: str | None) -> Denial | None:
        if key.is_admin:
            return None
        if access is Access.CUSTOMER and customer is not None and key.may_read(customer):
            return None
        if access is Access.CUSTOMER:
            return Denial(403, f"this key may read customer {key.customer!r} only")
        return Denial(403, "this endpoint needs an admin key; this key is scoped to one customer")


def load_auth(settings: Any) -> ApiAuth:
    """The API's keys from settings (``api_keys``, ``api_keys_file``); raises
    :class:`ApiKeysRequired` when there are none and ``web_host`` is not loopback.

    Read with getattr defaults so that a stand-in settings object (tests) that only has what
    the rest of the API needs is a loopback, keyless API."""
    inline = str(getattr(settings, "api_keys", "") or "")
    file = getattr(settings, "api_keys_file", None)
    try:
        keys = KeyRing.load(inline, Path(file) if file else None)
    except KeyFileError as exc:
        raise ApiKeysRequired(f"API keys: {exc}") from exc
    host = str(getattr(settings, "web_host", "127.0.0.1"))
    if not keys and not is_loopback(host):
        raise ApiKeysRequired(
            f"the HTTP API would listen on {host!r} (beyond loopback) with no API key: set "
            "METERLINE_API_KEYS or METERLINE_API_KEYS_FILE (create one with "
            "`meterline keys create --admin`), or bind METERLINE_WEB_HOST=127.0.0.1"
        )
    writes = bool(getattr(settings, "sql_allow_writes", False))
    if writes and keys:
        # Never a way round the keys: with keys, /sql is read-only whatever this says.
        log.warning("METERLINE_SQL_ALLOW_WRITES ignored: the API has keys")
        writes = False
    return ApiAuth(keys, bool(getattr(settings, "api_metrics_require_key", False)), writes)
