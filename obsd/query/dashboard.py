"""GET /dashboard: a small single-page dashboard, served from the package, that reads /v1/stats/*."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from aiohttp import web

from obsd.httperrors import HttpError

ASSETS = Path(__file__).resolve().parent.parent / "static" / "dashboard"
TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# Everything comes from obsd itself; the page holds the admin token, so nothing else may run or frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class DashboardFile:
    """One dashboard file held in memory, with a content-hash ETag and a gzipped copy."""

    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        self.gzipped = gzip.compress(self.body, compresslevel=9, mtime=0)
        self.content_type = TYPES.get(path.suffix, "application/octet-stream")
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'

    def response(self, request: web.Request) -> web.Response:
        """The file, or 304 when the browser's copy is current."""
        headers = {"ETag": self.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding", **SECURITY_HEADERS}
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=self.gzipped, headers=headers, content_type=self.content_type)
        return web.Response(body=self.body, headers=headers, content_type=self.content_type)


class Dashboard:
    """The dashboard's page and assets; only files shipped in static/dashboard are ever served."""

    def __init__(self, directory: Path = ASSETS) -> None:
        self.files = {p.name: DashboardFile(p) for p in sorted(directory.iterdir())
                      if p.is_file() and p.suffix in TYPES}

    def routes(self, app: web.Application) -> None:
        """Register GET /dashboard and its assets."""
        app.router.add_get("/dashboard", self.page)
        app.router.add_get("/dashboard/{name}", self.asset)

    async def page(self, request: web.Request) -> web.Response:
        """The dashboard page itself (public: it holds no data; the data needs the admin token)."""
        return self.files["index.html"].response(request)

    async def asset(self, request: web.Request) -> web.Response:
        """A script, stylesheet or icon of the dashboard."""
        f = self.files.get(request.match_info["name"])
        if f is None:
            raise HttpError(404, "not_found", "no such dashboard file")
        return f.response(request)
