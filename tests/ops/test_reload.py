"""SIGHUP applies every setting or names it as needing a restart; buckets survive; a refused config is kept out."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from obsd.ops.reload import changed_keys, in_force, split
from obsd.settings import PipelineSettings, PrivacySettings, ServerSettings, Settings
from tests.harness import WRITE_KEY, Daemon, envelope, event, http, write_config

SHOP_KEY = "shop-write-key-0001"


def _log_events(d: Daemon, name: str) -> list[dict[str, Any]]:
    out = []
    for line in d.log().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == name:
            out.append(rec)
    return out


def _hup(d: Daemon, name: str = "config.reloaded", before: int = 0) -> dict[str, Any]:
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = _log_events(d, name)
        if len(found) > before:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {name} in the log:\n{d.log()[-2000:]}")


def test_reload_applies_privacy_limits_projects_and_names_what_needs_a_restart(tmp_path: Path) -> None:
    """Query-parameter allowlist, drop_bots, projects (stats too) and /metrics token apply; listen and
    pipeline are named; an unchanged rate-limit bucket keeps its state."""
    sections: dict[str, dict[str, Any]] = {
        "pipeline": {"batch_interval_ms": 50}, "server": {"trusted_proxies": ["127.0.0.1"]},
        "rate_limit": {"per_ip_rps": 0.02, "per_ip_burst": 2.0}}
    d = Daemon(tmp_path, sections=sections)
    with d:
        limited = {"X-Forwarded-For": "198.51.100.1"}
        assert [d.post(envelope([event()]), headers=limited).status for _ in range(3)] == [202, 202, 429]
        url = "https://shop.example/list?page=2&secret=x&utm_source=a"
        assert d.post(envelope([event(url=url)], session_id="before"), headers={"X-Forwarded-For": "198.51.100.2"}
                      ).status == 202
        new_sections = {**sections, "privacy": {"allowed_query_params": ["utm_*", "page"], "drop_bots": True},
                        "server": {**sections["server"], "listen": "127.0.0.1:1", "metrics_token": "scrape-0001-token"},
                        "pipeline": {"batch_interval_ms": 50, "batch_max_events": 1234}}
        write_config(d.config, d.data_dir, d.port, new_sections, projects=[
            {"id": "demo", "write_key": WRITE_KEY, "allowed_origins": [d.base]},
            {"id": "shop", "write_key": SHOP_KEY, "allowed_origins": []}])
        rec = _hup(d)
        assert {"privacy.allowed_query_params", "privacy.drop_bots", "projects", "server.metrics_token"} <= set(
            rec["applied"])
        assert rec["needs_restart"] == ["pipeline.batch_max_events", "server.listen"]
        assert _log_events(d, "config.needs_restart")[-1]["keys"] == ["pipeline.batch_max_events", "server.listen"]
        # The bucket of 198.51.100.1 survived the reload: still refused.
        assert d.post(envelope([event()]), headers=limited).status == 429
        # The new URL allowlist and drop_bots hold at once (urllib's user agent is a bot's).
        r = d.post(envelope([event(url=url)], session_id="after"), headers={"X-Forwarded-For": "198.51.100.3"})
        assert r.status == 202 and r.json()["accepted"] == 0 and "bot" in r.json()["rejected"][0]["reason"]
        browser = {"X-Forwarded-For": "198.51.100.4", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) "
                   "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"}
        assert d.post(envelope([event(url=url)], session_id="after"), headers=browser).json()["accepted"] == 1
        assert d.post(envelope([event()]), key=SHOP_KEY, headers=browser).status == 202
        assert d.wait_for("SELECT any(url) FROM obsd.events WHERE session_id = 'after'",
                          "https://shop.example/list?page=2&utm_source=a") == "https://shop.example/list?page=2&utm_source=a"
        assert d.scalar("SELECT url FROM obsd.events WHERE session_id = 'before'") == \
            "https://shop.example/list?utm_source=a"
        stats = http("GET", d.base + "/v1/stats", headers={"Authorization": "Bearer test-admin-token"}).json()
        assert stats["projects"] == ["demo", "shop"]
        assert http("GET", d.base + "/metrics").status == 401
        # Still listening where it was: listen needs a restart.
        assert http("GET", d.base + "/health").status == 200


def test_a_config_serve_would_refuse_is_not_applied_by_reload(tmp_path: Path) -> None:
    """A reload to a placeholder or short write key fails, and the running keys stay in force."""
    with Daemon(tmp_path) as d:
        placeholder = [{"id": "demo", "write_key": "change_me_to_a_random_string"}]
        write_config(d.config, d.data_dir, d.port, projects=placeholder)
        rec = _hup(d, "config.reload_failed")
        assert "placeholder" in rec["error"]
        write_config(d.config, d.data_dir, d.port, projects=[{"id": "demo", "write_key": "short-key-12"}])
        rec = _hup(d, "config.reload_failed", before=1)
        assert "at least 16" in rec["error"]
        assert d.post(envelope([event()])).status == 202


def test_restart_only_keys_keep_their_running_values() -> None:
    """in_force keeps listen and pipeline at the running values and takes everything else."""
    old = Settings()
    new = Settings(server=ServerSettings(listen="127.0.0.1:9", max_events_per_batch=7),
                   pipeline=PipelineSettings(batch_max_events=5), privacy=PrivacySettings(drop_bots=True))
    assert changed_keys(old, new) == ["pipeline.batch_max_events", "privacy.drop_bots", "server.listen",
                                      "server.max_events_per_batch"]
    applied, restart = split(old, new, tls_reloadable=False)
    assert applied == ["privacy.drop_bots", "server.max_events_per_batch"]
    assert restart == ["pipeline.batch_max_events", "server.listen"]
    kept = in_force(old, new, restart)
    assert (kept.server.listen, kept.pipeline.batch_max_events) == ("127.0.0.1:8080", 20_000)
    assert (kept.server.max_events_per_batch, kept.privacy.drop_bots) == (7, True)


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    f"/CN=obsd-test-{name}", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def _served(port: int, bundle: Path) -> bytes:
    """The certificate a new TLS connection is shown (verified against `bundle`), DER-encoded."""
    ctx = ssl.create_default_context(cafile=str(bundle))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_tls_serves_and_a_reload_renews_the_certificate_or_keeps_the_old_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With server.tls_cert the daemon answers HTTPS; a reload to a renewed certificate shows it to new
    connections, and a reload to one that cannot be loaded fails and keeps the one in force."""
    (a_cert, a_key), (b_cert, b_key) = _certificate(tmp_path, "a"), _certificate(tmp_path, "b")
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(a_cert.read_text() + b_cert.read_text())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # urllib (the harness) verifies against both

    def tls(cert: Path, key: Path) -> dict[str, dict[str, Any]]:
        return {"server": {"tls_cert": str(cert), "tls_key": str(key)}}

    d = Daemon(tmp_path / "d", sections=tls(a_cert, a_key))
    d.base = d.base.replace("http://", "https://")
    with d:
        assert d.post(envelope([event()])).status == 202
        assert _served(d.port, bundle) == ssl.PEM_cert_to_DER_cert(a_cert.read_text())
        write_config(d.config, d.data_dir, d.port, tls(b_cert, b_key))
        assert "server.tls_cert" in _hup(d)["applied"]
        assert _served(d.port, bundle) == ssl.PEM_cert_to_DER_cert(b_cert.read_text())
        write_config(d.config, d.data_dir, d.port, tls(tmp_path / "missing.pem", b_key))
        assert "cannot be loaded" in _hup(d, "config.reload_failed")["error"]
        assert _served(d.port, bundle) == ssl.PEM_cert_to_DER_cert(b_cert.read_text())
        assert d.post(envelope([event()])).status == 202
        assert d.wait_for("SELECT count() FROM obsd.events", 2) == 2
