"""Tools some tests need (node, the SDK's node_modules, Chromium): skipped when run by hand without them,
a failure under `make test` (OBSD_TEST_STRICT=1), which CI runs, so a missing browser is never a green run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.harness import ROOT

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
STRICT = os.environ.get("OBSD_TEST_STRICT") == "1"


def missing_node(*packages: str) -> str | None:
    """Why node or one of the SDK's dev packages is unavailable, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    for pkg in packages:
        if not (ROOT / "sdk" / "node_modules" / pkg).is_dir():
            return f"sdk/node_modules/{pkg} is missing: run `cd sdk && npm ci` (or `make sdk`)"
    return None


def missing_browser() -> str | None:
    """Why the browser tests cannot run (node, playwright-core or Chromium missing), or None."""
    if (why := missing_node("playwright-core")) is not None:
        return why
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set CHROMIUM)"
    return None


def need(why: str | None) -> None:
    """Skip (by hand) or fail (under `make test`) when `why` names something missing."""
    if why is None:
        return
    if STRICT:
        pytest.fail(f"{why} (OBSD_TEST_STRICT=1: `make test` needs every test to run)")
    pytest.skip(why)


NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")


def missing_nginx() -> str | None:
    """Why the reverse-proxy tests cannot run, or None."""
    if not Path(NGINX).exists():
        return f"no nginx at {NGINX}: `apt-get install nginx` (or set NGINX)"
    return None
