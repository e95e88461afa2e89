"""``GET /openapi.json``: the checked-in OpenAPI 3.1 description of this API (openapi.json
beside this module), served byte for byte so what clients download is what is reviewed.

tests/unit/api/test_openapi.py checks that every mounted route is described and that the
served document is the file; tests/integration/test_openapi_schemathesis.py runs
schemathesis from it against a real worker."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response

from meterline.api.context import ApiContext, ApiView

__all__ = ["OPENAPI_FILE", "OpenApi", "document", "register"]

OPENAPI_FILE = Path(__file__).resolve().with_name("openapi.json")


@lru_cache(maxsize=1)
def _raw() -> bytes:
    # Read once: the document changes only with the code it describes.
    return OPENAPI_FILE.read_bytes()


def document() -> dict[str, Any]:
    return json.loads(_raw())


class OpenApi(ApiView):
    async def get(self, request: Request) -> Response:
        return self.bytes(_raw(), content_type="application/json")


def register(app: faust.App, ctx: ApiContext) -> None:
    app.page("/openapi.json")(OpenApi.bound(ctx))
