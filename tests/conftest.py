"""Shared fixtures: real daemons on real sockets with embedded stores in temp dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One obsd serve for a test module (a short batch interval keeps freshness tests quick)."""
    d = Daemon(tmp_path_factory.mktemp("obsd"), sections={"pipeline": {"batch_interval_ms": 50}})
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def fresh_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """An obsd serve of this test's own."""
    d = Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 50}})
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test() -> Iterator[None]:
    """A test that fails half way still leaves no `obsd serve` running (module fixtures keep theirs)."""
    before = set(Daemon.running)
    yield
    for d in Daemon.running - before:
        d.kill()


@pytest.fixture(autouse=True)
def _no_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up the developer's OBSD_* environment."""
    for name in list(os.environ):
        if name.startswith("OBSD_") and not name.startswith("OBSD_TEST_"):
            monkeypatch.delenv(name)
