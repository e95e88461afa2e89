"""``GET /``: the live dashboard page (``meterline/web/dashboard.html``), which reads the JSON
endpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
from faust.web import Request, Response

from meterline.api.context import ApiContext, ApiView

__all__ = ["DASHBOARD", "Dashboard", "register"]

DASHBOARD = Path(__file__).resolve().parent.parent / "web" / "dashboard.html"


class Dashboard(ApiView):
    async def get(self, request: Request) -> Response:
        # Read per request (a few kB) so an edited page shows without a worker restart.
        page = await asyncio.to_thread(DASHBOARD.read_text, encoding="utf-8")
        return self.html(page, headers={"Cache-Control": "no-store"})


def register(app: faust.App, ctx: ApiContext) -> None:
    # Faust mounts its own {"status": "OK"} page at "/": the runtime takes it away first.
    ctx.runtime.free_web_root()
    app.page("/")(Dashboard.bound(ctx))
