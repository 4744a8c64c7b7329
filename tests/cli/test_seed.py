"""`obsd seed`: deterministic, realistic sample traffic, through the daemon or straight into the store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from obsd.cli.seed_load import SeedPlan, _import_shard, _shards, import_lines
from obsd.cli.seed_traffic import VITALS
from obsd.ingest.enrich import Client, RowEncoder
from obsd.ingest.importer import historic
from obsd.ingest.wire import Decoded
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import Settings
from obsd.store.client import Store
from tests.harness import ADMIN_TOKEN, Daemon, envelope, event, free_port, http, write_config

END = 1_764_288_000.0  # a fixed window end keeps these tests independent of the clock


def test_same_seed_same_events_other_seed_other_events() -> None:
    """A seed and window end fix every event, ids included; another seed gives other traffic."""
    a = import_lines(list(SeedPlan(3000, 7, 42, END).sessions()))
    b = import_lines(list(SeedPlan(3000, 7, 42, END).sessions()))
    c = import_lines(list(SeedPlan(3000, 7, 43, END).sessions()))
    assert a == b
    assert a != c


def test_worker_shards_make_the_same_events_as_one_process() -> None:
    """Sharding across worker processes does not change the output (so --workers is only about speed)."""
    plan = SeedPlan(30_000, 3, 5, END)
    one = b"".join(s.data for s in _shards(plan, _import_shard, 1))
    two = b"".join(s.data for s in _shards(plan, _import_shard, 2))
    assert one == two


def test_generated_traffic_has_the_promised_shape() -> None:
    """Exactly N events in the window; sessions start with a pageview; vitals, errors, purchases look real."""
    plan = SeedPlan(20_000, 14, 7, END)
    sessions = list(plan.sessions())
    events = [e for s in sessions for e in s.envelope.events]
    assert len(events) == 20_000
    assert len({e.id for e in events}) == 20_000
    assert all(plan.end - 14 * 86400 <= e.ts / 1000 <= plan.end + 86400 for e in events)
    assert all(s.envelope.events[0].type == "pageview" for s in sessions)
    types = Counter(e.type for e in events)
    assert set(types) == {"pageview", "click", "scroll", "error", "web_vital", "custom"}
    assert 0.001 < types["error"] / len(events) < 0.02
    thresholds = {name: (good, poor) for name, _, _, good, poor in VITALS}
    for e in events:
        if e.type == "web_vital":
            good, poor = thresholds[str(e.name)]
            v = float(e.value or 0)
            assert e.rating == ("good" if v <= good else "needs-improvement" if v <= poor else "poor")
    lcp = sorted(float(e.value or 0) for e in events if e.name == "LCP")
    assert 1200 < lcp[len(lcp) // 2] < 3500, "median LCP should sit around 2 s"
    purchases = [e for e in events if e.type == "custom" and e.name == "purchase"]
    assert purchases and all((e.props or {}).get("amount", 0) > 0 for e in purchases)
    assert any(e.stack for e in events if e.type == "error")
    devices = Counter(s.client.user_agent.split("(")[1].split(";")[0] for s in sessions)
    assert len(devices) >= 5, "a device mix, not one browser"
    campaigns = {e.url.split("utm_campaign=")[1] for e in events if e.url and "utm_campaign=" in e.url}
    assert {"spring_sale", "brand"} <= campaigns
    # Every event passes the real ingest validation and enrichment.
    enc = RowEncoder(historic(Settings()), VisitorHasher(None))
    rejected = sum(len(enc.encode("demo", Decoded(s.envelope, None, []),
                                  Client(s.client.ip, s.client.user_agent, s.client.country), END).rejected)
                   for s in sessions)
    assert rejected == 0


def test_seed_straight_into_the_store(tmp_path: Path) -> None:
    """With no daemon, `obsd seed` writes into the embedded store: N rows, over D days, right project."""
    cfg = write_config(tmp_path / "obsd.toml", tmp_path / "data", free_port())
    r = subprocess.run([sys.executable, "-m", "obsd.cli", "seed", "--config", str(cfg), "--events", "12000",
                        "--days", "30", "--project", "shop", "--seed", "3", "--via", "store"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "seeded 12,000 events" in r.stdout and "into chdb://" in r.stdout
    assert "12000/12000" in r.stderr  # the progress bar finished
    settings_dsn = f"chdb://{(tmp_path / 'data' / 'clickhouse').resolve()}"
    store = Store(settings_dsn, "obsd")
    try:
        res = store.query("SELECT count(), uniqExact(project_id), any(project_id), "
                          "dateDiff('day', min(ts), max(ts)), uniqExact(session_id), "
                          "countIf(type = 'custom' AND name = 'purchase'), uniqExact(browser), "
                          "countIf(utm_campaign != ''), countIf(error_stack != '') FROM obsd.events")
    finally:
        store.close()
    count, projects, project, span, sessions, purchases, browsers, campaigns, stacks = res.rows[0]
    assert (count, projects, project) == (12000, 1, "shop")
    assert span >= 25
    assert sessions > 200 and purchases > 0 and browsers >= 4 and campaigns > 0 and stacks > 0


def test_seed_through_the_daemon_loads_history_past_the_ingest_age_limit(fresh_daemon: Daemon) -> None:
    """With a daemon running, `obsd seed` goes through its admin import: 30 days of history arrive."""
    d = fresh_daemon
    r = subprocess.run([sys.executable, "-m", "obsd.cli", "seed", "--config", str(d.config), "--events", "8000",
                        "--days", "30", "--seed", "9"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "through the daemon" in r.stdout
    assert d.wait_for("SELECT count() FROM obsd.events", 8000, timeout=30) == 8000
    oldest_days = d.scalar("SELECT dateDiff('day', min(ts), now()) FROM obsd.events")
    assert oldest_days > 7, "older than limits.max_event_age_s, which /v1/events would refuse"
    assert d.scalar("SELECT any(project_id) FROM obsd.events") == "demo"
    assert d.scalar("SELECT countIf(visitor_id = 0) FROM obsd.events") == 0  # enriched like live traffic
    status = http("GET", d.base + "/v1/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert status["metrics"]["obsd_events_imported_total"] == 8000


def test_import_endpoint_guards(fresh_daemon: Daemon) -> None:
    """The import wants the admin token and a valid project, and still refuses invalid events."""
    d = fresh_daemon
    old = int((time.time() - 20 * 86400) * 1000)
    line = json.dumps({**envelope([event(ts=old), event("web_vital", ts=old, name="NOPE")]),
                       "client": {"ip": "203.0.113.9", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
                                  "country": "de"}}).encode()
    url = d.base + "/v1/admin/import?project=demo"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert http("POST", url, line).status == 401
    assert http("POST", d.base + "/v1/admin/import?project=Bad!", line, auth).status == 400
    r = http("POST", url, line + b"\nnot json\n", auth)
    assert r.status == 202, r.body
    assert r.json() == {"accepted": 1, "duplicate": 0, "rejected": 2,
                        "reasons": {"invalid_vital": 1, "invalid_json": 1}}
    assert d.wait_for("SELECT count() FROM obsd.events WHERE country = 'DE'", 1) == 1
    # The same old event through the public endpoint is refused for its age.
    assert d.post(envelope([event(ts=old)])).json()["rejected"][0]["reason"].startswith("event 0: ts is more")


def test_seeded_data_looks_like_a_real_site_in_the_reports(tmp_path: Path) -> None:
    """Seeded visitors come back ~1.4 times a day (not one visitor per visit, not 4 for 150), every channel,
    campaign tags, cities and a checkout funnel show up in `obsd report`."""
    cfg = write_config(tmp_path / "obsd.toml", tmp_path / "data", free_port())
    r = subprocess.run([sys.executable, "-m", "obsd.cli", "seed", "--config", str(cfg), "--events", "30000",
                        "--days", "10", "--via", "store"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr

    def report(*args: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "obsd.cli", "report", *args, "--config", str(cfg),
                              "--since", "10d", "--format", "json"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        doc: dict[str, Any] = json.loads(out.stdout)
        return doc

    s = report("overview")["summary"]
    assert 1.1 <= s["visits"] / s["visitors"] <= 1.8, s
    assert 15 < s["bounce_rate"] < 60 and s["visit_duration"] > 30 and s["views_per_visit"] > 1.5
    channels = {r["channel"] for r in report("sources", "--by", "channel")["rows"]}
    assert channels == {"direct", "search", "social", "email", "paid", "referral"}
    assert {r["key"] for r in report("utm")["rows"]} == {"utm_source", "utm_medium", "utm_campaign", "utm_content",
                                                         "utm_term"}
    cities = report("locations", "--by", "city")["rows"]
    assert len(cities) >= 10 and all(r["city"] and r["region"].startswith(r["country"]) for r in cities)
    funnel = report("funnel", "--step", "page=/cart", "--step", "page=/checkout", "--step", "event=purchase")
    reached = [r["visits"] for r in funnel["rows"]]
    assert reached[0] > reached[1] > reached[2] > 0
    releases = {rel for r in report("errors", "--limit", "100")["rows"] for rel in r["releases"]}
    assert releases <= {"v1.4.0", "v1.5.0", "v1.6.0"} and len(releases) >= 2
    assert len(report("props", "--event", "purchase")["summary"]["keys"]) >= 3
