"""Safe by default: serve refuses placeholder and short write keys; config check says what is risky."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from obsd.ops.safety import refusals, risks
from obsd.settings import RateLimitSettings, ServerSettings, Settings, load_settings
from tests.harness import ROOT, write_config

EXAMPLE = ROOT / "obsd.toml.example"


def _obsd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "obsd.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "400"})


def _example_as_make_serve_writes_it(tmp_path: Path) -> Path:
    """obsd.toml.example with the Makefile's own sed substitutions applied (what `make serve` runs)."""
    make = (ROOT / "Makefile").read_text()
    key = re.search(r'write_key = "change_me\.\*\|write_key = "([^"]+)"\|', make)
    assert key, "the Makefile no longer rewrites the placeholder key"
    text = EXAMPLE.read_text().replace('write_key = "change_me_to_a_random_string"', f'write_key = "{key.group(1)}"')
    text = re.sub(r'(?m)^data_dir = .*', f'data_dir = "{tmp_path / "data"}"', text)
    cfg = tmp_path / "obsd.toml"
    cfg.write_text(text)
    return cfg


def test_serve_refuses_the_placeholder_and_short_keys(tmp_path: Path) -> None:
    """The example's key and a 12-character key stop `obsd serve` with the key and the fix named."""
    for key, needle in (("change_me_to_a_random_string", "placeholder"), ("short-key-12", "at least 16")):
        cfg = write_config(tmp_path / f"{len(key)}.toml", tmp_path / "data", 1, projects=[{"id": "demo",
                                                                                           "write_key": key}])
        r = _obsd("serve", "--config", str(cfg))
        assert r.returncode == 2 and needle in r.stderr and "projects[0].write_key" in r.stderr, r.stderr
        assert not (tmp_path / "data" / "clickhouse").exists()  # refused before anything started


def test_config_check_fails_on_the_raw_example_and_passes_make_serves_copy(tmp_path: Path) -> None:
    """The example as shipped is refused (its key is a placeholder); make serve's copy is valid and has
    rate limits on, so the only risk left to warn about is unlimited retention."""
    r = _obsd("config", "check", "--config", str(EXAMPLE))
    assert r.returncode == 2 and "placeholder" in r.stderr
    cfg = _example_as_make_serve_writes_it(tmp_path)
    r = _obsd("config", "check", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "retention_days" in warnings[0]
    s = load_settings(cfg, environ={})
    assert refusals(s) == [] and s.rate_limit.per_ip_rps > 0 and s.rate_limit.per_project_rps > 0


def test_risks_name_each_setting_and_its_fix() -> None:
    """Rate limits off, retention unlimited, remote admin without TLS, public metrics, a public listener."""
    s = Settings(server=ServerSettings(listen="0.0.0.0:8080", admin_allow_remote=True),
                 rate_limit=RateLimitSettings())
    text = "\n".join(risks(s))
    for needle in ("rate limits are off", "retention_days", "plain HTTP", "metrics_token", "without TLS"):
        assert needle in text
    safe = Settings(rate_limit=RateLimitSettings(per_ip_rps=5), clickhouse=Settings().clickhouse.__class__(
        retention_days=90))
    assert risks(safe) == []
