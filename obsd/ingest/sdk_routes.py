"""GET /sdk.js, /sdk.mjs and the /demo shop: the browser SDK served by obsd itself."""

from __future__ import annotations

import gzip
import hashlib
import html
from pathlib import Path

from aiohttp import web

from obsd.settings import Settings

STATIC = Path(__file__).resolve().parent.parent / "static"
SHORT_CACHE = "public, max-age=300"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
DEMO_PROJECT = "demo"


class Asset:
    """A shipped file held in memory with its content hash, ETag and a gzipped copy."""

    def __init__(self, path: Path, content_type: str = "application/javascript") -> None:
        self.name = path.name
        self.body = path.read_bytes()
        self.gzipped = gzip.compress(self.body, compresslevel=9, mtime=0)
        self.content_type = content_type
        self.hash = hashlib.sha256(self.body).hexdigest()[:16]
        self.etag = f'"{self.hash}"'

    @property
    def versioned_path(self) -> str:
        """The URL to reference in pages: cacheable for a year, since the hash changes with the file."""
        return f"/{self.name}?v={self.hash}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve the file; immutable only when the requested version is this content's hash."""
        headers = {
            "Cache-Control": IMMUTABLE_CACHE if request.query.get("v") == self.hash else SHORT_CACHE,
            "ETag": self.etag,
            "Vary": "Accept-Encoding",
            # Lets sites load the SDK with crossorigin="anonymous" (full error details); it is public.
            "Access-Control-Allow-Origin": "*",
        }
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        body = self.body
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = self.gzipped
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers, content_type=self.content_type)


class DemoPage:
    """The demo shop, with the write key of the project whose id is `demo` filled in."""

    def __init__(self, settings: Settings, sdk: Asset) -> None:
        template = (STATIC / "demo.html").read_text(encoding="utf-8")
        project = next((p for p in settings.projects if p.id == DEMO_PROJECT), None)
        self.body: bytes | None = None
        if project is not None:
            page = template.replace("{{OBSD_SDK_SRC}}", html.escape(sdk.versioned_path, quote=True))
            self.body = page.replace("{{OBSD_API_KEY}}", html.escape(project.write_key, quote=True)).encode()

    async def handle(self, request: web.Request) -> web.Response:
        """Serve the page for /demo and every client-side route under it."""
        if self.body is None:
            raise web.HTTPNotFound(reason=f"no project with id '{DEMO_PROJECT}' is configured; add one to obsd.toml")
        return web.Response(body=self.body, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})


def add_sdk_routes(app: web.Application, settings: Settings) -> None:
    """Register GET /sdk.js, /sdk.mjs, /demo and /demo/{route} on `app`."""
    sdk = Asset(STATIC / "sdk.js")
    module = Asset(STATIC / "sdk.mjs")
    demo = DemoPage(settings, sdk)
    app.router.add_get("/sdk.js", sdk.handle)
    app.router.add_get("/sdk.mjs", module.handle)
    app.router.add_get("/demo", demo.handle)
    app.router.add_get("/demo/{route:.*}", demo.handle)
