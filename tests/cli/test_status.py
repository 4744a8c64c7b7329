"""`obsd status`: one snapshot for scripts, the live view's rates, and what happens with no daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from obsd.cli.status_view import StatusView, parse_key
from tests.harness import ADMIN_TOKEN, Daemon, envelope, event, free_port, http, write_config


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "obsd.cli", "status", *args], capture_output=True, text=True,
                          timeout=60, env={**__import__("os").environ, "COLUMNS": "160"})


def test_status_once_shows_a_ready_daemon_with_its_counts(daemon: Daemon) -> None:
    """`obsd status --once` exits 0 for a ready daemon and shows accepted events, store health and fills."""
    daemon.post(envelope([event(), event("custom")]))
    daemon.post(envelope([event(type_="bogus")]))
    r = run("--config", str(daemon.config), "--once")
    assert r.returncode == 0, r.stderr
    assert "● ready" in r.stdout
    for label in ("accepted (202)", "inserted", "ring (events)", "spool", "store", "Rejects by reason",
                  "unknown_type"):
        assert label in r.stdout, label


def test_status_shows_current_visitors(daemon: Daemon) -> None:
    """The visitors with an event in the last 5 minutes, per project, as the realtime report counts them."""
    daemon.post(envelope([event()], session_id="now1"), headers={
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"})
    daemon.wait_for("SELECT count() FROM obsd.events WHERE session_id = 'now1'", 1)
    r = run("--config", str(daemon.config), "--once")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("current visitors"))
    n = int(line.split("demo ")[1].split()[0].replace(",", ""))
    assert n >= 1


def test_status_once_json_is_the_status_document(daemon: Daemon) -> None:
    """`--once --json` prints the raw document: ready, checks, limits, metrics, tail viewers."""
    def doc() -> dict[str, Any]:
        r = run("--config", str(daemon.config), "--once", "--json")
        assert r.returncode == 0
        return dict(json.loads(r.stdout))

    before = doc()
    assert before["ready"] is True and before["checks"]["store"] == "ok"
    assert before["limits"]["ring_max_events"] > 0 and before["tail"] == []
    assert daemon.post(envelope([event(), event(), event("custom")])).status == 202
    after = doc()
    accepted = "obsd_events_accepted_total"
    assert after["metrics"][accepted] - before["metrics"][accepted] == 3


def test_status_without_a_daemon_fails_with_a_clear_message(tmp_path: Path) -> None:
    """No daemon at the configured address: exit code 5 and the address in the message."""
    port = free_port()
    cfg = write_config(tmp_path / "obsd.toml", tmp_path / "data", port)
    r = run("--config", str(cfg), "--once")
    assert r.returncode == 5
    assert f"127.0.0.1:{port}" in r.stderr


def doc(uptime: float, accepted: float, req_sum: float, req_count: float) -> dict[str, object]:
    return {"version": "t", "ready": True, "uptime_s": uptime, "checks": {"store": "ok"},
            "limits": {"ring_max_events": 100, "ring_max_bytes": 1000, "max_spool_bytes": 1000},
            "metrics": {"obsd_events_accepted_total": accepted, "obsd_ingest_request_seconds_sum": req_sum,
                        "obsd_ingest_request_seconds_count": req_count, "obsd_ring_events": 50.0,
                        "obsd_events_rejected_total{reason=unknown_type}": 3.0}}


def test_live_view_rates_come_from_the_difference_between_snapshots() -> None:
    """Rates and mean latencies are per interval; a restart (uptime going back) starts them over."""
    v = StatusView()
    v.update(doc(10, 100, 1.0, 10))
    assert v.rate("obsd_events_accepted_total") == 10.0  # since start
    v.update(doc(12, 300, 1.4, 30))
    assert v.rate("obsd_events_accepted_total") == 100.0
    mean = v.mean("obsd_ingest_request_seconds")
    assert mean is not None and abs(mean - 0.02) < 1e-9
    v.update(doc(1, 5, 0.0, 0))
    assert v.previous is None and v.rate("obsd_events_accepted_total") == 5.0
    assert parse_key("obsd_events_rejected_total{reason=unknown_type}") == (
        "obsd_events_rejected_total", {"reason": "unknown_type"})


def test_realtime_pages_follow_the_limit(daemon: Daemon) -> None:
    """The realtime report's pages are the top `limit` (they were always 10 whatever was asked)."""
    ua = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"}
    for i in range(3):
        assert daemon.post(envelope([event(url=f"https://shop.example/live/{i}")], session_id=f"live{i}"),
                           headers=ua).status == 202
    daemon.wait_for("SELECT count() FROM obsd.events WHERE session_id LIKE 'live%'", 3)

    def pages(**limit: str) -> list[dict[str, Any]]:
        r = http("GET", f"{daemon.base}/v1/stats/realtime?{urlencode({'project': 'demo', **limit})}",
                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status == 200, r.body
        rows: list[dict[str, Any]] = r.json()["rows"]
        return rows

    assert len(pages(limit="2")) == 2
    assert {f"/live/{i}" for i in range(3)} <= {row["path"] for row in pages()}
