"""GET /dashboard rendered in real headless Chromium over ingested traffic, read back against the API."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests import traffic
from tests.harness import ADMIN_TOKEN, ROOT, Daemon, http, now_ms
from tests.needs import CHROMIUM, missing_browser, need

SCRIPT = ROOT / "tests" / "query" / "dashboard" / "render.mjs"
Seen = tuple[Daemon, dict[str, Any], dict[str, dict[str, Any]]]
COLOURS = {"good": "rgb(12, 157, 88)", "needs-improvement": "rgb(227, 155, 0)", "poor": "rgb(229, 72, 60)"}


def _api(d: Daemon, report: str, **params: str) -> dict[str, Any]:
    r = http("GET", f"{d.base}/v1/stats/{report}?{urlencode({'project': 'demo', 'since': '24h', **params})}",
             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status == 200, r.body
    doc: dict[str, Any] = r.json()
    return doc


def _n(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> Seen:
    """Feed a daemon, render its dashboard in Chromium, and fetch the same reports from the API."""
    need(missing_browser())
    root = tmp_path_factory.mktemp("dash")
    d = Daemon(root, sections={"pipeline": {"batch_interval_ms": 50}, "server": {"trusted_proxies": ["127.0.0.1"]}})
    d.start()
    try:
        sessions = traffic.sessions(150, now_ms=now_ms(), span_h=20, seed=11)
        for s in sessions:
            assert d.post(traffic.envelope_of(s), headers=s.headers()).status == 202
        total = sum(len(s.events) for s in sessions)
        assert d.wait_for("SELECT count() FROM obsd.events", total) == total
        traffic.settle(d, sessions)
        shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or root / "dashboard.png")
        res = subprocess.run(["node", str(SCRIPT), d.base, ADMIN_TOKEN, str(shot)], capture_output=True, text=True,
                             timeout=90, env={**os.environ, "CHROMIUM": CHROMIUM})
        assert res.returncode == 0, res.stderr[-3000:]
        assert shot.stat().st_size > 20_000
        api = {"overview": _api(d, "overview"), "pages": _api(d, "pages", limit="10"),
               "referrers": _api(d, "referrers", limit="10"), "devices": _api(d, "devices", limit="5"),
               "vitals": _api(d, "vitals"), "errors": _api(d, "errors", limit="10")}
        return d, json.loads(res.stdout), api
    finally:
        d.stop()


def test_headline_numbers_match_the_api(seen: Seen) -> None:
    """Visitors, pageviews, sessions, views per session and errors read off the page equal the overview report."""
    _, page, api = seen
    s = api["overview"]["summary"]
    assert {k: _n(v) for k, v in page["kpis"].items() if k != "views_per_session"} == {
        k: s[k] for k in ("visitors", "pageviews", "sessions", "errors")}
    assert float(page["kpis"]["views_per_session"]) == s["views_per_session"]
    assert s["pageviews"] > 150 and s["errors"] > 0


def test_chart_draws_every_bucket_and_its_tooltip_tells_the_peak(
        seen: Seen) -> None:
    """The chart has one point per hour, its axis tops at the busiest hour, and hovering that hour says so."""
    _, page, api = seen
    series = api["overview"]["series"]
    peak = max(series, key=lambda b: b["pageviews"])
    assert page["chart"]["buckets"] == len(series) == 24
    assert page["chart"]["max"] == peak["pageviews"] and _n(page["chart"]["ymax"]) == peak["pageviews"]
    assert f"{peak['pageviews']:,} pageviews" in page["tooltip"]
    assert page["weekBuckets"] == 7 and "since=7d" in page["weekUrl"]


def test_tables_match_the_api(seen: Seen) -> None:
    """Top pages, referrers and devices show the API's rows, in its order, with its numbers."""
    _, page, api = seen
    assert [(r["key"], _n(r["visitors"]), _n(r["pageviews"])) for r in page["pages"]] == [
        (r["path"], r["visitors"], r["pageviews"]) for r in api["pages"]["rows"]]
    assert [(r["key"], _n(r["pageviews"])) for r in page["referrers"]] == [
        (r["referrer"], r["pageviews"]) for r in api["referrers"]["rows"]]
    assert "(direct)" in {r["key"] for r in page["referrers"]}
    for dim in ("device", "browser", "os"):
        expected = [(r["value"], r["visitors"], f"{100 * r['share']:.1f}%") for r in api["devices"]["rows"]
                    if r["dimension"] == dim]
        assert [(r["key"], _n(r["visitors"]), r["share"]) for r in page["devices"][dim]] == expected and expected


def test_web_vitals_show_p75_with_rating_colours(seen: Seen) -> None:
    """Each metric shows its p75 in readable units, coloured by Google's rating of that p75."""
    _, page, api = seen
    expected = {r["metric"]: r for r in api["vitals"]["rows"]}
    assert [v["metric"] for v in page["vitals"]] == ["LCP", "INP", "CLS", "FCP", "TTFB"]
    for v in page["vitals"]:
        e = expected[v["metric"]]
        assert (v["p75"], v["rating"]) == (e["p75"], e["rating"])
        assert v["colour"] == COLOURS[e["rating"]]
        if v["metric"] == "CLS":
            assert v["text"] == f"{e['p75']:.2f}"
        else:
            m = re.fullmatch(r"([\d,]+) ms", v["text"])
            assert m and abs(_n(m.group(1)) - e["p75"]) <= 0.5, v["text"]


def test_error_groups_and_live_strip(seen: Seen) -> None:
    """Error groups list the API's fingerprints with counts; the live strip shows the latest events."""
    _, page, api = seen
    assert [(r["key"], r["message"], _n(r["events"]), _n(r["sessions"])) for r in page["errors"]] == [
        (r["fingerprint"], r["message"], r["events"], r["sessions"]) for r in api["errors"]["rows"]]
    assert len(page["errors"]) == 3
    assert 0 < len(page["live"]) <= 20 and set(page["live"]) <= {"pageview", "web_vital", "click", "custom", "error"}


def test_page_is_self_contained_and_keeps_the_token_out_of_the_url(
        seen: Seen) -> None:
    """No request leaves obsd, nothing logs an error, the token leaves the address bar, and the form works."""
    _, page, _ = seen
    assert page["foreign"] == [] and page["consoleErrors"] == []
    assert "token" not in page["url"] and page["tokenStored"]
    assert "admin token" in page["wrongTokenMessage"]
    assert page["loginFormOpens"]


def test_dashboard_is_served_with_a_strict_policy(tmp_path: Path) -> None:
    """The page and its assets come gzipped with a CSP that allows only obsd itself; unknown files are 404."""
    with Daemon(tmp_path) as d:
        r = http("GET", d.base + "/dashboard", headers={"Accept-Encoding": "gzip"})
        assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        js = http("GET", d.base + "/dashboard/app.js")
        assert js.status == 200 and js.headers["Content-Type"].startswith("application/javascript")
        assert http("GET", d.base + "/dashboard/app.js", headers={"If-None-Match": js.headers["ETag"]}).status == 304
        missing = http("GET", d.base + "/dashboard/..%2Fdashboard.py")
        assert missing.status == 404 and missing.json()["error"] == "not_found"
