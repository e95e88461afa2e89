"""Errors outside the views answered as the views answer them: ``{"error": "..."}``.

aiohttp itself answers an unknown path (404), a wrong method (405) or a body too large (413)
with plain text, and an exception a view did not expect with a bare 500; clients (and the
OpenAPI description) get one error shape for every status instead."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

__all__ = ["install_json_errors", "json_errors"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(status: int, message: str, headers: Any = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"error": message}).encode(),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        # Keep Allow (405) and the like; the body and its type are replaced.
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        return _json(exc.status, exc.reason, headers)
    except Exception:
        # Logged with the path only: a query string or header may carry a key.
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return _json(500, "internal error")


_BODY_HEADERS = {"content-type", "content-length"}


def install_json_errors(web_app: web.Application) -> None:
    """Before the server starts (aiohttp freezes the middlewares then)."""
    if json_errors not in web_app.middlewares:
        web_app.middlewares.append(json_errors)
