"""Migrations against a real chDB store."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsd.errors import MigrationError, PendingMigrationsError
from obsd.server import check_migrations
from obsd.settings import load_settings
from obsd.store.client import Store
from obsd.store.migrations import Migrator, create, discover, render
from obsd.store.rows import DeadLetter, row_fields


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"chdb://{tmp_path}/ch", "obsd")
    yield s
    s.close()


def _tables(store: Store) -> set[str]:
    return {r[0] for r in store.query("SELECT name FROM system.tables WHERE database = 'obsd'").rows}


def test_up_down_up_round_trip(store: Store) -> None:
    """Up creates the tables, down removes them, up again brings them back; re-running is a no-op."""
    m = Migrator(store)
    applied = m.up()
    assert [x.label for x in applied][:1] == ["0001_events"]
    assert {"events", "events_rejected"} <= _tables(store)
    assert m.up() == []
    assert all(st.applied_at is not None for st in m.status())
    reverted = m.down(steps=len(applied))
    assert [x.version for x in reverted] == sorted((x.version for x in applied), reverse=True)
    assert "events" not in _tables(store)
    assert m.pending() == m.migrations
    m.up()
    assert {"events", "events_rejected"} <= _tables(store) and m.pending() == []


def test_up_to_stops_at_a_version(tmp_path: Path, store: Store) -> None:
    """--to N applies migrations up to N only."""
    d = tmp_path / "m"
    d.mkdir()
    (d / "0001_a.up.sql").write_text("CREATE TABLE {{db}}.a (x UInt8) ENGINE = MergeTree ORDER BY x;")
    (d / "0001_a.down.sql").write_text("DROP TABLE {{db}}.a;")
    (d / "0002_b.up.sql").write_text("CREATE TABLE {{db}}.b (x UInt8) ENGINE = MergeTree ORDER BY x;")
    m = Migrator(store, d)
    assert [x.version for x in m.up(to=1)] == [1]
    assert [x.version for x in m.pending()] == [2]


def test_failing_migration_names_the_file_and_keeps_state_true(tmp_path: Path, store: Store) -> None:
    """A broken migration stops with ClickHouse's error and the file name; earlier ones stay recorded."""
    d = tmp_path / "m"
    d.mkdir()
    (d / "0001_ok.up.sql").write_text("CREATE TABLE {{db}}.ok (x UInt8) ENGINE = MergeTree ORDER BY x;")
    (d / "0002_broken.up.sql").write_text("CREATE TABLE {{db}}.bad (x NoSuchType) ENGINE = MergeTree ORDER BY x;")
    m = Migrator(store, d)
    with pytest.raises(MigrationError) as info:
        m.up()
    assert "0002_broken.up.sql" in str(info.value) and "NoSuchType" in str(info.value)
    assert set(m.applied()) == {1}
    assert [x.version for x in m.pending()] == [2]


def test_serve_refuses_pending_migrations_unless_asked(tmp_path: Path) -> None:
    """obsd serve names the pending migrations and how to apply them; --migrate applies them."""
    cfg = tmp_path / "obsd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}/data"\n')
    settings = load_settings(cfg, environ={})
    with pytest.raises(PendingMigrationsError) as info:
        check_migrations(settings, migrate=False)
    assert "0001_events" in str(info.value) and "obsd migrate up" in str(info.value)
    assert "0001_events" in check_migrations(settings, migrate=True)
    assert check_migrations(settings, migrate=False) == []


def test_create_numbers_the_next_pair(tmp_path: Path) -> None:
    """create writes the next numbered up/down pair that discover then finds."""
    up, down = create(tmp_path, "Add country column")
    assert up.name == "0001_add_country_column.up.sql" and down.exists()
    up2, _ = create(tmp_path, "second")
    assert up2.name.startswith("0002_")
    assert [m.version for m in discover(tmp_path)] == [1, 2]


def test_cluster_rendering_uses_replicated_engines() -> None:
    """With a cluster, DDL gets ON CLUSTER and Replicated engines; without, it stays plain."""
    sql = "CREATE TABLE {{db}}.t {{on_cluster}} (x UInt8) ENGINE = {{engine:MergeTree}} ORDER BY x"
    assert render(sql, "obsd") == "CREATE TABLE obsd.t  (x UInt8) ENGINE = MergeTree ORDER BY x"
    clustered = render(sql, "obsd", "main")
    assert "ON CLUSTER 'main'" in clustered
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/obsd/{table}'" in clustered


def test_rows_written_before_0005_keep_their_data_and_read_as_obsd(store: Store) -> None:
    """A store at 0004 with events in it takes 0005: the rows stay, with protocol 'obsd' and empty new columns."""
    m = Migrator(store)
    m.up(to=4)
    store.insert_ndjson("events", b'{"project_id": "demo", "event_id": "0b7e6c1e-8d2a-4c1e-9f3b-2a6d5c4b3a21", '
                                  b'"type": "pageview", "ts": 1764288000, "path": "/old"}\n')
    m.up()
    rows = store.query("SELECT path, protocol, release, utm_content, region FROM obsd.events").rows
    assert rows == [["/old", "obsd", "", "", ""]]


def test_row_structs_are_the_tables_columns(store: Store) -> None:
    """The Structs obsd writes name exactly the columns of obsd.events and obsd.events_rejected (those ClickHouse
    computes itself, MATERIALIZED, are not written)."""
    Migrator(store).up()

    def columns(table: str) -> set[str]:
        return {r[0] for r in store.query("SELECT name FROM system.columns WHERE database = 'obsd' "
                                          f"AND table = '{table}' AND default_kind != 'MATERIALIZED'").rows}

    assert columns("events") == row_fields()
    assert columns("events_rejected") == set(DeadLetter.__struct_fields__)


def test_0010_upgrades_a_store_holding_events(store: Store) -> None:
    """A store written before 0010 keeps every event, its path column becomes LowCardinality with the same values,
    and the visits rollup is filled from the stored events (entry page, exit page, source, channel)."""
    import json
    import time

    m = Migrator(store)
    m.up(to=9)
    t = time.time() - 3600
    rows = []
    for i in range(3):
        sid = f"old{i}"
        rows.append({"project_id": "demo", "event_id": f"00000000-0000-4000-8000-{i:012x}", "type": "pageview",
                     "ts": t + i, "received_at": t, "session_id": sid, "path": "/a", "hostname": "shop.example",
                     "referrer_host": "www.google.com", "visitor_id": i, "utm_source": "newsletter" if i == 2 else ""})
        rows.append({"project_id": "demo", "event_id": f"00000000-0000-4000-8000-{i + 100:012x}", "type": "pageview",
                     "ts": t + i + 60, "received_at": t, "session_id": sid, "path": "/b", "hostname": "shop.example",
                     "referrer_host": "shop.example", "visitor_id": i})
    store.insert_ndjson("events", "\n".join(json.dumps(r) for r in rows).encode())
    before = store.query("SELECT event_id, path FROM obsd.events ORDER BY event_id").rows
    assert [x.label for x in m.up()] == [x.label for x in m.migrations if x.version >= 10]
    assert store.query("SELECT event_id, path FROM obsd.events ORDER BY event_id").rows == before
    assert store.query("SELECT DISTINCT toTypeName(path) FROM obsd.events").rows == [["LowCardinality(String)"]]
    visits = store.query("SELECT entry_page, exit.2, source, channel, pageviews FROM obsd.visits FINAL "
                         "ORDER BY source").rows
    assert visits == [["/a", "/b", "Google", "search", 2]] * 2 + [["/a", "/b", "newsletter", "email", 2]]
