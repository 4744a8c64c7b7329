"""The shipped SDK: it is the build of the sources, it is small, and obsd serves it (and the demo) correctly."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import re
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from obsd.httperrors import error_middleware
from obsd.ingest.sdk_routes import add_sdk_routes
from obsd.settings import ProjectSettings, Settings
from tests.harness import ROOT, WRITE_KEY, Daemon, http
from tests.needs import missing_node, need

SDK = ROOT / "sdk"
STATIC = ROOT / "obsd" / "static"
HARD_LIMIT = 10 * 1024
TARGET = 6 * 1024


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build sdk/src with the locked esbuild into a temp dir."""
    need(missing_node("esbuild"))
    out = tmp_path_factory.mktemp("sdk-build")
    run = subprocess.run(["node", "build.mjs", str(out)], cwd=SDK, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return out


@pytest.mark.parametrize("name", ["sdk.js", "sdk.mjs"])
def test_shipped_build_matches_the_sources(fresh_build: Path, name: str) -> None:
    """obsd/static holds exactly what the sources build to; rebuild with `make sdk` after changing sdk/src."""
    shipped = (STATIC / name).read_bytes()
    built = (fresh_build / name).read_bytes()
    assert shipped == built, f"obsd/static/{name} is stale: run `make sdk` (cd sdk && npm run build) and commit it"


def test_script_tag_build_is_small() -> None:
    """The IIFE users load, Web Vitals included, is at most 10 KiB gzipped."""
    size = len(gzip.compress((STATIC / "sdk.js").read_bytes(), compresslevel=9))
    print(f"\nsdk.js: {size} bytes gzipped (limit {HARD_LIMIT}, target {TARGET})")
    assert size <= HARD_LIMIT


# --- how obsd serves it ---------------------------------------------------------------------


def _hash(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:16]


def test_sdk_js_is_served_with_cache_headers(daemon: Daemon) -> None:
    """/sdk.js caches for minutes; /sdk.js?v=<hash> of this content forever; a stale ?v= is not immutable."""
    plain = http("GET", daemon.base + "/sdk.js")
    assert plain.status == 200
    assert plain.body == (STATIC / "sdk.js").read_bytes()
    assert plain.headers["Content-Type"].startswith("application/javascript")
    assert plain.headers["Cache-Control"] == "public, max-age=300"
    assert plain.headers["ETag"] == f'"{_hash("sdk.js")}"'

    versioned = http("GET", f"{daemon.base}/sdk.js?v={_hash('sdk.js')}")
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stale = http("GET", daemon.base + "/sdk.js?v=0000000000000000")
    assert stale.headers["Cache-Control"] == "public, max-age=300"


def test_sdk_js_revalidates_and_compresses(daemon: Daemon) -> None:
    """A matching If-None-Match gets 304; Accept-Encoding: gzip gets the gzipped file."""
    etag = f'"{_hash("sdk.js")}"'
    assert http("GET", daemon.base + "/sdk.js", headers={"If-None-Match": etag}).status == 304
    zipped = http("GET", daemon.base + "/sdk.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == (STATIC / "sdk.js").read_bytes()


def test_es_module_is_served(daemon: Daemon) -> None:
    """/sdk.mjs serves the ES module build, exporting Observability."""
    r = http("GET", daemon.base + "/sdk.mjs")
    assert r.status == 200
    assert r.body == (STATIC / "sdk.mjs").read_bytes()
    assert re.search(rb"export\s*\{[^}]*as Observability", r.body)


@pytest.mark.parametrize("path", ["/demo", "/demo/", "/demo/products", "/demo/cart", "/demo/checkout"])
def test_demo_routes_serve_the_shop_with_the_demo_key(daemon: Daemon, path: str) -> None:
    """Every client-side route of the demo serves the page, loading the versioned SDK with the demo project's key."""
    r = http("GET", daemon.base + path)
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/html")
    page = r.body.decode()
    assert f'<script src="/sdk.js?v={_hash("sdk.js")}" data-api-key="{WRITE_KEY}" data-endpoint="/v1/events"' in page
    assert "{{" not in page


def _serve(settings: Settings, check: Callable[[str], Awaitable[Any]]) -> Any:
    """Run add_sdk_routes on a real socket (behind obsd's error middleware) and call `check(base_url)`."""

    async def main() -> Any:
        app = web.Application(middlewares=[error_middleware])
        add_sdk_routes(app, settings)
        async with TestServer(app, host="127.0.0.1") as server:
            return await check(str(server.make_url("")).rstrip("/"))

    return asyncio.run(main())


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


def test_demo_without_a_demo_project_says_how_to_add_one() -> None:
    """No project with id 'demo': /demo answers 404 in the JSON error shape with the fix."""
    settings = Settings(projects=(ProjectSettings(id="shop", write_key="k"),))
    status, body = _serve(settings, lambda base: _get(base + "/demo/cart"))
    assert status == 404
    assert '"error":"not_found"' in body
    assert "no project with id 'demo' is configured; add one to obsd.toml" in body


def test_demo_key_is_escaped() -> None:
    """A write key with HTML metacharacters cannot break out of the attribute."""
    key = 'k"><script>alert(1)</script>'
    settings = Settings(projects=(ProjectSettings(id="demo", write_key=key),))
    status, body = _serve(settings, lambda base: _get(base + "/demo"))
    assert status == 200
    assert "<script>alert(1)" not in body
    assert 'data-api-key="k&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in body


def test_every_sdk_option_is_documented() -> None:
    """Each field of the SDK's Options appears in docs/sdk.md with its data attribute."""
    source = (SDK / "src" / "index.ts").read_text()
    block = source[source.index("export interface Options {"):]
    block = block[: block.index("\n}")]
    options = re.findall(r"^\s+(\w+)\??:", block, re.M)
    assert len(options) >= 15
    docs = (ROOT / "docs" / "sdk.md").read_text()
    for name in options:
        attribute = "data-" + re.sub(r"[A-Z]", lambda m: "-" + m.group().lower(), name)
        assert f"| `{name}` | `{attribute}` |" in docs, f"option {name} ({attribute}) is not in docs/sdk.md"
