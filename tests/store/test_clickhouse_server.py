"""The same code path against a ClickHouse server (http/https DSN), when one is given.

Set OBSD_TEST_CLICKHOUSE_URL (e.g. http://default:@127.0.0.1:8123) to run these. No server can be
installed on the development machines (Debian's clickhouse-server is from 2018 and
clickhouse-connect cannot talk to it), so they are skipped there, and say so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsd.store.client import Store
from obsd.store.migrations import Migrator
from tests.harness import Daemon, envelope, event

URL = os.environ.get("OBSD_TEST_CLICKHOUSE_URL", "")
pytestmark = [
    pytest.mark.clickhouse_server,
    pytest.mark.skipif(not URL, reason="OBSD_TEST_CLICKHOUSE_URL is not set: no ClickHouse server to test against "
                                       "(the embedded store is tested everywhere else)"),
]


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the server, dropped afterwards."""
    name = f"obsd_test_{uuid.uuid4().hex[:10]}"
    yield name
    store = Store(URL, name)
    store.command(f"DROP DATABASE IF EXISTS {name}")
    store.close()


def test_migrations_round_trip_on_a_server(database: str) -> None:
    """Up, down and up again against a server, with the same migration files as the embedded store."""
    store = Store(URL, database)
    try:
        m = Migrator(store)
        applied = m.up()
        assert applied and m.pending() == []
        m.down(steps=len(applied))
        assert m.pending() == m.migrations
        m.up()
        tables = {r[0] for r in store.query(f"SELECT name FROM system.tables WHERE database = '{database}'").rows}
        assert {"events", "events_rejected"} <= tables
    finally:
        store.close()


def test_daemon_writes_to_a_server(tmp_path: Path, database: str) -> None:
    """A posted batch becomes rows on the server through the same pipeline."""
    d = Daemon(tmp_path, sections={"clickhouse": {"dsn": URL, "database": database},
                                   "pipeline": {"batch_interval_ms": 50}})
    with d:
        sid = uuid.uuid4().hex[:16]
        assert d.post(envelope([event(), event("custom")], session_id=sid)).status == 202
        assert d.wait_for(f"SELECT count() FROM {database}.events WHERE session_id = '{sid}'", 2) == 2
