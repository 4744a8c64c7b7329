"""Queries are guests: read-only for real (every escape tried), bounded in memory and time, and a runaway
query is refused with a reason while ingestion keeps landing events."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from obsd.privacy.access import AdminAccess
from obsd.query.params import parse_params
from obsd.query.stats_api import StatsApi
from obsd.settings import ClickHouseSettings, Settings
from obsd.store.client import Store
from obsd.store.guard import QueryRefused, StatementGuard
from obsd.store.limits import QueryLimitError
from obsd.store.migrations import Migrator
from obsd.store.readonly import UserQueries, open_reader
from tests.harness import ADMIN_TOKEN, Daemon, envelope, event, http, rss_bytes

TABLE_FUNCTIONS = ["file", "url", "s3", "remote", "mysql", "postgresql", "hdfs", "executable", "input", "numbers",
                   "python", "azureBlobStorage", "cluster", "sqlite", "jdbc", "odbc", "merge"]


def _ask(d: Daemon, sql: str, **extra: object) -> tuple[int, dict[str, object]]:
    r = http("POST", d.base + "/v1/admin/query", json.dumps({"sql": sql, **extra}).encode(),
             {"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=120)
    body: dict[str, object] = r.json()
    if r.status >= 400:
        assert set(body) == {"status", "error", "reason"} and body["status"] == r.status, body
    return r.status, body


ESCAPES = [
    ("SELECT 1 INTO OUTFILE '{out}/a.txt'", "INTO OUTFILE"),
    ("select 1 into outfile '{out}/b.txt' -- trailing comment", "INTO OUTFILE"),
    ("SELECT 1 /* c */ INTO /* c */ OUTFILE '{out}/c.txt' AND STDOUT", "INTO OUTFILE"),
    ("SELECT file('/etc/hostname')", "file()"),
    ("SELECT `file`('/etc/hostname')", "file()"),
    ('SELECT "file"(\'/etc/hostname\')', "file()"),
    ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "file()"),
    ("SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')", "url()"),
    ("SELECT * FROM s3('http://127.0.0.1:9/b/x.csv')", "s3()"),
    ("SELECT * FROM remote('127.0.0.1:9', system.one)", "remote()"),
    ("SELECT * FROM mysql('127.0.0.1:9', 'db', 't', 'u', 'p')", "mysql()"),
    ("SELECT * FROM postgresql('127.0.0.1:9', 'db', 't', 'u', 'p')", "postgresql()"),
    ("SELECT * FROM hdfs('hdfs://127.0.0.1:9/x', 'CSV')", "hdfs()"),
    ("SELECT * FROM executable('x.sh', 'CSV', 'a String')", "executable()"),
    ("SELECT * FROM input('a String')", "input()"),
    ("SELECT * FROM Python('x')", "Python()"),
    ("SELECT count() FROM obsd.events AS e, file('/etc/passwd', 'LineAsString') AS f", "file()"),
    ("SELECT 1 IN (SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a UInt8'))", "url()"),
    ("DESCRIBE TABLE file('/etc/hostname', 'LineAsString')", "file()"),
    ("EXPLAIN SELECT * FROM file('/etc/hostname', 'LineAsString')", "file()"),
    ("SELECT 1; SELECT 2", "one statement"),
    ("SELECT 1; DROP TABLE obsd.events", "one statement"),
    ("SELECT * FROM (SELECT 1 SETTINGS max_memory_usage = 0)", "SETTINGS"),
    ("SELECT 1 settings readonly = 0", "SETTINGS"),
    ("WITH x AS (SELECT 1 SETTINGS max_execution_time = 0) SELECT * FROM x", "SETTINGS"),
    ("SeLeCt 1 FoRmAt JSON", "FORMAT"),
    ("DROP TABLE obsd.events", "read-only"),
    ("/* SELECT */ INSERT INTO obsd.events (event_id) VALUES (generateUUIDv4())", "read-only"),
    ("SET max_memory_usage = 0", "read-only"),
    ("ALTER TABLE obsd.events DELETE WHERE 1", "read-only"),
    ("EXPLAIN AST INSERT INTO obsd.events (event_id) VALUES (generateUUIDv4())", "read-only"),
    ("SYSTEM SHUTDOWN", ""),
]
ALLOWED = [
    "SELECT count() FROM obsd.events",
    "select 1 -- ; select 2",
    "SELECT 'INTO OUTFILE; SETTINGS file(' AS s",
    "WITH 1 AS x SELECT x",
    "(SELECT 1) UNION ALL (SELECT 2)",
    "DESCRIBE TABLE obsd.events",
    "DESC obsd.events_rejected",
    "SHOW TABLES FROM obsd",
    "EXPLAIN SELECT 1",
    "EXPLAIN PLAN actions = 1 SELECT 1",
    "SELECT name FROM system.settings WHERE name = 'readonly'",
    "SELECT 1 AS settings, 2 AS outfile",
    "SELECT count() FROM numbers(1000)",
]


def test_every_escape_is_refused_with_a_reason_and_nothing_is_written(daemon: Daemon, tmp_path: Path) -> None:
    """OUTFILE, file/network table functions, several statements, SETTINGS, writes: each a 400 with why."""
    for template, needle in ESCAPES:
        sql = template.format(out=tmp_path)
        status, body = _ask(daemon, sql)
        assert status == 400 and body["error"] in ("query_refused",), (sql, body)
        assert needle in str(body["reason"]), (sql, body)
    assert list(tmp_path.iterdir()) == []
    assert daemon.scalar("SELECT count() FROM system.tables WHERE database = 'obsd' AND name = 'events'") == 1
    for sql in ALLOWED:
        status, body = _ask(daemon, sql)
        assert status == 200, (sql, body)
    status, body = _ask(daemon, "SELECT number FROM numbers(100)", max_rows=-1)
    assert status == 400 and body["error"] == "invalid_query_request"  # -1 no longer lifts the row cap
    status, body = _ask(daemon, "SELECT number FROM numbers(100)", max_rows=7)
    assert status == 200 and len(body["rows"]) == 7 and body["truncated"] is True  # type: ignore[arg-type]


def test_guard_reads_the_formatted_statement_not_the_raw_text() -> None:
    """The guard's own rules on formatted text: clause keywords are told from columns of the same name."""
    guard = StatementGuard(TABLE_FUNCTIONS)
    for ok in ("SELECT * FROM system.settings", "SELECT 1 AS SETTINGS FROM t", "SELECT format('{}', 1)",
               "SELECT * FROM numbers(3) AS file", "SELECT 'file(' AS x", "SELECT * FROM merge('obsd', '.*')"):
        guard.check(ok)
    for bad in ("SELECT 1 INTO OUTFILE 'x'", "SELECT 1 SETTINGS max_threads = 1", "SELECT 1 FORMAT JSON",
                "SELECT FILE('/x')", "SELECT * FROM azureBlobStorage('x')", "SELECT 1; SELECT 2",
                "OPTIMIZE TABLE t", "EXPLAIN SYNTAX CREATE TABLE t (x UInt8) ENGINE = Memory"):
        with pytest.raises(QueryRefused):
            guard.check(bad)


def test_a_runaway_query_is_refused_while_ingestion_keeps_landing(tmp_path: Path) -> None:
    """groupArray over 1e9 numbers: 400 at the memory cap; a long scan: 503 at the time limit; events land."""
    sections = {"pipeline": {"batch_interval_ms": 50},
                "clickhouse": {"query_max_memory_bytes": 256 * 2**20, "query_timeout_s": 3.0,
                               "engine_max_memory_bytes": 3 * 2**30}}
    with Daemon(tmp_path, sections=sections) as d:
        assert d.proc is not None
        stop = threading.Event()
        sent: list[int] = []

        def ingest() -> None:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                assert d.post(envelope([event() for _ in range(20)], session_id="steady")).status == 202
                sent.append(20)
                time.sleep(0.05)

        feeder = threading.Thread(target=ingest)
        feeder.start()
        try:
            time.sleep(0.5)
            landed_before = d.scalar("SELECT count() FROM obsd.events")
            sent_before = sum(sent)
            started = time.monotonic()
            status, body = _ask(d, "SELECT length(groupArray(number)) FROM numbers(1000000000)")
            assert status == 400 and body["error"] == "query_too_large", body
            assert "clickhouse.query_max_memory_bytes" in str(body["reason"])
            status, body = _ask(d, "SELECT count() FROM numbers(1000000000000) WHERE sipHash64(number) = 1")
            assert status == 503 and body["error"] == "query_timeout", body
            elapsed = time.monotonic() - started
            assert elapsed < 20
            # Ingestion went on the whole time: requests were answered 202 while the queries ran, and
            # what they carried reached the store.
            sent_during = sum(sent) - sent_before
            assert sent_during >= 200, sent_during
            target = landed_before + sent_during // 2
            assert d.wait_for(f"SELECT count() >= {target} FROM obsd.events", 1, timeout=5) == 1
        finally:
            stop.set()
            feeder.join()
        assert d.wait_for("SELECT count() FROM obsd.events", sum(sent)) == sum(sent)
        assert rss_bytes(d.proc.pid) < 2 * 2**30
        cap = d.scalar("SELECT value FROM system.server_settings WHERE name = 'max_server_memory_usage'")
        assert int(cap) == 3 * 2**30  # the process-wide cap the engine started with
        assert http("GET", d.base + "/health").status == 200


def test_reports_and_the_stats_api_run_under_the_same_limits(tmp_path: Path) -> None:
    """The stats API's connection carries the query limits; a runaway on it is a QueryLimitError."""
    s = Settings(data_dir=str(tmp_path), clickhouse=ClickHouseSettings(query_max_memory_bytes=128 * 2**20,
                                                                       query_timeout_s=2.0))
    writer = Store(s.dsn, "obsd")
    Migrator(writer).up()
    api = StatsApi(s, AdminAccess("t" * 20, allow_remote=False))
    try:
        report = api._run("overview", parse_params({"project": "demo"}))
        assert report["report"] == "overview"
        assert api._store is not None
        limits = api._store.query("SELECT getSetting('max_memory_usage'), getSetting('max_execution_time'), "
                                  "getSetting('readonly')").rows[0]
        assert [int(limits[0]), float(limits[1]), int(limits[2])] == [128 * 2**20, 2.0, 1]
        with pytest.raises(QueryLimitError) as info:
            api._store.query("SELECT length(groupArray(number)) FROM numbers(1000000000)")
        assert info.value.status == 400 and info.value.code == "query_too_large"
        with pytest.raises(QueryRefused):
            UserQueries(open_reader(s)).run("SELECT 1 SETTINGS readonly = 0", max_rows=1)
    finally:
        api.close()
        writer.close()
