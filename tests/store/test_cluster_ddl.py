"""Cluster mode: migrations render ON CLUSTER, Replicated engines and Distributed tables; embedded stays as is."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from obsd.errors import QueryError
from obsd.query.params import parse_params
from obsd.query.reports import REPORTS, Reports
from obsd.store.client import Store
from obsd.store.migrations import Migrator, default_dir, discover, render, statements
from tests import traffic
from tests.harness import ROOT, now_ms

ROLLUPS = ["events_hourly", "pages_hourly", "referrers_hourly", "devices_hourly", "vitals_hourly", "traffic_daily",
           "vitals_metric_hourly", "errors_hourly", "release_sessions_hourly", "visits", "pages_daily", "events_daily"]
# Visits must meet their partial rows on one shard: events_all and visits_all shard by session.
SHARDING = {"events": "cityHash64(session_id)", "visits": "sid"}


def _all_statements(cluster: str, *, down: bool = False) -> list[str]:
    out: list[str] = []
    for m in discover(default_dir()):
        path = m.down if down else m.up
        assert path is not None
        out += statements(render(path.read_text(), "obsd", cluster))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """An embedded engine, used only to parse statements (formatQuery) — no cluster is needed for that."""
    s = Store(f"chdb://{tmp_path_factory.mktemp('ddl')}/ch", "default")
    yield s
    s.close()


def test_every_cluster_statement_runs_on_the_cluster() -> None:
    """Each CREATE and DROP says ON CLUSTER; every MergeTree table is Replicated with shard/replica macros."""
    for stmt in _all_statements("analytics") + _all_statements("analytics", down=True):
        if stmt.startswith(("CREATE", "DROP")):
            assert "ON CLUSTER 'analytics'" in stmt, stmt[:120]
        engines = re.findall(r"ENGINE = (\w+)", stmt)
        for engine in engines:
            assert engine.startswith("Replicated") or engine == "Distributed", stmt[:200]
        if "MergeTree(" in stmt:
            assert "('/clickhouse/tables/{shard}/obsd/{table}', '{replica}')" in stmt


def test_cluster_mode_adds_a_distributed_table_per_rollup_and_for_events() -> None:
    """events_all and <rollup>_all read every shard; the backfill reads and writes through them."""
    stmts = _all_statements("analytics")
    dist = {m.group(1): stmt for stmt in stmts if (m := re.match(r"CREATE TABLE IF NOT EXISTS obsd\.(\w+)_all ", stmt))}
    assert set(dist) == {"events", *ROLLUPS}
    for name, stmt in dist.items():
        key = SHARDING.get(name, "rand()")
        assert f"AS obsd.{name} ENGINE = Distributed('analytics', 'obsd', '{name}', {key})" in stmt
    # events_all is made again (after 0010's new columns), so it is dropped first, on the cluster only.
    drop = stmts.index("DROP TABLE IF EXISTS obsd.events_all ON CLUSTER 'analytics' SYNC")
    assert stmts[drop + 1] == dist["events"]
    backfills = [s for s in stmts if s.startswith("INSERT INTO")]
    assert len(backfills) == len(ROLLUPS)
    for s in backfills:
        m = re.match(r"INSERT INTO obsd\.(\w+)_all\b", s)
        assert m and m.group(1) in ROLLUPS and "FROM obsd.events_all " in s
    views = [s for s in stmts if s.startswith("CREATE MATERIALIZED VIEW")]
    # One view per rollup, plus errors_hourly_mv again where 0007 replaced it (after DROP VIEW).
    assert {re.match(r"CREATE MATERIALIZED VIEW IF NOT EXISTS obsd\.(\w+)_mv ", v).group(1)  # type: ignore[union-attr]
            for v in views} == set(ROLLUPS)
    assert len(views) == len(ROLLUPS) + 1
    for v in views:  # views fire on each node's local inserts and write local rollups
        assert "FROM obsd.events " in v and "_all" not in v


def test_embedded_rendering_is_unchanged() -> None:
    """Without a cluster nothing of the cluster machinery appears."""
    for stmt in _all_statements(""):
        assert "ON CLUSTER" not in stmt and "Replicated" not in stmt and "Distributed" not in stmt
        assert "_all" not in stmt and "{{" not in stmt


def test_cluster_statements_parse(store: Store) -> None:
    """ClickHouse's own parser accepts every rendered cluster statement (up and down)."""
    for stmt in _all_statements("analytics") + _all_statements("analytics", down=True):
        formatted = store.query("SELECT formatQuery({q:String})", parameters={"q": stmt}).rows[0][0]
        if stmt.startswith(("CREATE", "DROP")):
            assert "ON CLUSTER analytics" in formatted or "ON CLUSTER 'analytics'" in formatted, formatted[:200]


def test_reports_read_the_all_tables_in_cluster_mode(store: Store) -> None:
    """With a cluster set, every report reads <table>_all and gives the embedded numbers.

    A one-shard Distributed table passes rows through unchanged; chDB has no cluster to host one, so
    plain views named <table>_all stand in for them over the same local tables.
    """
    local = Store(store.dsn, "obsd")
    try:
        Migrator(local).up()
        traffic.insert(local, traffic.sessions(40, now_ms=now_ms(), span_h=10, seed=5))
        for name in ["events", *ROLLUPS]:
            materialized = ", sid" if name == "events" else ""  # a Distributed table reads it from the shards
            local.command(f"CREATE VIEW IF NOT EXISTS obsd.{name}_all AS SELECT *{materialized} FROM obsd.{name}")
        embedded, clustered = Reports(local, "obsd"), Reports(local, "obsd", cluster=True)
        assert clustered.table("pages_hourly") == "obsd.pages_hourly_all"
        p = parse_params({"project": "demo"})
        for name in REPORTS:
            assert clustered.run(name, p).to_json() == embedded.run(name, p).to_json(), name
        assert embedded.run("overview", p).summary["pageviews"] > 0
        local.command("DROP VIEW obsd.pages_hourly_all")
        with pytest.raises(QueryError, match="pages_hourly_all"):
            clustered.run("pages", p)
    finally:
        local.close()


def test_the_placeholders_are_documented() -> None:
    """docs/scaling.md explains the cluster setting and the _all tables."""
    text = (ROOT / "docs" / "scaling.md").read_text()
    for needle in ("cluster", "Distributed", "_all", "ON CLUSTER", "Replicated"):
        assert needle in text
