"""The CLI as a user runs it: real processes, real stores."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from tests.harness import Daemon, envelope, event, write_config


def obsd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "obsd.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})


def test_query_goes_through_the_daemon_and_directly_when_none_runs(tmp_path: Path) -> None:
    """obsd query answers while serve holds the embedded store, and after it stops."""
    d = Daemon(tmp_path)
    d.start()
    sid = uuid.uuid4().hex[:16]
    try:
        assert d.post(envelope([event(), event("custom")], session_id=sid)).status == 202
        d.wait_for(f"SELECT count() FROM obsd.events WHERE session_id = '{sid}'", 2)
        sql = f"SELECT type, count() AS n FROM obsd.events WHERE session_id = '{sid}' GROUP BY type ORDER BY type"
        through = obsd("query", "--config", str(d.config), "--format", "json", sql)
        assert through.returncode == 0, through.stderr
        assert [json.loads(x) for x in through.stdout.splitlines()] == [
            {"type": "custom", "n": 1}, {"type": "pageview", "n": 1}]
    finally:
        d.stop()
    direct = obsd("query", "--config", str(d.config), "--format", "csv", sql)
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.splitlines() == ["type,n", "custom,1", "pageview,1"]
    table = obsd("query", "--config", str(d.config), sql)
    assert "pageview" in table.stdout and "┃" in table.stdout


def test_query_refuses_writes(tmp_path: Path) -> None:
    """obsd query is read-only."""
    cfg = write_config(tmp_path / "obsd.toml", tmp_path / "data", 1)
    assert obsd("migrate", "up", "--config", str(cfg)).returncode == 0
    r = obsd("query", "--config", str(cfg), "DROP TABLE obsd.events")
    assert r.returncode != 0 and "read-only" in r.stderr
    r = obsd("query", "--config", str(cfg), "SELECT 1; DROP TABLE obsd.events")
    assert r.returncode != 0
    assert obsd("query", "--config", str(cfg), "--format", "csv", "SELECT count() FROM obsd.events").returncode == 0


def test_migrate_commands(tmp_path: Path) -> None:
    """migrate up/status/down print what they did; status is a table."""
    cfg = write_config(tmp_path / "obsd.toml", tmp_path / "data", 1)
    up = obsd("migrate", "up", "--config", str(cfg))
    assert up.returncode == 0 and "applied 0001_events" in up.stdout
    again = obsd("migrate", "up", "--config", str(cfg))
    assert "up to date" in again.stdout
    status = obsd("migrate", "status", "--config", str(cfg))
    assert "0001" in status.stdout and "applied" in status.stdout
    down = obsd("migrate", "down", "--config", str(cfg))
    assert down.returncode == 0 and "reverted" in down.stdout


def test_config_check_reports_errors_with_exit_code(tmp_path: Path) -> None:
    """config check names a wrong key and exits non-zero; a good config prints the effective settings."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nlisten = "nope"\n')
    r = obsd("config", "check", "--config", str(bad))
    assert r.returncode == 2 and "server.listen" in r.stderr
    good = write_config(tmp_path / "good.toml", tmp_path / "data", 1234)
    r = obsd("config", "check", "--config", str(good))
    assert r.returncode == 0 and '"listen": "127.0.0.1:1234"' in r.stdout
    assert "test-admin-token" not in r.stdout


def test_serve_refuses_to_start_with_pending_migrations(tmp_path: Path) -> None:
    """Without --migrate or auto_migrate, serve exits with a message naming the pending migrations."""
    cfg = write_config(tmp_path / "obsd.toml", tmp_path / "data", 1, top={})
    text = cfg.read_text().replace("auto_migrate = true", "auto_migrate = false")
    cfg.write_text(text)
    r = obsd("serve", "--config", str(cfg))
    assert r.returncode == 4 and "0001_events" in r.stderr and "obsd migrate up" in r.stderr
