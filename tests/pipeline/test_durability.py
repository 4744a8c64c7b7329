"""Nothing acknowledged is lost: kill -9, store outages, a full spool, corrupt segments, poison rows."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import zstandard

from obsd.pipeline.spool import Spool
from obsd.store.client import Store
from tests.harness import ROOT, WRITE_KEY, Daemon, envelope, event, http, rss_bytes

LOADGEN = ROOT / "bench" / "loadgen.py"


def loadgen(d: Daemon, seconds: float, acked: Path, concurrency: int = 8) -> subprocess.Popen[bytes]:
    """Sustained load from another process, recording every acknowledged id."""
    return subprocess.Popen([sys.executable, str(LOADGEN), "--url", d.base, "--key", WRITE_KEY,
                             "--seconds", str(seconds), "--concurrency", str(concurrency),
                             "--acked-file", str(acked)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def acked_ids(path: Path) -> list[str]:
    return [x for x in path.read_text().splitlines() if len(x) == 36]


def assert_exactly_once(d: Daemon, ids: list[str]) -> None:
    """Every acknowledged id is in the store exactly once, and nothing is there twice."""
    total, unique = d.query("SELECT count() AS c, uniqExact(event_id) AS u FROM obsd.events")[0].values()
    assert total == unique, f"{total - unique} duplicated rows"
    d.query("SELECT 1")  # the admin connection is warm before the big IN query
    chunk = 5_000  # max_query_size is 256 KiB
    found = 0
    for i in range(0, len(ids), chunk):
        part = ",".join(f"'{x}'" for x in ids[i:i + chunk])
        found += int(d.scalar(f"SELECT count() FROM obsd.events WHERE event_id IN ({part})"))
    assert found == len(ids), f"{len(ids) - found} acknowledged events are missing"


def wait_drained(d: Daemon, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = http("GET", d.base + "/v1/admin/status", headers={"Authorization": "Bearer test-admin-token"}).json()
        if status["checks"]["pending_events"] == 0:
            return
        time.sleep(0.2)
    raise AssertionError("the spool did not drain")


def test_kill_9_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Every event that got 202 before kill -9 is in ClickHouse exactly once after a restart."""
    d = Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 100}})
    d.start()
    acked = tmp_path / "acked.txt"
    gen = loadgen(d, seconds=8, acked=acked)
    time.sleep(3.0)
    d.kill()
    gen.wait(timeout=30)
    ids = acked_ids(acked)
    assert len(ids) > 2000, "the load generator got too few acknowledgements to prove anything"
    d.start()
    assert "spool.recovered" in d.log()
    wait_drained(d)
    assert_exactly_once(d, ids)
    d.stop()


def test_store_outage_is_absorbed_by_the_spool(tmp_path: Path) -> None:
    """While inserts fail, the spool takes traffic with flat memory; when the store returns, all of it lands once."""
    fault = tmp_path / "fault"
    d = Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 100, "retry_max_ms": 500}},
               env={"OBSD_FAULT_FILE": str(fault)})
    d.start()
    assert d.proc is not None
    fault.write_text("store_down")
    acked = tmp_path / "acked.txt"
    gen = loadgen(d, seconds=6, acked=acked, concurrency=4)
    rss: list[int] = []
    ready_statuses: set[int] = set()
    for _ in range(25):
        time.sleep(0.2)
        rss.append(rss_bytes(d.proc.pid))
        ready = http("GET", d.base + "/ready")
        ready_statuses.add(ready.status)
        if ready.status == 503:
            assert "unavailable" in ready.json()["checks"]["store"]
    gen.wait(timeout=30)
    ids = acked_ids(acked)
    assert len(ids) > 1000
    assert 503 in ready_statuses
    assert d.scalar("SELECT count() FROM obsd.events") == 0
    # Memory stays flat while the backlog grows on disk (no per-event objects held for the store).
    assert max(rss[5:]) - rss[5] < 64 * 2**20
    assert d.scalar("SELECT 1") == 1
    fault.unlink()
    wait_drained(d)
    assert_exactly_once(d, ids)
    metrics = d.metrics()
    assert 'obsd_store_insert_errors_total{kind="unavailable"}' in metrics
    d.stop()


def test_full_spool_answers_503_with_retry_after_and_keeps_what_it_acked(tmp_path: Path) -> None:
    """Past its disk budget obsd refuses with 503 + Retry-After; everything it acknowledged lands later."""
    fault = tmp_path / "fault"
    fault.write_text("store_down")
    d = Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 20, "retry_max_ms": 300},
                                   "spool": {"max_spool_bytes": 300_000, "segment_bytes": 50_000}},
               env={"OBSD_FAULT_FILE": str(fault)})
    d.start()
    acked: list[str] = []
    refused = None
    for _ in range(400):
        events = [event() for _ in range(100)]
        r = d.post(envelope(events))
        if r.status == 503:
            refused = r
            break
        assert r.status == 202
        acked += [e["id"] for e in events]
    assert refused is not None, "the spool never filled"
    assert refused.json()["error"] == "spool_full" and int(refused.headers["Retry-After"]) > 0
    assert 'obsd_requests_refused_total{reason="spool_full",status="503"}' in d.metrics()
    fault.unlink()
    wait_drained(d)
    assert_exactly_once(d, acked)
    assert d.post(envelope([event()])).status == 202
    d.stop()


def _rows(n: int, tag: str) -> bytes:
    now = time.time()
    rows = [{"project_id": "demo", "event_id": str(uuid.uuid4()), "type": "custom", "ts": now, "received_at": now,
             "name": f"{tag}-{i}"} for i in range(n)]
    import msgspec
    return msgspec.json.Encoder().encode_lines(rows)


def test_corrupt_segment_keeps_good_records_and_quarantines_the_rest(tmp_path: Path) -> None:
    """A bit flip and a torn tail: recovery keeps every good record, quarantines the bad bytes, serves."""
    d = Daemon(tmp_path)
    spool = Spool(d.data_dir / "spool", segment_bytes=10**9, max_bytes=10**9)
    spool.open()
    z = zstandard.ZstdCompressor()
    spool.append(z.compress(_rows(10, "a")), 10, True)
    spool.append(z.compress(_rows(10, "b")), 10, True)
    spool.append(z.compress(_rows(10, "c")), 10, True)
    spool.append(z.compress(_rows(10, "d")), 10, True)
    spool.close()
    seg = sorted((d.data_dir / "spool").glob("*.wal"))[0]
    data = bytearray(seg.read_bytes())
    # Find record boundaries by scanning: flip a bit inside record "b", tear record "d" in half.
    from obsd.pipeline.spool import scan
    recs = scan(bytes(data)).records
    b_off, d_off = recs[1][0], recs[3][0]
    data[b_off + 30] ^= 0x40
    data = data[: d_off + (recs[3][3] - d_off) // 2]
    seg.write_bytes(bytes(data))
    d.start()
    assert d.wait_for("SELECT count() FROM obsd.events", 20) == 20
    names = {r["n"].split("-")[0] for r in d.query("SELECT name AS n FROM obsd.events")}
    assert names == {"a", "c"}
    quarantined = list((d.data_dir / "spool" / "quarantine").glob("*.bad"))
    assert len(quarantined) == 2
    assert "spool.quarantined" in d.log()
    assert d.post(envelope([event()])).status == 202
    d.stop()
    # A second start finds nothing more to quarantine: no crash loop, no manual deletion.
    d.start()
    assert len(list((d.data_dir / "spool" / "quarantine").glob("*.bad"))) == 2
    d.stop()


def test_rows_clickhouse_refuses_are_dead_lettered_and_the_rest_land(tmp_path: Path) -> None:
    """A batch with rows the table refuses is bisected: good rows land, bad ones go to events_rejected."""
    d = Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 200}})
    d.start()
    d.stop()
    store = Store(f"chdb://{d.data_dir}/clickhouse", "obsd")
    store.command("ALTER TABLE obsd.events ADD CONSTRAINT sane_amount CHECK value < 1000000")
    store.close()
    d.start()
    good = [event("custom", name="ok", value=5) for _ in range(30)]
    bad = [event("custom", name="too-big", value=5_000_000) for _ in range(3)]
    batch = good[:10] + bad[:1] + good[10:20] + bad[1:] + good[20:]
    assert d.post(envelope(batch)).json()["accepted"] == 33
    assert d.wait_for("SELECT count() FROM obsd.events_rejected WHERE stage = 'store'", 3) == 3
    assert d.scalar("SELECT count() FROM obsd.events WHERE name = 'ok'") == 30
    assert d.scalar("SELECT count() FROM obsd.events WHERE name = 'too-big'") == 0
    reasons = [r["reason"] for r in d.query("SELECT reason FROM obsd.events_rejected WHERE stage = 'store'")]
    assert all("sane_amount" in x or "CONSTRAINT" in x.upper() for x in reasons), reasons
    assert "obsd_events_dead_lettered_total 3.0" in d.metrics()
    assert d.post(envelope([event()])).status == 202
    d.stop()


def test_accounting_identity_holds(tmp_path: Path) -> None:
    """accepted = inserted + dead-lettered + still pending, read from /metrics."""
    fault = tmp_path / "fault"
    d = Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 50, "retry_max_ms": 300}},
               env={"OBSD_FAULT_FILE": str(fault)})
    d.start()
    for _ in range(5):
        assert d.post(envelope([event() for _ in range(40)])).status == 202
    fault.write_text("store_down")
    for _ in range(5):
        assert d.post(envelope([event() for _ in range(40)])).status == 202
    time.sleep(0.5)

    def sample(text: str, name: str) -> float:
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))

    m = d.metrics()
    accepted = sample(m, "obsd_events_accepted_total")
    inserted = sample(m, "obsd_events_inserted_total")
    dead = sample(m, "obsd_events_dead_lettered_total")
    pending = sample(m, "obsd_store_pending_events")
    assert accepted == 400 and pending > 0
    assert accepted == inserted + dead + pending
    fault.unlink()
    wait_drained(d)
    m = d.metrics()
    assert sample(m, "obsd_events_inserted_total") + sample(m, "obsd_events_dead_lettered_total") == 400
    d.stop(signal.SIGTERM)

