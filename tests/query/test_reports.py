"""Reports over the rollups, checked against the same questions asked of the raw events table."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from obsd.query.params import ReportError, ReportParams, parse_params
from obsd.query.reports import REPORTS, Reports, rating
from obsd.store.client import Store
from obsd.store.migrations import Migrator
from obsd.vocabulary import THRESHOLDS
from tests import traffic

NOW = datetime(2025, 3, 10, 12, 34, 56, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
SESSIONS = traffic.sessions(300, now_ms=NOW_MS, span_h=40)


@pytest.fixture(scope="module")
def dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One chDB data directory for the module (chDB runs one engine per process); tests use own databases."""
    return f"chdb://{tmp_path_factory.mktemp('reports')}/ch"


@pytest.fixture(scope="module")
def store(dsn: str) -> Iterator[Store]:
    """The store with the migrations applied and the sessions inserted."""
    s = Store(dsn, "obsd")
    Migrator(s).up()
    traffic.insert(s, SESSIONS, token="batch-1")
    yield s
    s.close()


@pytest.fixture
def scratch(dsn: str, store: Store) -> Iterator[Store]:
    """A migrated database of this test's own, in the module's data directory."""
    s = Store(dsn, "t_" + uuid.uuid4().hex[:12])
    Migrator(s).up()
    yield s
    s.command(f"DROP DATABASE {s.database} SYNC")
    s.close()


@pytest.fixture(scope="module")
def reports(store: Store) -> Reports:
    return Reports(store, "obsd")


def _params(**raw: str) -> ReportParams:
    return parse_params({"project": "demo", "since": "3d", **raw}, now=NOW)


def _raw(store: Store, sql: str, p: ReportParams) -> list[list[Any]]:
    where = (f"project_id = 'demo' AND ts >= toDateTime({int(p.since.timestamp())}, 'UTC') "
             f"AND ts < toDateTime({int(p.until.timestamp())}, 'UTC') AND NOT is_bot")
    return store.query(sql.replace("$where", where)).rows


def test_overview_matches_raw_events(store: Store, reports: Reports) -> None:
    """Totals and every hourly bucket equal counts and uniques over the raw events (bots left out): pageviews,
    events and errors as they happened; visitors and sessions of the visits (sessions with a pageview or a custom
    event) that began in the range or bucket."""
    p = _params(since="48h", bucket="hour")
    rep = reports.overview(p)
    (pv, ev, err), = _raw(store, "SELECT countIf(type = 'pageview'), count(), countIf(type = 'error') "
                          "FROM obsd.events WHERE $where", p)
    visits = (f"SELECT toStartOfHour(s) AS h, toDate(s) AS d, v FROM (SELECT session_id, min(ts) AS s, any(visitor_id) "
              "AS v, countIf(type IN ('pageview', 'custom')) AS n FROM obsd.events WHERE project_id = 'demo' "
              "AND NOT is_bot AND session_id != '' GROUP BY session_id "
              f"HAVING n > 0 AND s >= toDateTime({int(p.since.timestamp())}, 'UTC') "
              f"AND s < toDateTime({int(p.until.timestamp())}, 'UTC'))")
    (ses, vis), = store.query(f"SELECT count(), uniqExact(d, v) FROM ({visits})").rows
    assert {k: rep.summary[k] for k in ("pageviews", "visitors", "sessions", "events", "errors",
                                        "views_per_session")} == {
        "pageviews": pv, "visitors": vis, "sessions": ses, "events": ev, "errors": err,
        "views_per_session": round(pv / ses, 2)}
    assert pv > 300 and 0 < err < ev and rep.summary["visits"] == ses
    raw = {r[0].replace(tzinfo=UTC): r[1] for r in _raw(
        store, "SELECT toStartOfHour(ts) AS h, countIf(type = 'pageview') FROM obsd.events WHERE $where GROUP BY h", p)}
    per_hour = {r[0].replace(tzinfo=UTC): tuple(r[1:]) for r in store.query(
        f"SELECT h, uniqExact(d, v), count() FROM ({visits}) GROUP BY h").rows}
    assert len(rep.table.rows) == 48 and rep.table.rows[0][0] == p.since
    for bucket, pageviews, visitors, sessions, *_ in rep.table.rows:
        assert pageviews == raw.get(bucket, 0), bucket
        assert (visitors, sessions) == per_hour.get(bucket, (0, 0)), bucket
    assert sum(r[1] for r in rep.table.rows) == pv


def test_daily_buckets_for_longer_ranges(store: Store, reports: Reports) -> None:
    """A 7-day range is bucketed by day (from the daily rollup) and equals raw per-day counts and uniques."""
    p = _params(since="7d")
    rep = reports.overview(p)
    assert rep.params.bucket == "day" and len(rep.table.rows) == 7
    assert rep.table.rows[-1][0] == datetime(2025, 3, 10, tzinfo=UTC)
    raw = {r[0]: r[1:] for r in _raw(
        store, "SELECT toDate(ts) AS d, count(), uniq(visitor_id), uniq(session_id) FROM obsd.events "
        "WHERE $where AND type = 'pageview' GROUP BY d", p)}
    assert {r[0].date(): tuple(r[1:4]) for r in rep.table.rows if r[1]} == {d: tuple(v) for d, v in raw.items()}
    (vis, ses), = _raw(store, "SELECT uniq(visitor_id), uniq(session_id) FROM obsd.events "
                       "WHERE $where AND type = 'pageview'", p)
    assert (rep.summary["visitors"], rep.summary["sessions"]) == (vis, ses)
    hourly = reports.overview(_params(since="7d", until="2025-03-10T13:00"))  # a closed range: events_hourly
    assert hourly.summary == rep.summary and [r[:4] for r in hourly.table.rows] == [r[:4] for r in rep.table.rows]


def test_pages_referrers_devices_match_raw(store: Store, reports: Reports) -> None:
    """Top pages, referrers (internal navigation left out) and devices equal raw group-bys."""
    p = _params(limit="100")
    pages = reports.pages(p)
    raw = _raw(store, "SELECT path, count(), uniq(visitor_id), uniq(session_id) FROM obsd.events "
               "WHERE $where AND type = 'pageview' GROUP BY path ORDER BY count() DESC, path", p)
    assert [r[:4] for r in pages.table.rows] == raw
    assert {r[0] for r in pages.table.rows} == set(traffic.PATHS)
    assert abs(sum(r[4] for r in pages.table.rows) - 1) < 0.001
    refs = reports.referrers(p)
    raw = _raw(store, "SELECT if(referrer_host = '', '(direct)', referrer_host) AS r, count(), uniq(visitor_id) "
               "FROM obsd.events WHERE $where AND type = 'pageview' AND referrer_host != hostname "
               "GROUP BY r ORDER BY count() DESC, r", p)
    assert [r[:3] for r in refs.table.rows] == raw
    assert traffic.HOST not in {r[0] for r in refs.table.rows}
    assert refs.summary["direct"] == dict((r[0], r[1]) for r in raw)["(direct)"]
    devices = reports.devices(p)
    for dim, col in (("device", "device_type"), ("browser", "browser"), ("os", "os")):
        raw = _raw(store, f"SELECT {col}, count(), uniq(visitor_id) FROM obsd.events WHERE $where "
                   f"AND type = 'pageview' GROUP BY {col} ORDER BY count() DESC, {col}", p)
        assert [r[1:4] for r in devices.table.rows if r[0] == dim] == raw
    assert "bot" not in {r[1] for r in devices.table.rows}


def test_vitals_p75_and_rating_shares_match_raw(store: Store, reports: Reports) -> None:
    """p50/p75/p95 equal quantiles over raw values; shares follow Google's thresholds applied in Python."""
    p = _params()
    rep = reports.vitals(p)
    assert [r[0] for r in rep.table.rows] == ["LCP", "INP", "CLS", "FCP", "TTFB"]
    raw = {m: (q, vals) for m, q, vals in _raw(
        store, "SELECT name, quantiles(0.5, 0.75, 0.95)(value), groupArray(value) FROM obsd.events "
        "WHERE $where AND type = 'web_vital' GROUP BY name", p)}
    for metric, samples, p50, p75, p95, rate, good, ni, poor in rep.table.rows:
        q, values = raw[metric]
        assert samples == len(values)
        assert [p50, p75, p95] == pytest.approx(q, rel=1e-9)
        counts = Counter(rating(metric, v) for v in values)
        assert good == round(counts["good"] / samples, 4)
        assert poor == round(counts["poor"] / samples, 4)
        assert ni == round(counts["needs-improvement"] / samples, 4)
        assert rate == rating(metric, p75)


def test_vitals_by_path_and_path_filter(reports: Reports) -> None:
    """by=path splits each metric per page; path=... narrows to one page and agrees with that split."""
    by_path = reports.vitals(_params(by="path", limit="1000"))
    assert by_path.table.columns[:2] == ["path", "metric"]
    one = reports.vitals(_params(path="/cart"))
    expected = {r[1]: r[2] for r in by_path.table.rows if r[0] == "/cart"}
    assert {r[0]: r[1] for r in one.table.rows} == expected


def test_errors_group_by_fingerprint(store: Store, reports: Reports) -> None:
    """Each bug is one group whatever its ids, numbers, lines and bundle hashes; counts match the traffic."""
    p = _params()
    rep = reports.errors(p)
    in_range = [s for s in SESSIONS[:300] if any(
        p.since.timestamp() * 1000 <= e["ts"] < p.until.timestamp() * 1000 for e in s.events if e["type"] == "error")]
    truth = Counter(b for s in in_range for b in s.bugs)
    assert len(rep.table.rows) == len(truth) == 3
    by_message = {r[1].split(" ")[0]: r for r in rep.table.rows}
    for bug, prefix in (("undefined-id", "Cannot"), ("fetch", "Failed"), ("checkout", "Payment")):
        row = dict(zip(rep.table.columns, by_message[prefix], strict=True))
        assert row["events"] == truth[bug]
        assert row["sessions"] == len({s.session_id for s in in_range if bug in s.bugs})
        assert row["first_seen"] <= row["last_seen"] and len(row["fingerprint"]) == 16
        assert row["stack"].count("\n") >= 1 and row["path"].startswith("/")
    raw_total, = _raw(store, "SELECT count() FROM obsd.events WHERE $where AND type = 'error'", p)
    assert rep.summary["errors"] == raw_total[0] and rep.summary["groups"] == 3


def test_fingerprint_separates_different_bugs(scratch: Store) -> None:
    """Another message, or the same message thrown from another function, is another group."""
    s = scratch
    stack = "Error: boom\n    at {fn} (https://x.example/a.{h}.js:{l}:3)"
    variants = [("boom 1", "f", "1a2b3c4d5e", 10), ("boom 22", "f", "ffee001122", 99),  # same bug
                ("boom d60dd02c-a9e2-4728-b[card]fd", "f", "0a0b0c0d0e", 7),  # same bug, id half-scrubbed
                ("bang 1", "f", "1a2b3c4d5e", 10),  # other message
                ("boom 1", "g", "1a2b3c4d5e", 10)]  # other frame
    rows = [{"project_id": "demo", "event_id": str(uuid.uuid4()), "type": "error", "ts": NOW.timestamp(),
             "received_at": NOW.timestamp(), "session_id": f"s{i}", "error_message": m,
             "error_stack": stack.format(fn=fn, h=h, l=line)} for i, (m, fn, h, line) in enumerate(variants)]
    s.insert_ndjson("events", "\n".join(json.dumps(r) for r in rows).encode())
    rep = Reports(s, s.database).errors(_params())
    assert sorted(r[2] for r in rep.table.rows) == [1, 1, 3]


def test_events_report_counts_types_and_names(store: Store, reports: Reports) -> None:
    """Counts per type and name equal the raw table; type=... filters."""
    p = _params(limit="100")
    rep = reports.events(p)
    raw = _raw(store, "SELECT type, name, count() FROM obsd.events WHERE $where GROUP BY type, name "
               "ORDER BY count() DESC, type, name", p)
    assert [r[:3] for r in rep.table.rows] == raw
    only = reports.events(_params(type="custom"))
    assert [(r[0], r[1]) for r in only.table.rows] == [("custom", "add_to_cart")]


def test_recent_lists_newest_events_first(store: Store, reports: Reports) -> None:
    """The live strip's report: newest first, bots left out, capped by limit."""
    rep = reports.recent(_params(since="2h", limit="15"))
    raw = _raw(store, "SELECT ts, type FROM obsd.events WHERE $where ORDER BY ts DESC, event_id LIMIT 15",
               _params(since="2h"))
    assert [(r[0], r[1]) for r in rep.table.rows] == [(r[0], r[1]) for r in raw]
    assert rep.table.rows[0][0] >= rep.table.rows[-1][0]


def test_replayed_batch_is_not_counted_twice(store: Store, reports: Reports) -> None:
    """A batch re-sent with its dedup token (spool replay) leaves every rollup unchanged."""
    before = {name: reports.run(name, _params()).to_json() for name in REPORTS if name != "recent"}
    traffic.insert(store, SESSIONS, token="batch-1")
    after = {name: reports.run(name, _params()).to_json() for name in REPORTS if name != "recent"}
    assert after == before


def test_backfill_gives_the_same_reports_as_the_views(scratch: Store) -> None:
    """Rolling back and re-applying the rollups rebuilds them from stored events with identical results."""
    s = scratch
    m = Migrator(s)
    traffic.insert(s, SESSIONS[:120])
    r = Reports(s, s.database)
    before = {name: r.run(name, _params()).to_json() for name in REPORTS}
    assert before["overview"]["summary"]["pageviews"] > 0
    later = sorted((x.version for x in m.migrations if x.version > 1), reverse=True)
    assert [x.version for x in m.down(len(later))] == later  # everything built on the events table
    m.up()
    assert {name: r.run(name, _params()).to_json() for name in REPORTS} == before


@pytest.mark.parametrize("metric", sorted(THRESHOLDS))
def test_rollup_rates_boundaries_like_python(scratch: Store, metric: str) -> None:
    """Values exactly at and just past each threshold are rated the same by the view and by rating()."""
    good, poor = THRESHOLDS[metric]
    eps = 0.001 if metric == "CLS" else 0.1
    values = [0, good, good + eps, poor, poor + eps]
    s = scratch
    rows = [{"project_id": "demo", "event_id": str(uuid.uuid4()), "type": "web_vital", "name": metric,
             "value": v, "ts": NOW.timestamp(), "received_at": NOW.timestamp()} for v in values]
    s.insert_ndjson("events", "\n".join(json.dumps(r) for r in rows).encode())
    (_, n, *_q, _rate, g, ni, pr), = Reports(s, s.database).vitals(_params()).table.rows
    expected = Counter(rating(metric, v) for v in values)
    assert (n, g, ni, pr) == (5, expected["good"] / 5, expected["needs-improvement"] / 5, expected["poor"] / 5)
    assert expected == {"good": 2, "needs-improvement": 2, "poor": 1}


def test_relative_and_absolute_ranges() -> None:
    """24h is 24 whole hours up to the current one; 7d is 7 days up to today; a DATE until includes the day."""
    p = parse_params({"project": "demo"}, now=NOW)
    assert (p.since, p.until, p.bucket) == (datetime(2025, 3, 9, 13, tzinfo=UTC), datetime(2025, 3, 10, 13, tzinfo=UTC),
                                            "hour")
    assert len(p.buckets()) == 24
    p = parse_params({"project": "demo", "since": "7d"}, now=NOW)
    assert (p.since, p.until, p.bucket) == (datetime(2025, 3, 4, tzinfo=UTC), datetime(2025, 3, 10, 13, tzinfo=UTC),
                                            "day")
    p = parse_params({"project": "demo", "since": "2025-01-01", "until": "2025-01-31"}, now=NOW)
    assert p.until - p.since == timedelta(days=31)
    p = parse_params({"project": "demo", "since": "2025-01-01T10:30", "until": "2025-01-01T12:15Z"}, now=NOW)
    assert (p.since.hour, p.until.hour) == (10, 13)


@pytest.mark.parametrize(("raw", "needle"), [
    ({"since": "yesterday"}, "since='yesterday'"),
    ({"until": "7d"}, "until='7d'"),
    ({"since": "2025-02-01", "until": "2025-01-01"}, "must be after"),
    ({"since": "0h"}, "at least 1h"),
    ({"limit": "0"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"bucket": "week"}, "bucket"),
    ({"since": "400d", "bucket": "hour"}, "bucket=day"),
    ({"path": "cart"}, "path must start with /"),
    ({"type": "teleport"}, "type='teleport'"),
    ({"by": "bogus"}, "by='bogus'"),
    ({"project": "a b"}, "project id"),
    ({"color": "red"}, "unknown parameter color"),
])
def test_bad_parameters_are_refused_with_a_reason(raw: dict[str, str], needle: str) -> None:
    """Each bad parameter is refused with a message naming it and what is accepted."""
    with pytest.raises(ReportError, match=None) as exc:
        parse_params({"project": "demo", **raw}, now=NOW)
    assert needle in str(exc.value)


def test_project_is_required_when_several_exist() -> None:
    """Without a default project the caller must name one."""
    with pytest.raises(ReportError, match="project is required"):
        parse_params({}, now=NOW)
    assert parse_params({}, default_project="demo", now=NOW).project == "demo"


def test_other_projects_and_out_of_range_events_are_not_counted(store: Store, reports: Reports) -> None:
    """Events of another project, or outside [since, until), never show up in a report."""
    other = traffic.sessions(5, now_ms=NOW_MS, seed=99, bots=0)
    traffic.insert(store, other, project="other")
    old = traffic.sessions(5, now_ms=NOW_MS - 30 * 86_400_000, seed=98, bots=0)
    traffic.insert(store, old)
    p = _params()
    (pv,), = _raw(store, "SELECT count() FROM obsd.events WHERE $where AND type = 'pageview'", p)
    assert reports.overview(p).summary["pageviews"] == pv
    assert reports.overview(parse_params({"project": "other", "since": "3d"}, now=NOW)).summary["pageviews"] == sum(
        1 for s in other for e in s.events if e["type"] == "pageview")


@pytest.mark.parametrize("name", REPORTS)
def test_a_project_without_data_gives_named_columns_and_zeros(reports: Reports, name: str) -> None:
    """An empty project answers every report with its columns, no rows (a zero-filled series) and zero totals."""
    doc = reports.run(name, parse_params({"project": "empty", "since": "2d", "bucket": "day"}, now=NOW)).to_json()
    assert doc["columns"] and all(isinstance(c, str) for c in doc["columns"])
    assert all(v in (0, 0.0) for v in doc["summary"].values())
    if name == "overview":
        assert len(doc["rows"]) == 2 and all(r["pageviews"] == 0 for r in doc["rows"])
    else:
        assert doc["rows"] == []
    json.dumps(doc)
