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
from tests.harness import ADMIN_TOKEN, ROOT, WRITE_KEY, Daemon, http, now_ms
from tests.needs import CHROMIUM, missing_browser, need

SCRIPT = ROOT / "tests" / "query" / "dashboard" / "render.mjs"
Seen = tuple[Daemon, dict[str, Any], dict[str, dict[str, Any]]]
PROJECT = {"id": "demo", "write_key": WRITE_KEY, "goals": [
    {"name": "Cart", "page": "/cart"}, {"name": "Checkout", "page": "/checkout"},
    {"name": "Add to cart", "event": "add_to_cart"}], "funnels": [{"name": "Buy", "steps": ["Cart", "Checkout"]}]}
MEDIA = ("email", "social")
COUNTRIES = ("DE", "US", "FR", "DE", "GB")
COLOURS = {"good": "rgb(12, 157, 88)", "needs-improvement": "rgb(227, 155, 0)", "poor": "rgb(229, 72, 60)"}


def _api(d: Daemon, report: str, **params: str) -> dict[str, Any]:
    """A report with the dashboard's defaults (demo, 24 hours)."""
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
    d = Daemon(root, sections={"pipeline": {"batch_interval_ms": 50}, "server": {"trusted_proxies": ["127.0.0.1"]},
                               "privacy": {"country_header": "CF-IPCountry"}}, projects=[PROJECT])
    d.start()
    try:
        # Over 40 hours: the last 24 are shown, the 24 before them are what "compare" compares with.
        sessions = traffic.sessions(150, now_ms=now_ms(), span_h=40, seed=11)
        for i, s in enumerate(sessions):
            if i % 3 == 0:  # a third of the visits land from a campaign
                s.events[0]["url"] += f"?utm_source=news&utm_medium={MEDIA[i % 2]}&utm_campaign=spring{i % 4}"
            country = {"CF-IPCountry": COUNTRIES[i % len(COUNTRIES)]}
            assert d.post(traffic.envelope_of(s), headers={**s.headers(), **country}).status == 202
        total = sum(len(s.events) for s in sessions)
        assert d.wait_for("SELECT count() FROM obsd.events", total) == total
        traffic.settle(d, sessions)
        shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or root / "dashboard.png")
        res = subprocess.run(["node", str(SCRIPT), d.base, ADMIN_TOKEN, str(shot)], capture_output=True, text=True,
                             timeout=90, env={**os.environ, "CHROMIUM": CHROMIUM})
        assert res.returncode == 0, res.stderr[-3000:]
        assert shot.stat().st_size > 20_000
        page = json.loads(res.stdout)
        clicked = page["filtered"]["clicked"]
        api = {"overview": _api(d, "overview"), "pages": _api(d, "pages", limit="10"),
               "referrers": _api(d, "referrers", limit="10"), "devices": _api(d, "devices", limit="5"),
               "vitals": _api(d, "vitals"), "errors": _api(d, "errors", limit="10"),
               "entry": _api(d, "entry-pages", limit="10"), "entry_csv": _api(d, "entry-pages", limit="1000"),
               "sources": _api(d, "sources", limit="10"), "goals": _api(d, "goals"), "funnel": _api(d, "funnel"),
               "filtered": _api(d, "overview", filter=clicked), "filtered_pages": _api(d, "pages", limit="10",
                                                                                       filter=clicked),
               "compared": _api(d, "overview", compare="previous"),
               "utm_campaign": _api(d, "utm", limit="10", by="utm_campaign"),
               "utm_medium": _api(d, "utm", limit="10", by="utm_medium"),
               "countries": _api(d, "locations", limit="10"), "utm_csv": _api(d, "utm", limit="1000", by="utm_medium")}
        return d, page, api
    finally:
        d.stop()


def test_headline_numbers_match_the_api(seen: Seen) -> None:
    """Visitors, pageviews, sessions, views per session and errors read off the page equal the overview report."""
    _, page, api = seen
    s = api["overview"]["summary"]
    _same_kpis(page["kpis"], s)
    assert s["pageviews"] > 80 and s["errors"] > 0 and 0 < s["bounce_rate"] < 100 and s["visit_duration"] > 0
    # Sessions from visitors with their own addresses (about 1.3 visits each), not 4 browsers on loopback.
    assert s["visits"] / 2 < s["visitors"] <= s["visits"] and s["visits"] > 50


def _same_kpis(kpis: dict[str, str], s: dict[str, Any]) -> None:
    """Every headline number on the page, as the API gives it (counts, shares, seconds)."""
    counts = ("visitors", "visits", "pageviews", "sessions", "errors")
    assert {k: _n(kpis[k]) for k in counts} == {k: s[k] for k in counts}
    assert float(kpis["views_per_session"]) == s["views_per_session"]
    assert float(kpis["views_per_visit"]) == s["views_per_visit"]
    assert kpis["bounce_rate"] == f"{s['bounce_rate']:.1f}%"
    m = re.fullmatch(r"(?:(\d+)m )?(\d+)s", kpis["visit_duration"])
    assert m and int(m.group(1) or 0) * 60 + int(m.group(2)) == s["visit_duration"]


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


def test_visit_tables_goals_funnel_and_error_columns_match_the_api(seen: Seen) -> None:
    """Entry pages, sources and goals show the API's rows; the funnel is drawn step by step; errors name how they
    came (protocol) and the current-visitors count is shown."""
    _, page, api = seen
    assert [(r["key"], _n(r["cells"]["visits"])) for r in page["entry"]] == [
        (r["path"], r["visits"]) for r in api["entry"]["rows"]]
    assert all(r["filter"] == f"entry_page={r['key']}" for r in page["entry"])
    assert [(r["key"], r["cells"]["channel"]) for r in page["sources"]] == [
        (r["source"], r["channel"]) for r in api["sources"]["rows"]]
    assert {r["key"]: _n(r["cells"]["conversions"]) for r in page["goals"]} == {
        r["goal"]: r["conversions"] for r in api["goals"]["rows"]}
    steps = api["funnel"]["rows"]
    assert [(f["step"], f["visits"]) for f in page["funnel"]] == [(r["step"], r["visits"]) for r in steps]
    assert len(steps) == 2 and page["funnel"][0]["width"] == "100%" and steps[0]["visits"] >= steps[1]["visits"] > 0
    assert {e["protocols"] for e in page["errorColumns"]} == {"obsd"}
    assert page["current"].isdigit()


def test_csv_download_is_the_report(seen: Seen) -> None:
    """The CSV button saves the card's report as a file: its columns, every row, in order."""
    _, page, api = seen
    csv = page["csv"]
    assert csv["name"] == "demo-entry-pages-24h.csv"
    lines = csv["text"].strip().split("\r\n")
    rep = api["entry_csv"]
    assert lines[0] == ",".join(rep["columns"])
    assert [line.split(",")[0] for line in lines[1:]] == [r["path"] for r in rep["rows"]]
    assert [int(line.split(",")[1]) for line in lines[1:]] == [r["visits"] for r in rep["rows"]]


def test_a_click_filters_the_whole_page_and_the_address_reproduces_it(seen: Seen) -> None:
    """Clicking a page row filters every card by that page; the filter is in the URL, a chip removes it, and the
    same URL in a new tab shows the same view."""
    _, page, api = seen
    f = page["filtered"]
    assert f["clicked"].startswith("page=/") and f["chips"] == [f["clicked"]]
    assert "filter=page%3D" in f["url"]
    _same_kpis(f["kpis"], api["filtered"]["summary"])
    assert api["filtered"]["summary"]["visits"] < api["overview"]["summary"]["visits"]
    assert [(r["key"], _n(r["pageviews"])) for r in f["pages"]] == [
        (r["path"], r["pageviews"]) for r in api["filtered_pages"]["rows"]]
    assert page["reopened"]["chips"] == [f["clicked"]]
    assert _n(page["reopened"]["visits"]) == api["filtered"]["summary"]["visits"]
    assert "filter=" not in page["unfilteredUrl"]


def test_comparison_adds_changes_and_a_previous_line(seen: Seen) -> None:
    """Compare shows each headline number's change against the previous period and draws that period's line."""
    _, page, api = seen
    c = page["compared"]
    assert "compare=previous" in c["url"] and c["previousLine"]
    # Only the overview is asked for the earlier period: the tables show no comparison.
    compared = {u.split("?")[0] for u in page["comparedRequests"] if "compare=previous" in u}
    assert compared == {"/v1/stats/overview"} and len(page["comparedRequests"]) > 10
    assert api["compared"]["change"]["visits"] is not None  # the 24 hours before had traffic too
    for key, text in c["changes"].items():
        change = api["compared"]["change"].get(key)
        assert text == ("new" if change is None else f"{'▲' if change > 0 else '▼' if change < 0 else '='} "
                        f"{abs(change):g}%"), key


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


def test_campaign_and_location_tabs_show_one_level_each(seen: Seen) -> None:
    """Campaigns show one UTM tag at a time (campaign first; a tab switches to medium), locations the countries;
    each as the API gives it for that level, and the CSV button saves the level the card shows."""
    _, page, api = seen
    tabs = page["tabs"]
    assert [(r["key"], r["cells"]["visits"]) for r in tabs["campaign"]] == [
        (r["value"], f"{r['visits']:,}") for r in api["utm_campaign"]["rows"]] and len(tabs["campaign"]) == 4
    assert tabs["mediumLabel"] == "Medium" and {r["key"] for r in tabs["medium"]} == set(MEDIA)
    assert [(r["key"], r["filter"]) for r in tabs["medium"]] == [
        (r["value"], f"utm_medium={r['value']}") for r in api["utm_medium"]["rows"]]
    assert [(r["key"], r["cells"]["visits"]) for r in tabs["countries"]] == [
        (r["country"], f"{r['visits']:,}") for r in api["countries"]["rows"]]
    assert {r["key"] for r in tabs["countries"]} == set(COUNTRIES)
    lines = tabs["csv"].strip().splitlines()
    assert lines[0].split(",") == api["utm_csv"]["columns"] and len(lines) == 1 + len(api["utm_csv"]["rows"])
    assert {line.split(",")[1] for line in lines[1:]} == set(MEDIA)
