"""``GET /``: the live dashboard page (``meterline/web/dashboard.html``), and
``GET /static/{path}``: its scripts, styles and the vendored uPlot (``meterline/web/``).

Neither holds data: the page asks the user for an API key and sends it with every request to
the JSON endpoints, so both stay readable without a key (a browser cannot attach a Bearer
header to the page load or to ``<script src>``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
from faust.web import Request, Response

from meterline.api.context import ApiContext, ApiView

__all__ = [
    "DASHBOARD",
    "STATIC_TYPES",
    "WEB_DIR",
    "Dashboard",
    "Static",
    "register",
    "static_files",
]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DASHBOARD = WEB_DIR / "dashboard.html"

# Served with an explicit type (and nosniff): a browser refuses a script or stylesheet whose
# type is wrong, and guessing from bytes is what nosniff forbids.
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE
}


def static_files(root: Path = WEB_DIR) -> dict[str, Path]:
    """URL path (relative, with /) -> file, for every servable file under ``root``.

    A fixed map built from the package's own files: the request path is only ever a key into
    it, never joined onto the file system, so ``..`` or absolute paths cannot reach anything."""
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in STATIC_TYPES and (p.suffix or p.name == "LICENSE")
    }


class Dashboard(ApiView):
    async def get(self, request: Request) -> Response:
        # Read per request (a few kB) so an edited page shows without a worker restart.
        page = await asyncio.to_thread(DASHBOARD.read_text, encoding="utf-8")
        return self.html(page, headers={"Cache-Control": "no-store"})


class Static(ApiView):
    async def get(self, request: Request, path: str) -> Response:
        # Listed per request too, for the same reason as the page (an added file shows).
        files = await asyncio.to_thread(static_files)
        file = files.get(path)
        if file is None:
            return self.json({"error": f"no such dashboard file: {path!r}"}, status=404)
        body = await asyncio.to_thread(file.read_bytes)
        headers = {
            # As a header: aiohttp's content_type argument refuses one with a charset.
            "Content-Type": STATIC_TYPES[file.suffix],
            # Revalidated on every load (cheap, a few files): an upgraded worker never runs
            # an old script against a new API.
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        return self.bytes(body, headers=headers)


def register(app: faust.App, ctx: ApiContext) -> None:
    # Faust mounts its own {"status": "OK"} page at "/": the runtime takes it away first.
    ctx.runtime.free_web_root()
    app.page("/")(Dashboard.bound(ctx))
    # {path:.+} lets the path hold slashes (vendor/uplot/uPlot.iife.min.js).
    app.page("/static/{path:.+}")(Static.bound(ctx))
