"""The browser SDK end to end: real Chromium clicks through /demo of a real `obsd serve`; ClickHouse holds it all."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import ROOT, Daemon
from tests.needs import CHROMIUM, missing_browser, need

SDK = ROOT / "sdk"
SCRIPT = SDK / "test" / "e2e" / "demo.mjs"
ROUTES = {"/demo", "/demo/products", "/demo/cart", "/demo/checkout"}
VITALS = {"FCP", "TTFB", "LCP", "CLS", "INP"}


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, dict[str, Any]]]:
    """Start obsd, let Chromium shop on /demo and close the page; yield the daemon and the browser's report."""
    need(missing_browser())
    d = Daemon(tmp_path_factory.mktemp("sdk-e2e"), sections={"pipeline": {"batch_interval_ms": 50}})
    d.start()
    try:
        run = subprocess.run(["node", str(SCRIPT), d.base], cwd=SDK, capture_output=True, text=True, timeout=180,
                             env={**os.environ, "CHROMIUM": CHROMIUM})
        assert run.returncode == 0, f"the browser script failed:\n{run.stderr}\n{run.stdout}"
        yield d, json.loads(run.stdout)
    finally:
        d.stop()


def _rows(d: Daemon, deadline_s: float = 20.0) -> list[dict[str, Any]]:
    """The session's events once everything the page sent has arrived (CLS is reported last, on hide)."""
    sql = ("SELECT type, name, path, title, selector, tag, href, value, rating, error_message, error_stack, props, "
           "session_id, project_id FROM obsd.events WHERE project_id = 'demo' ORDER BY ts")
    deadline = time.monotonic() + deadline_s
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = d.query(sql)
        names = {r["name"] for r in rows if r["type"] == "web_vital"}
        if names >= VITALS and any(r["name"] == "purchase" for r in rows):
            return rows
        time.sleep(0.2)
    seen = sorted({(r["type"], r["name"]) for r in rows})
    raise AssertionError(f"events did not all arrive within {deadline_s} s of closing the page; have {seen}\n"
                         f"{d.log()[-3000:]}")


def test_every_captured_event_reaches_clickhouse_under_one_session(visit: tuple[Daemon, dict[str, Any]]) -> None:
    """Pageviews of each route, clicks, scroll, the error, the purchase and Web Vitals: one session, all stored."""
    d, report = visit
    assert report["sdkLoaded"], "window.obs was not started by the script tag"
    rows = _rows(d)
    assert {r["session_id"] for r in rows} == {report["sessionId"]}

    pageviews = [r["path"] for r in rows if r["type"] == "pageview"]
    assert set(pageviews) == ROUTES
    assert pageviews[:4] == ["/demo", "/demo/products", "/demo/cart", "/demo/checkout"]
    # Titles are the ones the demo's router set for each route, also after going back (popstate).
    titles = [r["title"] for r in rows if r["type"] == "pageview"]
    assert titles[1:] == ["Products — Lamp & Co.", "Cart — Lamp & Co.", "Checkout — Lamp & Co.",
                          "Cart — Lamp & Co.", "Products — Lamp & Co."]

    clicks = [r for r in rows if r["type"] == "click"]
    assert all(r["selector"] and r["tag"] for r in clicks)
    adds = [r for r in clicks if r["selector"].endswith("button.add-to-cart")]
    assert [json.loads(r["props"]) for r in adds] == [{"product": "lamp-arc"}, {"product": "lamp-desk"}]
    assert any(r["selector"] == "a#shop-now" and r["href"].endswith("/demo/products") for r in clicks)
    assert any(r["selector"] == "button#pay" for r in clicks)

    scrolls = [r for r in rows if r["type"] == "scroll"]
    assert scrolls and all(0 < r["value"] <= 100 for r in scrolls)
    assert any(r["path"] == "/demo/products" for r in scrolls)

    [error] = [r for r in rows if r["type"] == "error"]
    assert "reading 'code'" in error["error_message"]
    assert "applyCoupon" in error["error_stack"]

    [purchase] = [r for r in rows if r["type"] == "custom" and r["name"] == "purchase"]
    assert json.loads(purchase["props"])["amount"] == pytest.approx(129.0 + 49.5)

    vitals = {r["name"]: r for r in rows if r["type"] == "web_vital"}
    assert set(vitals) == VITALS
    for v in vitals.values():
        assert v["rating"] in {"good", "needs-improvement", "poor"}
        assert v["value"] >= 0
    assert vitals["LCP"]["value"] > 0 and vitals["FCP"]["value"] > 0


def test_batches_were_gzipped_and_the_page_hide_beacon_delivered(visit: tuple[Daemon, dict[str, Any]]) -> None:
    """Timer flushes go gzip (and the server could read them); the close sends by beacon, and those events arrive."""
    d, report = visit
    rows = _rows(d)
    fetches = [r for r in report["requests"] if r["resourceType"] == "fetch"]
    assert fetches, report
    assert all(r["status"] == 202 for r in fetches), fetches
    # gzip=1 tells the server the body is gzip; a 202 means it gunzipped and decoded it.
    assert any(r["gzip"] for r in fetches), fetches
    # Batches under 1 KiB are not worth an asynchronous compression step; all others are gzip.
    plain = [t for t in report["transport"] if t["via"] == "fetch" and "gzip=1" not in t["url"]]
    assert all(t["bytes"] < 1024 for t in plain), plain
    assert all(r["contentType"] == "text/plain" for r in fetches)

    beacons = [t for t in report["transport"] if t["via"] == "beacon"]
    assert beacons and all(b["ok"] and b["type"] == "text/plain" for b in beacons), report["transport"]
    assert all(t["at"] >= report["closedAt"] for t in beacons), "beacons are for page hide only"
    # CLS is only reported when the page is hidden, and the last navigation happened closer to the
    # close than the flush interval: both can only have come by the page-hide beacon.
    assert any(r["type"] == "web_vital" and r["name"] == "CLS" for r in rows)
    pageviews = [r["path"] for r in rows if r["type"] == "pageview"]
    assert pageviews[-1] == "/demo/products" and pageviews.count("/demo/products") == 2


def test_nothing_typed_into_the_form_is_stored(visit: tuple[Daemon, dict[str, Any]]) -> None:
    """Name, email and card number typed into the checkout form appear in no stored column."""
    d, report = visit
    _rows(d)
    for secret in report["secrets"].values():
        hits = d.scalar("SELECT count() FROM obsd.events WHERE positionCaseInsensitive(concat(url, title, referrer, "
                        f"selector, href, props, error_message, error_stack), '{secret}') > 0")
        assert hits == 0, f"{secret!r} was stored"


def test_the_page_raised_only_the_demo_error(visit: tuple[Daemon, dict[str, Any]]) -> None:
    """The SDK never throws into the page: the only page error is the one the demo button throws on purpose."""
    _, report = visit
    page_errors = [e for e in report["consoleErrors"] if e.startswith("pageerror:")]
    assert page_errors == ["pageerror: Cannot read properties of undefined (reading 'code')"]
