"""Visit reports, filters, comparisons, goals, funnels and props, on hand-made visits and against raw events."""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from obsd.ingest.enrich import Client, RowEncoder
from obsd.ingest.importer import historic
from obsd.ingest.wire import WireDecoder
from obsd.privacy.visitor import VisitorHasher
from obsd.query.params import ReportError, parse_params
from obsd.query.reports import Reports
from obsd.settings import FunnelSettings, GoalSettings, ProjectSettings, load_settings
from obsd.store.client import Store
from obsd.store.migrations import Migrator
from tests import traffic

DAY0 = datetime(2025, 6, 2, tzinfo=UTC)  # a Monday; the hand-made visits happen on it and a week before
NOW = DAY0 + timedelta(days=2)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
PROJECT = ProjectSettings(id="demo", write_key="demo_write_key_0001",
                          goals=(GoalSettings(name="Signup (pro)", event="Signup", props={"plan": "pro"}),
                                 GoalSettings(name="Pricing", page="/pricing"),
                                 GoalSettings(name="Purchase", event="purchase")),
                          funnels=(FunnelSettings(name="Pricing to signup", steps=("Pricing", "Signup (pro)")),))


def _ev(type_: str, t: datetime, **f: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": type_, "ts": int(t.timestamp() * 1000), **f}


def _pv(t: datetime, path: str, **f: Any) -> dict[str, Any]:
    return _ev("pageview", t, url=f"https://shop.example{path}", **f)


def visits_at(t0: datetime) -> list[tuple[dict[str, Any], str]]:
    """(envelope, client IP): four visits and one session that is not a visit."""
    s = timedelta(seconds=1)
    a = [_pv(t0, "/", referrer="https://www.google.com/", entry=True), _pv(t0 + 30 * s, "/pricing"),
         _pv(t0 + 90 * s, "/signup"), _ev("custom", t0 + 100 * s, name="Signup", props={"plan": "pro"})]
    return [
        # A, from SDK 0.2 (session_start and entry flags): 3 pages and a signup over 100 s, from Google.
        ({"session_id": "visita" + t0.strftime("%d"), "session_start": a[0]["ts"], "events": a}, "81.2.69.1"),
        # B, an older SDK: one page from a newsletter: a bounce.
        ({"session_id": "visitb" + t0.strftime("%d"), "events": [
            _pv(t0, "/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring")]}, "81.2.69.2"),
        # C: one page and a purchase 20 s later (a custom event: not a bounce).
        ({"session_id": "visitc" + t0.strftime("%d"), "events": [
            _pv(t0, "/"), _ev("custom", t0 + 20 * s, name="purchase", props={"sku": "A1", "revenue": 49.5})]},
         "81.2.69.3"),
        # D: from Twitter, two pages a minute apart.
        ({"session_id": "visitd" + t0.strftime("%d"), "events": [
            _pv(t0, "/blog/x", referrer="https://t.co/abc"), _pv(t0 + 60 * s, "/")]}, "81.2.69.4"),
        # E: only Web Vitals and an error: no visit.
        ({"session_id": "visite" + t0.strftime("%d"), "events": [
            _ev("web_vital", t0, name="LCP", value=1000.0), _ev("error", t0, message="boom")]}, "81.2.69.5"),
    ]


def _insert(store: Store, encoder: RowEncoder, batches: list[tuple[dict[str, Any], str]]) -> None:
    decoder = WireDecoder(encoder.settings.limits)
    data = b""
    for env, ip in batches:
        body = json.dumps({"sdk": {"name": "obsd-js"}, "context": {"url": "https://shop.example/"}, **env}).encode()
        out = encoder.encode("demo", decoder.decode(body), Client(ip, UA), NOW.timestamp())
        assert not out.rejected
        data += out.data
    store.insert_ndjson("events", data)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(f"chdb://{tmp_path_factory.mktemp('visits')}/ch", "obsd")
    Migrator(s).up()
    settings = historic(load_settings(None, environ={}))
    encoder = RowEncoder(settings, VisitorHasher(None))
    for t0 in (DAY0 + timedelta(hours=10), DAY0 - timedelta(days=7) + timedelta(hours=10)):
        _insert(s, encoder, visits_at(t0))
    yield s
    s.close()


@pytest.fixture(scope="module")
def reports(store: Store) -> Reports:
    return Reports(store, "obsd", projects=[PROJECT])


def run(reports: Reports, name: str, **raw: Any) -> dict[str, Any]:
    params = {"project": "demo", "since": DAY0.strftime("%Y-%m-%d"), "until": DAY0.strftime("%Y-%m-%d"), **raw}
    return reports.run(name, parse_params(params, now=NOW)).to_json()


def test_bounce_duration_and_views_of_hand_made_visits(reports: Reports) -> None:
    """4 visits (E has no pageview), one bounce, durations 100+0+20+60 s, 7 pageviews."""
    s = run(reports, "overview")["summary"]
    assert (s["visits"], s["bounce_rate"], s["visit_duration"], s["views_per_visit"]) == (4, 25.0, 45, 1.75)
    assert s["pageviews"] == 7 and s["visitors"] == 4


def test_entry_exit_sources_and_campaigns(reports: Reports) -> None:
    """Entry and exit pages, Plausible's sources and channels, and the newsletter campaign."""
    rows = {r["path"]: r for r in run(reports, "entry-pages")["rows"]}
    assert {p: (r["visits"], r["bounce_rate"], r["visit_duration"]) for p, r in rows.items()} == {
        "/": (2, 0.0, 60), "/pricing": (1, 100.0, 0), "/blog/x": (1, 0.0, 60)}
    assert {r["path"]: r["visits"] for r in run(reports, "exit-pages")["rows"]} == {"/signup": 1, "/pricing": 1,
                                                                                     "/": 2}
    assert {(r["source"], r["channel"]): r["visits"] for r in run(reports, "sources")["rows"]} == {
        ("Google", "search"): 1, ("newsletter", "email"): 1, ("(direct)", "direct"): 1, ("Twitter", "social"): 1}
    assert {r["channel"]: r["visits"] for r in run(reports, "sources", by="channel")["rows"]} == {
        "search": 1, "email": 1, "direct": 1, "social": 1}
    utm = run(reports, "utm")["rows"]
    assert {(r["key"], r["value"]) for r in utm} == {("utm_source", "newsletter"), ("utm_medium", "email"),
                                                     ("utm_campaign", "spring")}


def test_filters_select_whole_visits(reports: Reports) -> None:
    """A visit filter keeps whole visits; a page filter keeps visits that saw it (bounce of those that entered
    there); != and ~ work; filters AND."""
    assert run(reports, "overview", filter=["channel=search"])["summary"]["pageviews"] == 3
    s = run(reports, "overview", filter=["page=/pricing"])["summary"]
    assert (s["visits"], s["bounce_rate"]) == (2, 100.0)  # A and B saw it; of those that entered there, B bounced
    assert run(reports, "overview", filter=["page!=/pricing"])["summary"]["visits"] == 2
    assert run(reports, "overview", filter=["source~GOO"])["summary"]["visits"] == 1
    assert run(reports, "overview", filter=["entry_page=/", "exit_page=/signup"])["summary"]["visits"] == 1
    assert run(reports, "pages", filter=["channel=social"])["summary"]["pageviews"] == 2
    assert run(reports, "overview", filter=["event=purchase"])["summary"]["visits"] == 1
    assert run(reports, "overview", filter=["prop:plan=pro"])["summary"]["visits"] == 1
    assert run(reports, "overview", filter=["goal=Pricing"])["summary"]["visits"] == 2
    assert run(reports, "entry-pages", filter=["utm_campaign=spring"])["rows"][0]["path"] == "/pricing"
    with pytest.raises(ReportError, match="goal"):
        run(reports, "overview", filter=["goal=Nope"])


def test_comparison_is_the_same_report_over_the_earlier_range(reports: Reports) -> None:
    """compare=previous and compare=DATE..DATE give the earlier range's numbers and the change."""
    week_before = (DAY0 - timedelta(days=7)).strftime("%Y-%m-%d")
    doc = run(reports, "overview", compare=f"{week_before}..{week_before}")
    assert doc["compare"]["summary"]["visits"] == 4 and doc["change"]["visits"] == 0.0
    assert len(doc["compare"]["series"]) == 24 and sum(b["visits"] for b in doc["compare"]["series"]) == 4
    prev = run(reports, "overview", compare="previous")
    assert prev["compare"]["summary"]["visits"] == 0 and prev["change"]["visits"] is None


def test_goals_funnels_and_props(reports: Reports) -> None:
    """Conversions per goal with rates; a funnel's steps in order within a visit; a purchase's sku and revenue."""
    goals = {r["goal"]: r for r in run(reports, "goals")["rows"]}
    assert {g: (r["visitors"], r["conversions"], r["conversion_rate"]) for g, r in goals.items()} == {
        "Signup (pro)": (1, 1, 25.0), "Pricing": (2, 2, 50.0), "Purchase": (1, 1, 25.0)}
    f = run(reports, "funnel", step=["page=/", "page=/pricing", "event=Signup"])
    assert [(r["step"], r["visits"], r["dropoff"]) for r in f["rows"]] == [(1, 3, 1), (2, 1, 2), (3, 1, 0)]
    assert f["summary"]["conversion_rate"] == 25.0
    configured = run(reports, "funnel", funnel="Pricing to signup")
    assert [r["visits"] for r in configured["rows"]] == [2, 1]
    p = run(reports, "props", event="purchase", prop="sku")
    assert [(r["value"], r["events"], r["sum_revenue"]) for r in p["rows"]] == [("A1", 1, 49.5)]


def test_a_visit_across_midnight_stays_one_visit(store: Store, reports: Reports) -> None:
    """Two envelopes of one session either side of midnight (SDK 0.2 says when it began) make one visit."""
    encoder = RowEncoder(historic(load_settings(None, environ={})),
                         VisitorHasher(None))
    late = DAY0 + timedelta(days=1) - timedelta(seconds=30)
    first = _pv(late, "/late", entry=True)
    _insert(store, encoder, [({"session_id": "midnight", "session_start": first["ts"], "events": [first]}, "81.2.69.9"),
                             ({"session_id": "midnight", "session_start": first["ts"],
                               "events": [_pv(late + timedelta(minutes=1), "/next")]}, "81.2.69.9")])
    rows = store.query("SELECT count(), any(entry_page), any(exit.2), sum(pageviews) FROM obsd.visits FINAL "
                       "WHERE sid = cityHash64('midnight')").rows
    assert rows == [[1, "/late", "/next", 2]]


# ---- against the raw events table, over tests/traffic.py sessions (rows as the encoder writes them) ----

TRAFFIC_NOW = datetime(2025, 3, 10, 12, 34, 56, tzinfo=UTC)


@pytest.fixture(scope="module")
def traffic_store(store: Store) -> Iterator[Store]:
    s = Store(store.dsn, "t_visits")
    Migrator(s).up()
    traffic.insert(s, traffic.sessions(300, now_ms=int(TRAFFIC_NOW.timestamp() * 1000), span_h=40))
    yield s
    s.command("DROP DATABASE t_visits SYNC")
    s.close()


def _raw_visits(s: Store) -> dict[str, dict[str, Any]]:
    """Visits computed in Python from every raw event row (bots left out)."""
    rows = s.query("SELECT session_id, toUnixTimestamp64Milli(ts), type, toString(path), is_entry, channel, "
                   "device_type, visitor_id, toDate(ts) FROM t_visits.events WHERE NOT is_bot ORDER BY ts").rows
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"pv": 0, "cu": 0, "paths": []})
    for sid, ts, type_, path, entry, channel, device, visitor, day in rows:
        v = out[sid]
        v.setdefault("start", ts)
        v["end"], v["device"] = ts, device
        v.setdefault("visitor", (day, visitor))
        if type_ == "pageview":
            v["pv"] += 1
            v["paths"].append(path)
            if entry:
                v["entry"], v["channel"] = path, channel
        v["cu"] += type_ == "custom"
    return {k: v for k, v in out.items() if v["pv"] or v["cu"]}


@pytest.mark.parametrize("filters", [[], ["device=mobile"], ["channel=search", "device!=desktop"],
                                     ["page=/cart"], ["entry_page~p/"]])
def test_visit_numbers_equal_the_raw_events(traffic_store: Store, filters: list[str]) -> None:
    """Visits, bounce rate, duration, entry pages and channels equal a Python count over the raw rows."""
    r = Reports(traffic_store, "t_visits")
    p = parse_params({"project": "demo", "since": "10d", "filter": filters}, now=TRAFFIC_NOW)
    raw = _raw_visits(traffic_store)
    since, until = p.since.timestamp() * 1000, p.until.timestamp() * 1000

    def keep(v: dict[str, Any]) -> bool:
        ok = since <= v["start"] < until
        for f in filters:
            key, _, value = f.replace("!=", "=").replace("~", "=").partition("=")
            have = {"device": v["device"], "channel": v.get("channel", ""), "entry_page": v.get("entry", "")}.get(key)
            if key == "page":
                ok &= value in v["paths"]
            elif "!=" in f:
                ok &= have != value
            elif "~" in f:
                ok &= value in (have or "")
            else:
                ok &= have == value
        return ok

    visits = [v for v in raw.values() if keep(v)]
    s = r.run("overview", p).summary
    assert s["visits"] == len(visits) > 0
    bounces = [v for v in visits if v["pv"] == 1 and not v["cu"]]
    if not any(f.startswith("page=") for f in filters):
        assert s["bounce_rate"] == round(100 * len(bounces) / len(visits), 1)
    assert abs(s["visit_duration"] - sum(v["end"] - v["start"] for v in visits) / 1000 / len(visits)) <= 0.5
    assert s["pageviews"] == sum(v["pv"] for v in visits)
    entries = defaultdict(int)
    for v in visits:
        entries[v["entry"]] += 1
    got = {row[0]: row[1] for row in r.run("entry-pages", p).table.rows}
    assert got == dict(sorted(entries.items(), key=lambda kv: -kv[1])[:20]) or len(entries) > 20


TRAFFIC_GOALS = ProjectSettings(id="demo", write_key="demo_write_key_0001", goals=(
    GoalSettings(name="Checkout", page="/checkout"), GoalSettings(name="Products", page="/p/*"),
    GoalSettings(name="Cart", event="add_to_cart"), GoalSettings(name="Cart A1", event="add_to_cart",
                                                                   props={"sku": "A1"})))


@pytest.mark.parametrize(("since", "until", "filters"), [
    ("10d", "now", []),  # whole days: the daily rollups
    ("2025-03-09T05:00", "2025-03-10T09:00", []),  # partial days: the hourly rollups
    ("10d", "now", ["device=mobile"]),  # filtered: the events
])
def test_goals_equal_the_raw_events(traffic_store: Store, since: str, until: str, filters: list[str]) -> None:
    """Visitors and conversions per goal, whichever table answers, equal a Python count over the raw rows."""
    r = Reports(traffic_store, "t_visits", projects=[TRAFFIC_GOALS])
    p = parse_params({"project": "demo", "since": since, "until": until, "filter": filters}, now=TRAFFIC_NOW)
    rows = traffic_store.query(
        "SELECT type, name, toString(path), visitor_id, JSONExtractString(props, 'sku'), device_type, session_id "
        "FROM t_visits.events WHERE NOT is_bot AND ts >= {s:DateTime} AND ts < {u:DateTime}",
        parameters={"s": p.since, "u": p.until}).rows
    mobile = {sid for *_, device, sid in rows if device == "mobile"}
    keep = (lambda sid: sid in mobile) if filters else (lambda sid: True)
    match = {"Checkout": lambda t, n, path, sku: t == "pageview" and path == "/checkout",
             "Products": lambda t, n, path, sku: t == "pageview" and path.startswith("/p/"),
             "Cart": lambda t, n, path, sku: t == "custom" and n == "add_to_cart",
             "Cart A1": lambda t, n, path, sku: t == "custom" and n == "add_to_cart" and sku == "A1"}
    want = {}
    for goal, m in match.items():
        hits = [(visitor, sid) for t, n, path, visitor, sku, _, sid in rows if m(t, n, path, sku) and keep(sid)]
        want[goal] = (len({v for v, _ in hits}), len(hits))
    got = {row[0]: (row[1], row[2]) for row in r.run("goals", p).table.rows}
    assert got == want and all(n > 0 for _, n in want.values())


@pytest.mark.parametrize("page", ["page=/cart", "page!=/cart", "page~p/"])
def test_a_page_filter_keeps_every_event_on_that_page(traffic_store: Store, page: str) -> None:
    """On the event reports a page filter keeps the events that happened on the page, of every type (Web Vitals,
    errors, custom events and clicks alike), not only its pageviews."""
    r = Reports(traffic_store, "t_visits")
    p = parse_params({"project": "demo", "since": "10d", "filter": [page], "limit": "100"}, now=TRAFFIC_NOW)
    value = page.split("=")[-1].split("~")[-1]
    cond = {"=": "path = {v:String}", "!": "path != {v:String}", "~": "positionCaseInsensitive(path, {v:String}) > 0"}
    raw = dict(traffic_store.query(
        f"SELECT type, count() FROM t_visits.events WHERE NOT is_bot AND {cond[page[4]]} AND ts >= {{s:DateTime}} "
        "AND ts < {u:DateTime} GROUP BY type", parameters={"v": value, "s": p.since, "u": p.until}).rows)
    by_type: dict[str, int] = defaultdict(int)
    for row in r.run("events", p).table.rows:
        by_type[row[0]] += row[2]
    assert dict(by_type) == raw and {"pageview", "web_vital", "error", "custom"} <= set(raw)
    assert sum(row[2] for row in r.run("errors", p).table.rows) == raw["error"]
    assert sum(row[1] for row in r.run("vitals", p).table.rows) == raw["web_vital"]


def test_every_report_renders_as_terminal_tables(reports: Reports) -> None:
    """`obsd report` draws each report, compared with the week before, with its rows and units: the bounce rate
    in percent, the visit duration in seconds, the change against the earlier range."""
    from rich.console import Console

    from obsd.cli.report_view import TITLES, render
    from obsd.query.reports import REPORTS

    week = {"compare": f"{(DAY0 - timedelta(days=7)):%Y-%m-%d}..{(DAY0 - timedelta(days=7)):%Y-%m-%d}"}
    for name in REPORTS:
        doc = run(reports, name, **({} if name in ("recent", "realtime") else week))
        console = Console(record=True, width=200)
        console.print(render(doc))
        text = console.export_text()
        assert text.startswith(TITLES[name]), (name, text[:200])
        if name == "overview":
            s = doc["summary"]
            assert re.search(rf"bounce\s+rate:\s+{s['bounce_rate']:.1f}%\s+\([+-]?[\d.]+%\)", text), text[:600]
            assert re.search(rf"visit\s+duration:\s+{s['visit_duration']}s\s+\(", text), text[:600]
        if name == "entry-pages":
            assert "/pricing" in text and "100.0%" in text
        if name == "goals":
            assert "Pricing" in text and "Signup (pro)" in text


def test_the_path_parameter_holds_under_filters(traffic_store: Store) -> None:
    """pages and vitals with path= keep to that page whether a filter sends them to the events or not."""
    r = Reports(traffic_store, "t_visits")
    for filters in ([], ["device=mobile"]):
        p = parse_params({"project": "demo", "since": "10d", "path": "/cart", "filter": filters}, now=TRAFFIC_NOW)
        mobile = " AND device_type = 'mobile'" if filters else ""
        raw = dict(traffic_store.query(
            f"SELECT type, count() FROM t_visits.events WHERE NOT is_bot AND path = '/cart'{mobile} "
            "AND ts >= {s:DateTime} AND ts < {u:DateTime} GROUP BY type", parameters={"s": p.since, "u": p.until}).rows)
        pages = r.run("pages", p).table.rows
        assert [(row[0], row[1]) for row in pages] == [("/cart", raw["pageview"])], filters
        assert sum(row[1] for row in r.run("vitals", p).table.rows) == raw["web_vital"], filters
