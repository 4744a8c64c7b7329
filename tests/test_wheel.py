"""A built wheel, installed (not editable) away from the checkout, is a working obsd: it serves the SDK,
the demo and the dashboard, and carries and applies every migration."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.harness import ROOT, Daemon, http


def test_installed_wheel_serves_and_migrates(tmp_path: Path) -> None:
    """`pip wheel .`, `pip install --target`, then the installed `obsd` script serves from the install alone."""
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    wheel = next(dist.glob("obsd-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    migrations = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("obsd/store/sql/")) == migrations
    for shipped in ("obsd/static/sdk.js", "obsd/static/demo.html", "obsd/static/dashboard/index.html",
                    "obsd/py.typed"):
        assert shipped in names, shipped
    assert not [n for n in names if n.startswith("tests/") or n.endswith("testing.py")]

    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    # The checkout is not on the path: the daemon runs from its own folder with only the install added.
    where = subprocess.run([sys.executable, "-c", "import obsd; print(obsd.__file__)"], cwd=tmp_path,
                           env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr

    d = Daemon(tmp_path / "run", command=[str(site / "bin" / "obsd")], env={"PYTHONPATH": str(site)})
    with d:
        for path, kind in (("/sdk.js", "javascript"), ("/demo", "text/html"), ("/dashboard", "text/html")):
            r = http("GET", d.base + path)
            assert r.status == 200 and kind in r.headers["Content-Type"], path
        applied = d.query("SELECT version FROM obsd.schema_migrations GROUP BY version HAVING argMax(applied, at)")
        assert len(applied) == len(migrations) // 2
