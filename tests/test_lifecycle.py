"""Process lifecycle: SIGTERM drains what is buffered into the store and exits 0."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from tests.harness import Daemon, envelope, event


@pytest.mark.parametrize("durability", ["memory", "fsync"])
def test_sigterm_drains_buffer_into_store(tmp_path: Path, durability: str) -> None:
    """Events still waiting for their batch interval are in ClickHouse after SIGTERM, and the exit code is 0."""
    d = Daemon(tmp_path / "a", sections={"pipeline": {"batch_interval_ms": 60_000, "batch_max_events": 100_000},
                                         "spool": {"durability": durability}})
    d.start()
    sid = uuid.uuid4().hex[:16]
    for _ in range(20):
        assert d.post(envelope([event() for _ in range(50)], session_id=sid)).status == 202
    assert d.scalar(f"SELECT count() FROM obsd.events WHERE session_id = '{sid}'") == 0
    assert d.stop(signal.SIGTERM) == 0
    assert "obsd.stopped" in d.log()
    d2 = Daemon(tmp_path / "a", port=d.port)
    with d2:
        assert d2.scalar(f"SELECT count() FROM obsd.events WHERE session_id = '{sid}'") == 1000
