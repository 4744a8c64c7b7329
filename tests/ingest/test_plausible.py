"""POST /api/event against a real daemon: the tracker's captured requests replayed, and every refusal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import WRITE_KEY, Daemon, Response, http
from tests.ingest.captured import CAPTURED_ORIGIN, plausible

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
PROJECTS = [
    {"id": "shop", "write_key": WRITE_KEY, "allowed_origins": [CAPTURED_ORIGIN, "http://compat.test:8787", "https://shop.example"],
     "domains": ["compat.test", "shop.example"]},
    {"id": "rollup", "write_key": "rollup-write-key", "allowed_origins": ["*"], "domains": ["rollup.compat.test"]},
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with two projects found by domain (one of them a roll-up of the other)."""
    with Daemon(tmp_path_factory.mktemp("plausible"), sections={"pipeline": {"batch_interval_ms": 50}},
                projects=PROJECTS) as d:
        yield d


def send(d: Daemon, doc: dict[str, Any] | bytes, *, origin: str | None = "https://shop.example", ua: str = CHROME,
         query: str = "", headers: dict[str, str] | None = None) -> Response:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    h = {"Content-Type": "text/plain", "User-Agent": ua, **({"Origin": origin} if origin else {}), **(headers or {})}
    return http("POST", f"{d.base}/api/event{query}", body, h)


def rows(d: Daemon, where: str, n: int) -> list[dict[str, Any]]:
    """The rows matching `where`, once there are `n` of them."""
    assert d.wait_for(f"SELECT count() FROM obsd.events WHERE {where}", n) == n
    return d.query("SELECT project_id, type, name, url, path, hostname, referrer_host, utm_source, value, props, "
                   f"protocol, sdk, session_id, visitor_id, is_bot, browser FROM obsd.events WHERE {where} "
                   "ORDER BY received_at, project_id")


def test_captured_tracker_requests_are_stored_as_plausible_would_count_them(daemon: Daemon) -> None:
    """Every request of the real tracker (pageviews, SPA, custom, revenue, engagement, hash mode) lands right."""
    for c in plausible():
        r = http("POST", daemon.base + c.path, c.body, c.headers)
        assert (r.status, r.body) == (202, b"ok"), (c.name, r.body)
        assert r.headers["Access-Control-Allow-Origin"] == c.headers["Origin"]
    sites = sum(len(c.json()["d"].split(",")) for c in plausible())  # one row per site named in d
    got = rows(daemon, "url LIKE 'http://%:8787/%'", sites)
    assert {r["protocol"] for r in got} == {"plausible"} and {r["sdk"] for r in got} == {"plausible-tracker/36"}
    assert all(r["is_bot"] for r in got)  # the captures came from HeadlessChrome: flagged, as obsd's SDK is
    by_mark = {(r["project_id"], r["type"], r["name"], r["path"]) for r in got}
    # d = "compat.test,rollup.compat.test": each named site gets the pageview (Plausible's roll-ups).
    assert ("shop", "pageview", "", "/spa/home") in by_mark and ("rollup", "pageview", "", "/spa/home") in by_mark
    purchases = [r for r in got if r["name"] == "Purchase" and r["project_id"] == "shop"]
    assert [(p["value"], json.loads(p["props"])) for p in purchases] == [
        (15.99, {"plan": "pro", "seats": "3", "revenue_amount": "15.99", "revenue_currency": "EUR"}),
        (12.5, {"revenue_amount": "12.50", "revenue_currency": "USD"})]
    assert purchases[0]["utm_source"] == "newsletter" and purchases[0]["referrer_host"] == "www.google.com"
    [autoplay] = [r for r in got if r["name"] == "Autoplay" and r["project_id"] == "shop"]
    assert json.loads(autoplay["props"])["interactive"] is False
    assert any(r["name"] == "404" and r["path"] == "/missing" for r in got)
    scrolls = [r for r in got if r["type"] == "scroll"]
    assert scrolls and all(0 <= r["value"] <= 100 and json.loads(r["props"])["engaged_ms"] >= 0 for r in scrolls)
    assert any(r["value"] == 100 and r["path"] == "/spa/pricing" for r in scrolls)
    # Hash-based routing (h=1) keeps the route in the path, as Plausible does.
    assert any(r["type"] == "pageview" and r["path"] == "/page/plausible-hash#/settings/profile" for r in got), \
        sorted({r["path"] for r in got})


def test_visits_share_a_session_id_per_visitor(daemon: Daemon) -> None:
    """A visitor's events in one visit share a session; another browser is another visitor and session."""
    for ua in (CHROME, CHROME, CHROME.replace("126.0", "127.0")):
        assert send(daemon, {"n": "pageview", "u": "https://shop.example/visit", "d": "shop.example"}, ua=ua).status \
            == 202
    got = rows(daemon, "path = '/visit'", 3)
    assert got[0]["session_id"] == got[1]["session_id"] != got[2]["session_id"]
    assert got[0]["visitor_id"] == got[1]["visitor_id"] != got[2]["visitor_id"]
    assert len(got[0]["session_id"]) == 16 and not got[0]["is_bot"] and got[0]["browser"] == "Chrome"


def test_a_tracker_visit_has_its_entry_exit_and_source(daemon: Daemon) -> None:
    """Plausible's visits feed the visits rollup like the SDK's: entry and exit page, source from the referrer."""
    ua = CHROME.replace("126.0", "125.0")
    for path, ref in (("/landing", "https://news.ycombinator.com/item?id=1"), ("/next", "https://shop.example/landing"),
                      ("/last", "https://shop.example/next")):
        doc = {"n": "pageview", "u": f"https://shop.example{path}", "d": "shop.example", "r": ref}
        assert send(daemon, doc, ua=ua).status == 202
    sid = rows(daemon, "path = '/landing'", 1)[0]["session_id"]
    assert daemon.wait_for(f"SELECT sum(pageviews) FROM obsd.visits WHERE sid = cityHash64('{sid}')", 3) == 3
    visit = daemon.query("SELECT entry_page, exit.2 AS exit_page, source, channel, pageviews FROM obsd.visits FINAL "
                         f"WHERE sid = cityHash64('{sid}')")
    assert visit == [{"entry_page": "/landing", "exit_page": "/last", "source": "Hacker News", "channel": "social",
                      "pageviews": 3}]


def test_write_key_on_the_endpoint_picks_the_project_whatever_the_domain(daemon: Daemon) -> None:
    """`endpoint: ".../api/event?key=K"` sends to K's project; an unknown key is 401."""
    doc = {"n": "pageview", "u": "https://elsewhere.example/keyed", "d": "elsewhere.example"}
    assert send(daemon, doc, query="?key=rollup-write-key").status == 202
    assert rows(daemon, "path = '/keyed'", 1)[0]["project_id"] == "rollup"
    r = send(daemon, doc, query="?key=nope-nope-nope")
    assert (r.status, r.json()["error"]) == (401, "invalid_key")


def test_unknown_domain_and_foreign_origin_are_refused_without_cors(daemon: Daemon) -> None:
    """A domain no project has is 400; an origin the project does not allow is 403; neither gets ACAO."""
    r = send(daemon, {"n": "pageview", "u": "https://x.example/", "d": "x.example"})
    assert (r.status, r.json()["error"]) == (400, "unknown_domain") and "domains" in r.json()["reason"]
    assert "Access-Control-Allow-Origin" not in r.headers
    r = send(daemon, {"n": "pageview", "u": "https://shop.example/", "d": "shop.example"}, origin="https://evil.example")
    assert (r.status, r.json()["error"]) == (403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in r.headers


def test_a_refused_body_is_400_with_the_reason_and_cors_for_an_allowed_origin(daemon: Daemon) -> None:
    """A body Plausible would refuse gets 400 and a reason the browser may read."""
    r = send(daemon, {"n": "engagement", "u": "https://shop.example/", "d": "shop.example"})
    assert (r.status, r.json()["error"]) == (400, "invalid_engagement")
    r = send(daemon, {"n": "Big", "u": "https://shop.example/", "d": "shop.example",
                      "p": {f"k{i}": "v" * 400 for i in range(25)}})  # within Plausible's, over obsd's props bytes
    assert (r.status, r.json()["error"]) == (400, "invalid_props") and "8192 bytes" in r.json()["reason"]
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    kept = daemon.wait_for("SELECT count() FROM obsd.events_rejected WHERE stage = 'plausible' "
                           "AND position(payload, 'Big') > 0", 1)
    assert kept == 1, "the refused event is kept with its reason in events_rejected"
    r = send(daemon, {"n": "pageview", "u": "https://shop.example/"}, headers={"Content-Type": "image/png"})
    assert r.status == 415


def test_metrics_count_plausible_by_outcome(daemon: Daemon) -> None:
    """Accepted events and refused requests are counted under protocol="plausible"."""
    text = daemon.metrics()
    assert 'obsd_protocol_events_accepted_total{protocol="plausible"}' in text
    assert 'obsd_protocol_requests_refused_total{protocol="plausible",reason="unknown_domain"}' in text
    assert 'obsd_protocol_events_rejected_total{protocol="plausible",reason="invalid_props"}' in text


def test_bots_dropped_by_config_answer_202_with_plausibles_dropped_header(tmp_path: Path) -> None:
    """With privacy.drop_bots a bot's event is not stored, and the tracker still gets 202 ok."""
    with Daemon(tmp_path, sections={"privacy": {"drop_bots": True}, "rate_limit": {"per_ip_rps": 1.0}},
                projects=PROJECTS) as d:
        r = send(d, {"n": "pageview", "u": "https://shop.example/", "d": "shop.example"}, ua="Googlebot/2.1")
        assert (r.status, r.body, r.headers.get("X-Plausible-Dropped")) == (202, b"ok", "1")
        r = send(d, {"n": "pageview", "u": "https://shop.example/", "d": "shop.example"})
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1  # the same per-IP bucket as /v1/events
        assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert int(d.scalar("SELECT count() FROM obsd.events")) == 0


def test_reload_takes_new_domains_and_sentry_ids(tmp_path: Path) -> None:
    """SIGHUP with a new domain and a sentry_id: both protocols take them without a restart."""
    import signal
    import time

    from tests.harness import write_config

    before = [{"id": "shop", "write_key": "shop_write_key_01", "allowed_origins": ["*"], "domains": ["a.example"]}]
    after = [dict(before[0], domains=["a.example", "b.example"], sentry_id=9)]
    with Daemon(tmp_path, projects=before) as d:
        doc = {"n": "pageview", "u": "https://b.example/", "d": "b.example"}
        envelope = b'{}\n{"type":"event"}\n{"message":"after reload","platform":"javascript"}'
        sentry = f"{d.base}/api/9/envelope/?sentry_key=shop_write_key_01"
        assert send(d, doc, origin=None).status == 400
        assert http("POST", sentry, envelope).status == 403
        write_config(d.config, d.data_dir, d.port, projects=after)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while send(d, doc, origin=None).status != 202 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert send(d, doc, origin=None).status == 202
        assert http("POST", sentry, envelope).status == 200


@pytest.mark.parametrize("where", ["props", "unknown key", "top level"])
def test_nesting_at_any_depth_is_a_400_not_a_500(tmp_path: Path, where: str) -> None:
    """Plausible bodies nested 1,000 levels deep anywhere are a 400 nesting_too_deep, never a 500."""
    deep = "[" * 1000 + "]" * 1000
    body = {"props": f'{{"n": "pageview", "u": "https://a.example/", "d": "a.example", "p": {deep}}}',
            "unknown key": f'{{"n": "pageview", "u": "https://a.example/", "d": "a.example", "zz": {deep}}}',
            "top level": deep}[where].encode()
    projects = [{"id": "shop", "write_key": "shop_write_key_02", "allowed_origins": ["*"], "domains": ["a.example"]}]
    with Daemon(tmp_path, projects=projects) as d:
        r = http("POST", d.base + "/api/event", body, {"Content-Type": "text/plain"})
        assert (r.status, r.json()["error"]) == (400, "nesting_too_deep"), r.body
        assert http("GET", d.base + "/health").status == 200
