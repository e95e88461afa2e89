"""The checked-in OpenAPI 3.1 description (meterline/api/openapi.json): it describes every
route the worker mounts, is what /openapi.json serves, is a valid 3.1 document, and says
the same about keys as the route policy (meterline/api/auth.py)."""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from aiohttp.test_utils import TestClient

from meterline.api.auth import Access, access_for
from meterline.api.openapi import OPENAPI_FILE, document
from tests.unit.api.standin import call, runtime, web_app

METHODS = {"get", "post", "put", "patch", "delete"}


def mounted_routes() -> set[tuple[str, str]]:
    app = runtime().app
    return {
        (r.method.lower(), r.resource.canonical)
        for r in web_app(app).router.routes()
        if r.method != "HEAD" and r.resource is not None
    }


def described_routes() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_described_and_nothing_else() -> None:
    mounted, described = mounted_routes(), described_routes()
    assert mounted - described == set(), "routes missing from openapi.json"
    assert described - mounted == set(), "openapi.json describes routes that do not exist"


def test_served_document_is_the_checked_in_file() -> None:
    async def scenario(client: TestClient) -> tuple[int, str, bytes]:
        response = await client.get("/openapi.json")
        return response.status, response.content_type, await response.read()

    status, content_type, body = call(runtime(), scenario)
    assert status == 200 and content_type == "application/json"
    assert body == OPENAPI_FILE.read_bytes()


def test_a_valid_openapi_31_document() -> None:
    doc = json.loads(OPENAPI_FILE.read_text())
    assert doc["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(doc)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) == len(described_routes())
    ids = [o.definition.raw["operationId"] for o in operations]
    assert len(set(ids)) == len(ids)


def _responses(op: dict[str, Any]) -> set[str]:
    return set(op["responses"])


def test_security_matches_the_route_policy() -> None:
    for path, item in document()["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            access = access_for(path)
            if access is Access.OPEN:
                assert op["security"] == [], path
            else:
                assert {"bearerAuth": []} in op["security"], path
                assert {"401", "403"} <= _responses(op), path
            if access is Access.METRICS:
                assert {} in op["security"], path  # open by default


def test_every_error_response_has_the_error_shape() -> None:
    doc = document()
    shared = doc["components"]["responses"]
    for name, response in shared.items():
        schema = response["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/Error"), name
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    ref = response.get("$ref", "")
                    if ref.startswith("#/components/responses/"):
                        response = shared[ref.rsplit("/", 1)[1]]
                    body = json.dumps(response["content"]["application/json"])
                    assert "Error" in body, (path, code)  # Error or SqlError
