"""GET /v1/stats/* and `obsd report` against a real daemon fed through POST /v1/events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from obsd.query.reports import rating
from tests import traffic
from tests.harness import ADMIN_TOKEN, WRITE_KEY, Daemon, http, now_ms

PROJECTS = [{"id": "demo", "write_key": WRITE_KEY}, {"id": "other", "write_key": "other-write-key-0001"}]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, list[traffic.Session]]]:
    """A daemon with two projects and 120 sessions of traffic ingested over HTTP into `demo`."""
    d = Daemon(tmp_path_factory.mktemp("stats"), sections={"pipeline": {"batch_interval_ms": 50},
                                                            "server": {"trusted_proxies": ["127.0.0.1"]}},
               projects=PROJECTS)
    d.start()
    try:
        sessions = traffic.sessions(120, now_ms=now_ms(), span_h=20)
        total = 0
        for s in sessions:
            r = d.post(traffic.envelope_of(s), headers=s.headers())
            assert r.status == 202 and not r.json()["rejected"], r.body
            total += len(s.events)
        assert d.wait_for("SELECT count() FROM obsd.events", total) == total
        traffic.settle(d, sessions)
        yield d, sessions
    finally:
        d.stop()


def stats(d: Daemon, report: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    r = http("GET", f"{d.base}/v1/stats/{report}?{urlencode(params, doseq=True)}",
             headers=AUTH if headers is None else headers)
    return r


def ok(d: Daemon, report: str, **params: Any) -> dict[str, Any]:
    r = stats(d, report, project="demo", **params)
    assert r.status == 200, r.body
    assert r.headers["Cache-Control"] == "no-store"
    doc: dict[str, Any] = r.json()
    return doc


def test_overview_counts_what_was_ingested(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """Pageviews, visitors, sessions and errors equal the raw table; bot traffic is not counted."""
    d, sessions = fed
    doc = ok(d, "overview")
    raw = d.query("SELECT countIf(type = 'pageview') AS pageviews, count() AS events, "
                  "countIf(type = 'error') AS errors FROM obsd.events WHERE NOT is_bot")[0]
    # Visitors and sessions of the visits: a visitor is counted once per day its visits began on.
    raw |= d.query("SELECT uniqExact(day, v) AS visitors, count() AS sessions FROM (SELECT toDate(min(ts)) AS day, "
                   "any(visitor_id) AS v FROM obsd.events WHERE NOT is_bot GROUP BY session_id "
                   "HAVING countIf(type = 'pageview') > 0)")[0]
    humans = [s for s in sessions if s.agent != traffic.BOT_AGENT]
    assert raw["pageviews"] == sum(1 for s in humans for e in s.events if e["type"] == "pageview")
    assert {k: doc["summary"][k] for k in raw} == raw
    # Each visitor has its own address and browser (~1.3 visits each); ids rotate at midnight UTC.
    visitors = len({(s.ip, s.agent) for s in humans})
    assert visitors <= raw["visitors"] <= 2 * visitors and raw["visitors"] > len(humans) / 2
    assert doc["report"] == "overview" and doc["project"] == "demo" and doc["bucket"] == "hour"
    assert doc["since"].endswith(":00:00Z") and doc["until"].endswith(":00:00Z")
    assert len(doc["series"]) == 24 and sum(b["pageviews"] for b in doc["series"]) == raw["pageviews"]
    assert doc["columns"] == list(doc["rows"][0])


def test_pages_and_devices_agree_with_raw_rows(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """Top pages and the device/browser/OS split (as parsed from real User-Agents) match the raw table."""
    d, _ = fed
    pages = ok(d, "pages", limit="3")
    raw = d.query("SELECT path, count() AS pageviews FROM obsd.events WHERE type = 'pageview' AND NOT is_bot "
                  "GROUP BY path ORDER BY pageviews DESC, path LIMIT 3")
    assert [(r["path"], r["pageviews"]) for r in pages["rows"]] == [(r["path"], r["pageviews"]) for r in raw]
    devices = ok(d, "devices")
    raw = d.query("SELECT device_type, count() AS n FROM obsd.events WHERE type = 'pageview' AND NOT is_bot "
                  "GROUP BY device_type ORDER BY n DESC")
    assert [(r["value"], r["pageviews"]) for r in devices["rows"] if r["dimension"] == "device"] == [
        (r["device_type"], r["n"]) for r in raw]
    assert {"mobile", "desktop"} <= {r["value"] for r in devices["rows"]}
    assert "bot" not in {r["value"] for r in devices["rows"]}


def test_vitals_and_errors_agree_with_raw_rows(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """p75 per metric equals the raw quantile with Google's rating; three bugs make three error groups."""
    d, sessions = fed
    vitals = {r["metric"]: r for r in ok(d, "vitals")["rows"]}
    raw = d.query("SELECT name, quantiles(0.5, 0.75, 0.95)(value) AS q, count() AS n FROM obsd.events "
                  "WHERE type = 'web_vital' AND NOT is_bot GROUP BY name")
    assert set(vitals) == {r["name"] for r in raw} == set(traffic.VITALS)
    for r in raw:
        v = vitals[r["name"]]
        assert (v["samples"], v["p75"]) == (r["n"], pytest.approx(r["q"][1]))
        assert v["rating"] == rating(r["name"], v["p75"])
        assert v["good"] + v["needs_improvement"] + v["poor"] == pytest.approx(1, abs=0.001)
    errors = ok(d, "errors")
    humans = [s for s in sessions if s.agent != traffic.BOT_AGENT]
    assert sorted(r["events"] for r in errors["rows"]) == sorted(
        sum(s.bugs.count(b) for s in humans) for b in traffic.BUGS)
    assert errors["summary"]["errors"] == sum(len(s.bugs) for s in humans)


def test_recent_and_events(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """The live strip's feed is newest first; event counts by type cover every type sent."""
    d, _ = fed
    recent = ok(d, "recent", limit="10")
    assert len(recent["rows"]) == 10
    times = [r["ts"] for r in recent["rows"]]
    assert times == sorted(times, reverse=True)
    raw = d.query("SELECT type, path FROM obsd.events WHERE NOT is_bot ORDER BY ts DESC, event_id LIMIT 10")
    assert [(r["type"], r["path"]) for r in recent["rows"]] == [(r["type"], r["path"]) for r in raw]
    events = ok(d, "events", limit="100")
    assert {r["type"] for r in events["rows"]} == {"pageview", "web_vital", "click", "custom", "error"}
    assert sum(r["events"] for r in events["rows"]) == d.scalar("SELECT count() FROM obsd.events WHERE NOT is_bot")


def test_index_lists_reports_and_projects(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """GET /v1/stats tells the dashboard what it can ask for."""
    d, _ = fed
    r = http("GET", f"{d.base}/v1/stats", headers=AUTH)
    assert r.status == 200
    assert r.json() == {"reports": ["overview", "pages", "referrers", "devices", "vitals", "errors", "events",
                                    "recent", "releases", "entry-pages", "exit-pages", "sources", "utm", "locations",
                                    "props", "goals", "funnel", "realtime"], "projects": ["demo", "other"]}


def test_other_project_is_empty_not_mixed(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """Reports are per project: the second project sees none of the first one's traffic."""
    d, _ = fed
    r = stats(d, "overview", project="other")
    assert r.status == 200 and r.json()["summary"]["pageviews"] == 0


@pytest.mark.parametrize(("path", "headers", "status", "code", "needle"), [
    ("/v1/stats/overview?project=demo", {}, 401, "admin_unauthorized", "admin token"),
    ("/v1/stats/overview?project=demo", {"Authorization": "Bearer nope"}, 401, "admin_unauthorized", "admin token"),
    ("/v1/stats", {}, 401, "admin_unauthorized", "admin token"),
    ("/v1/stats/teleports?project=demo", AUTH, 404, "unknown_report", "overview"),
    ("/v1/stats/overview", AUTH, 400, "invalid_parameter", "project is required"),
    ("/v1/stats/overview?project=nope", AUTH, 400, "unknown_project", "demo, other"),
    ("/v1/stats/overview?project=demo&since=yesterday", AUTH, 400, "invalid_parameter", "since="),
    ("/v1/stats/pages?project=demo&limit=0", AUTH, 400, "invalid_parameter", "limit="),
    ("/v1/stats/pages?project=demo&limit=5&limit=6", AUTH, 400, "invalid_parameter", "once"),
    ("/v1/stats/pages?project=demo&sql=DROP", AUTH, 400, "invalid_parameter", "unknown parameter sql"),
    ("/v1/stats/vitals?project=demo&by=country", AUTH, 400, "invalid_parameter", "by="),
])
def test_refusals_use_the_one_error_shape(fed: tuple[Daemon, list[traffic.Session]], path: str,
                                          headers: dict[str, str], status: int, code: str, needle: str) -> None:
    """Bad tokens, reports and parameters are refused with a status, a code and a reason naming the fix."""
    d, _ = fed
    r = http("GET", d.base + path, headers=headers)
    body = r.json()
    assert (r.status, body["status"], body["error"]) == (status, status, code)
    assert needle in body["reason"] and set(body) == {"status", "error", "reason"}


def _cli(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "obsd.cli", "report", *args, "--config", str(d.config)],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "COLUMNS": "160"})


def test_cli_report_goes_through_the_running_daemon(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """`obsd report` while serving: JSON equals the API document; tables show sparklines; CSV has a header."""
    d, _ = fed
    res = _cli(d, "overview", "--project", "demo", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["summary"] == ok(d, "overview")["summary"]
    table = _cli(d, "overview", "--project", "demo")
    assert table.returncode == 0, table.stderr
    assert "pageviews" in table.stdout and any(ch in table.stdout for ch in "▁▂▃▄▅▆▇█")
    assert f"pageviews: {ok(d, 'overview')['summary']['pageviews']:,}" in table.stdout
    csv_out = _cli(d, "pages", "--project", "demo", "--format", "csv", "--limit", "2")
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0] == "path,pageviews,visitors,sessions,share" and len(lines) == 3
    vitals = _cli(d, "vitals", "--project", "demo")
    assert vitals.returncode == 0 and "LCP" in vitals.stdout and " ms" in vitals.stdout
    errors = _cli(d, "errors", "--project", "demo")
    assert errors.returncode == 0 and "renderItem" in errors.stdout


def test_cli_refuses_bad_flags_with_exit_2(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """A bad --since or an unknown project exits 2 with a message saying what to pass."""
    d, _ = fed
    res = _cli(d, "pages", "--project", "demo", "--since", "last week")
    assert res.returncode == 2 and "since='last week'" in res.stderr
    res = _cli(d, "pages", "--project", "elsewhere")
    assert res.returncode == 2 and "not configured" in res.stderr
    res = _cli(d, "pages")
    assert res.returncode == 2 and "project is required" in res.stderr


def test_cli_report_opens_the_store_when_no_daemon_runs(tmp_path: Path) -> None:
    """With the daemon stopped, `obsd report` reads the embedded store itself and gives the same numbers."""
    d = Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 50}})
    d.start()
    try:
        sessions = traffic.sessions(15, now_ms=now_ms(), span_h=5, seed=3, bots=0)
        for s in sessions:
            assert d.post(traffic.envelope_of(s), headers={"User-Agent": s.agent}).status == 202
        total = sum(len(s.events) for s in sessions)
        assert d.wait_for("SELECT count() FROM obsd.events", total) == total
        traffic.settle(d, sessions)
        expected = ok(d, "overview")["summary"]
    finally:
        assert d.stop() == 0
    res = _cli(d, "overview", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["summary"] == expected
    assert expected["pageviews"] == sum(1 for s in sessions for e in s.events if e["type"] == "pageview")


def test_filters_repeat_and_bad_ones_are_refused(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """filter= may repeat (ANDed) and reaches every report; a wrong key, operator or goal is a 400 with a reason."""
    d, _ = fed
    both = ok(d, "overview", filter=["device=mobile", "browser=Mobile Safari"])
    mobile = ok(d, "overview", filter="device=mobile")
    assert 0 < both["summary"]["visits"] < mobile["summary"]["visits"] and both["filters"] == [
        "device=mobile", "browser=Mobile Safari"]
    raw = d.query("SELECT uniqExact(session_id) AS n FROM obsd.events WHERE NOT is_bot AND device_type = 'mobile' "
                  "AND type = 'pageview'")[0]
    assert mobile["summary"]["visits"] == raw["n"]
    for name in ("pages", "entry-pages", "sources", "goals", "props", "vitals"):
        assert ok(d, name, filter="device=mobile")["filters"] == ["device=mobile"]
    for bad, needle in (("colour=red", "filter key 'colour'"), ("page", "KEY=VALUE"), ("goal=Nope", "no such goal")):
        r = http("GET", f"{d.base}/v1/stats/overview?{urlencode({'project': 'demo', 'filter': bad})}", headers=AUTH)
        assert r.status == 400 and needle in r.json()["reason"], r.body
    r = http("GET", f"{d.base}/v1/stats/overview?project=demo&compare=yesterday", headers=AUTH)
    assert r.status == 400 and "compare" in r.json()["reason"]


HOSTILE_VALUES = ["' OR 1=1 --", "x'); DROP TABLE obsd.events; --", "{project:String}", "\\'", "%", "_", ".*", "*",
                  "a\\", "💥", "/'||'"]


def test_hostile_filter_values_are_data_never_sql(fed: tuple[Daemon, list[traffic.Session]]) -> None:
    """Quotes, SQL, parameter placeholders, LIKE and regex metacharacters in a filter value or a prop key are
    compared as text: `=` and `~` match nothing, `!=` everything, every report answers 200 and nothing changes."""
    d, _ = fed
    events = d.scalar("SELECT count() FROM obsd.events")
    everything = ok(d, "overview")["summary"]["visits"]
    assert everything > 0
    for v in HOSTILE_VALUES:
        for f, visits in ((f"page={v}", 0), (f"entry_page~{v}", 0), (f"utm_source!={v}", everything),
                          (f"prop:{v}={v}", 0), (f"event={v}", 0)):
            assert ok(d, "overview", filter=f)["summary"]["visits"] == visits, f
        for name in ("pages", "entry-pages", "sources", "goals", "props", "vitals", "errors", "funnel"):
            extra = {"step": [f"page={v}", f"event={v}"]} if name == "funnel" else {}
            doc = ok(d, name, filter=[f"page={v}", f"country~{v}"], **extra)
            assert doc["filters"] == [f"page={v}", f"country~{v}"] and not any(
                r.get(k) for r in doc["rows"] for k in ("visits", "visitors", "pageviews", "events", "samples",
                                                         "conversions")), (name, v, doc["rows"])
    assert d.scalar("SELECT count() FROM obsd.events") == events
