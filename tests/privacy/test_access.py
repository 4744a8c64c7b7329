"""Who may read what, at the edges: CORS on error answers, relayed clients, the /metrics token, the token file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.harness import ADMIN_TOKEN, Daemon, envelope, event, http, write_config

FOREIGN = "https://evil.example"


def test_error_answers_are_readable_only_by_allowed_origins(daemon: Daemon) -> None:
    """A 401/403 for a foreign page carries no Access-Control-Allow-Origin; errors for an allowed one do."""
    allowed = daemon.base  # the harness project allows its own origin
    cases = [
        (daemon.post(envelope([event()]), key="not-a-key-at-all", headers={"Origin": FOREIGN}), 401, None),
        (daemon.post(envelope([event()]), key="", headers={"Origin": FOREIGN}), 401, None),
        (daemon.post(envelope([event()]), headers={"Origin": FOREIGN}), 403, None),
        (daemon.post(envelope([event()]), key="not-a-key-at-all", headers={"Origin": allowed}), 401, None),
        (daemon.post(None, raw=b"{", headers={"Origin": allowed}), 400, allowed),
        (daemon.post(envelope([event()]), headers={"Origin": allowed, "Content-Encoding": "lzma"}), 415, allowed),
        (daemon.post(envelope([event()]), headers={"Origin": allowed}), 202, allowed),
    ]
    for r, status, acao in cases:
        assert r.status == status, r.body[:200]
        assert r.headers.get("Access-Control-Allow-Origin") == acao, (status, r.headers)
        if status >= 400:
            assert set(r.json()) == {"status", "error", "reason"}
    assert FOREIGN not in json.dumps([dict(r.headers) for r, _, _ in cases])


def test_forwarding_headers_naming_a_remote_client_make_a_request_remote(daemon: Daemon) -> None:
    """From loopback, but relayed for someone else (XFF, X-Real-IP, Forwarded): 403 for admin, stats, metrics."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for header in ({"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "127.0.0.1, 203.0.113.7"},
                   {"X-Real-IP": "203.0.113.7"}, {"Forwarded": 'for="[2001:db8::1]:443";proto=https'},
                   {"Forwarded": "for=198.51.100.9"}):
        for path in ("/v1/admin/status", "/v1/stats", "/metrics"):
            r = http("GET", daemon.base + path, headers={**admin, **header})
            assert r.status == 403 and r.json()["error"] in ("admin_remote", "metrics_remote"), (path, header)
    for header in ({}, {"X-Forwarded-For": "127.0.0.1"}, {"Forwarded": "for=[::1]"}):
        assert http("GET", daemon.base + "/v1/admin/status", headers={**admin, **header}).status == 200
        assert http("GET", daemon.base + "/metrics", headers=header).status == 200


def test_metrics_can_require_a_token(tmp_path: Path) -> None:
    """With server.metrics_token, /metrics wants it, and then answers relayed clients too."""
    with Daemon(tmp_path, sections={"server": {"metrics_token": "scrape-token-0001"}}) as d:
        assert http("GET", d.base + "/metrics").status == 401
        assert http("GET", d.base + "/metrics", headers={"Authorization": "Bearer wrong"}).status == 401
        r = http("GET", d.base + "/metrics", headers={"Authorization": "Bearer scrape-token-0001",
                                                     "X-Forwarded-For": "203.0.113.7"})
        assert r.status == 200 and b"obsd_events_accepted_total" in r.body


def test_an_empty_admin_token_file_is_a_clear_error(tmp_path: Path) -> None:
    """An empty data_dir/admin.token stops startup with what to do, not a crash."""
    cfg = write_config(tmp_path / "obsd.toml", tmp_path / "data", 1, sections={"server": {"admin_token": ""}})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin.token").write_text("\n")
    r = subprocess.run([sys.executable, "-m", "obsd.cli", "serve", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "COLUMNS": "400"})
    assert r.returncode == 2 and "admin.token is empty" in r.stderr and "Traceback" not in r.stderr
    assert "retention.applied" not in r.stderr  # refused before the store was touched
