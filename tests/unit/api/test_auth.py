"""Who may call what: loopback rules, key headers, scopes, and the check every view runs
before its handler (on the API mounted with a stand-in runtime)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from meterline.api.auth import (
    ROUTE_ACCESS,
    Access,
    ApiKeysRequired,
    access_for,
    is_loopback,
    load_auth,
    presented_key,
)
from meterline.api.keys import entry_line, new_key
from tests.unit.api.standin import Settings, call, runtime

ADMIN, ACME = new_key(), new_key()
KEYS = f"{entry_line(ADMIN, None)},{entry_line(ACME, 'acme')}"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("worker.internal", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_keys_are_read_from_bearer_or_x_api_key() -> None:
    assert presented_key({"Authorization": "Bearer abc"}) == "abc"
    assert presented_key({"Authorization": "bearer  abc "}) == "abc"
    assert presented_key({"X-Api-Key": "xyz"}) == "xyz"
    assert presented_key({"Authorization": "Basic Zm9vOmJhcg=="}) is None
    assert presented_key({"Authorization": "Bearer "}) is None
    assert presented_key({}) is None


def test_beyond_loopback_needs_keys() -> None:
    for host in ("0.0.0.0", "::", "10.1.2.3"):
        with pytest.raises(ApiKeysRequired, match="beyond loopback"):
            load_auth(Settings(web_host=host))
    assert load_auth(Settings(web_host="0.0.0.0", api_keys=KEYS)).enabled
    open_auth = load_auth(Settings())
    assert not open_auth.enabled and not open_auth.sql_writes
    # A malformed entry stops the worker too, rather than leaving it open.
    with pytest.raises(ApiKeysRequired, match="API keys"):
        load_auth(Settings(api_keys="not-a-digest admin"))


def test_sql_writes_only_for_a_keyless_loopback_api() -> None:
    assert load_auth(Settings(sql_allow_writes=True)).sql_writes
    assert not load_auth(Settings(sql_allow_writes=True, api_keys=KEYS)).sql_writes
    with pytest.raises(ApiKeysRequired):
        load_auth(Settings(sql_allow_writes=True, web_host="0.0.0.0"))


def test_route_policy() -> None:
    assert access_for("/usage/{customer}") is Access.CUSTOMER
    assert access_for("/invoices/{customer}/preview") is Access.CUSTOMER
    assert access_for("/static/{path}") is Access.OPEN
    assert access_for("/something/new") is Access.ADMIN  # the safe default
    assert ROUTE_ACCESS["/sql"] is Access.ADMIN and ROUTE_ACCESS["/health"] is Access.OPEN


def keyed(**extra: Any) -> Any:
    return runtime(Settings(api_keys=KEYS, **extra))


async def status(client: TestClient, path: str, key: str | None, header: str = "bearer") -> int:
    headers = {}
    if key is not None:
        headers = {"Authorization": f"Bearer {key}"} if header == "bearer" else {"X-Api-Key": key}
    response = await client.get(path, headers=headers)
    body = await response.json() if response.content_type == "application/json" else None
    if response.status in (401, 403):
        assert isinstance(body, dict) and body["error"]  # the one error shape
    if response.status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return response.status


def test_scopes_on_the_mounted_api() -> None:
    async def scenario(client: TestClient) -> None:
        # Open whatever the key.
        for path in ("/health", "/openapi.json", "/metrics", "/"):
            assert await status(client, path, None) == 200, path
        # No key / unknown key: 401 before any handler (these would need ClickHouse).
        for path in ("/usage/acme", "/customers", "/debug/consumer", "/balance/acme"):
            assert await status(client, path, None) == 401, path
            assert await status(client, path, new_key()) == 401, path
        # The customer key: its own customer only, never admin endpoints.
        assert await status(client, "/invoices/acme/preview", ACME) == 404  # passed the check
        assert await status(client, "/invoices/acme/preview", ACME, "x-api-key") == 404
        for path in ("/usage/globex", "/invoices/globex/preview", "/ledger/globex"):
            assert await status(client, path, ACME) == 403, path
        for path in ("/customers", "/debug/consumer"):
            assert await status(client, path, ACME) == 403, path
        sql = await client.post("/sql", data="SELECT 1", headers={"X-Api-Key": ACME})
        assert sql.status == 403
        # The admin key reaches everything.
        assert await status(client, "/invoices/globex/preview", ADMIN) == 404
        assert await status(client, "/debug/consumer", ADMIN) == 200
        # Keys configured: no writes through /sql, whatever the setting said.
        write = await client.post(
            "/sql", params={"mode": "write"}, data="DROP TABLE x", headers={"X-Api-Key": ADMIN}
        )
        assert write.status == 403 and (await write.json())["reason"] == "read_only"

    call(keyed(sql_allow_writes=True), scenario)


def test_metrics_behind_a_key_when_asked() -> None:
    async def scenario(client: TestClient) -> None:
        assert await status(client, "/metrics", None) == 401
        assert await status(client, "/metrics", ACME) == 403
        assert await status(client, "/metrics", ADMIN) == 200

    call(keyed(api_metrics_require_key=True), scenario)


def test_without_keys_on_loopback_everything_is_open_as_before() -> None:
    async def scenario(client: TestClient) -> None:
        assert await status(client, "/debug/consumer", None) == 200
        assert await status(client, "/invoices/anyone/preview", None) == 404
        # Even so, /sql stays read-only unless writes were asked for.
        write = await client.post("/sql", params={"mode": "write"}, data="DROP TABLE x")
        assert write.status == 403

    call(runtime(), scenario)


def test_errors_outside_the_views_are_json() -> None:
    async def scenario(client: TestClient) -> None:
        missing = await client.get("/no/such/route")
        assert missing.status == 404 and (await missing.json())["error"]
        wrong = await client.put("/health")
        assert wrong.status == 405 and (await wrong.json())["error"]
        assert "GET" in wrong.headers["Allow"]
        mode = await client.post("/sql", params={"mode": "drop"}, data="SELECT 1")
        assert mode.status == 400 and "mode" in (await mode.json())["error"]

    call(runtime(), scenario)
