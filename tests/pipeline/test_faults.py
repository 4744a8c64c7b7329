"""No wedge, no silent loss: real daemons under load while the disk, the store or a stage fails.

Load comes from bench/loadgen.py in its own process with --retry: every batch carries a batch_id and
is resent unchanged after a 503 or a lost answer until it gets a 202, as the browser SDK does. After
each fault: every acknowledged id is stored exactly once, nothing is stored twice, nothing that was
never sent is stored, no request waited past its deadline, and nothing answered 500.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ADMIN_TOKEN, ROOT, WRITE_KEY, Daemon, envelope, event, http
from tests.pipeline.test_durability import assert_exactly_once, wait_drained

LOADGEN = ROOT / "bench" / "loadgen.py"
FAST = {"batch_interval_ms": 50, "retry_max_ms": 300, "stall_timeout_s": 2.0}


def status(d: Daemon) -> dict[str, Any]:
    r = http("GET", d.base + "/v1/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status == 200
    return dict(r.json())


class Load:
    """A loadgen run in the background, with the ids it sent and the ids that got a 202."""

    def __init__(self, d: Daemon, root: Path, seconds: float, concurrency: int = 4, timeout: float = 15.0) -> None:
        self.acked, self.sent = root / "acked.txt", root / "sent.txt"
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, str(LOADGEN), "--url", d.base, "--key", WRITE_KEY, "--seconds", str(seconds),
             "--concurrency", str(concurrency), "--batch", "50", "--retry", "--acked-file", str(self.acked),
             "--sent-file", str(self.sent), "--timeout", str(timeout), "--max-wait", "0.5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err.decode()
        return dict(json.loads(out))

    def ids(self, path: Path) -> list[str]:
        return [x for x in path.read_text().splitlines() if len(x) == 36] if path.exists() else []


def check_outcome(d: Daemon, load: Load, stats: dict[str, Any]) -> None:
    """The promises after any fault: exactly once for what was acknowledged, nothing invented, no 500,
    no request that outlived the client's patience."""
    assert "500" not in stats["statuses"], stats
    assert stats["max_ms"] < load.timeout * 1000, f"a request took {stats['max_ms']} ms: {stats}"
    acked, sent = load.ids(load.acked), set(load.ids(load.sent))
    assert len(acked) > 500, f"too little was acknowledged to prove anything: {stats}"
    wait_drained(d, timeout=90)
    assert_exactly_once(d, acked)
    stored = int(d.scalar("SELECT count() FROM obsd.events"))
    assert stored <= len(sent)
    accounts = status(d)["accounts"]
    assert accounts["balanced"] and accounts["pending"] == 0, accounts


@contextmanager
def fault(path: Path, switch: str) -> Iterator[None]:
    path.write_text(switch)
    try:
        yield
    finally:
        path.write_text("")


def faulty_daemon(tmp_path: Path, **sections: dict[str, Any]) -> tuple[Daemon, Path]:
    switch = tmp_path / "fault"
    switch.write_text("")
    d = Daemon(tmp_path, sections={"pipeline": dict(FAST), **sections}, env={"OBSD_FAULT_FILE": str(switch)})
    return d.start(), switch


# -- the disk ------------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB filesystem of its own (tmpfs; root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root; the injected ENOSPC tests below cover the same paths")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_during_a_store_outage_recovers_by_itself(tmp_path: Path, small_disk: Path) -> None:
    """The spool fills a real 4 MiB filesystem while ClickHouse is down: clients get 503 spool_full, none
    hangs; when the store returns, the writer drains, space frees, traffic is taken again by itself, and
    everything acknowledged is stored once (the failure that used to kill the writer on its checkpoint)."""
    d, switch = faulty_daemon(tmp_path, spool={"dir": str(small_disk / "spool"), "segment_bytes": 512 << 10,
                                               "max_spool_bytes": 1 << 30})
    switch.write_text("store_down")
    load = Load(d, tmp_path, seconds=60)
    full_at = None
    for _ in range(450):
        time.sleep(0.1)
        if "spool_errors_total{kind=\"spool_full\"}" in d.metrics():
            full_at = time.monotonic()
            break
    assert full_at is not None, "the disk never filled"
    assert http("GET", d.base + "/ready").status == 503
    switch.write_text("")
    recovered = None
    while time.monotonic() - full_at < 30:
        if "spool_full" not in json.dumps(status(d)["checks"]) and http("GET", d.base + "/ready").status == 200:
            recovered = time.monotonic() - full_at
            break
        time.sleep(0.2)
    assert recovered is not None, status(d)["checks"]
    stats = load.finish()
    assert stats["reasons"].get("spool_full", 0) > 0, stats
    check_outcome(d, load, stats)
    print(f"\nfull disk: {stats['statuses']} reasons={stats['reasons']}; ready again {recovered:.1f} s after the "
          f"store came back; acked {len(load.ids(load.acked))} stored once")
    assert d.stop() == 0


@pytest.mark.parametrize("switch", ["spool_enospc", "spool_eio_fsync", "spool_eio_checkpoint", "spool_stall"])
def test_injected_disk_faults_cost_503s_not_a_wedge(tmp_path: Path, switch: str) -> None:
    """A torn write (ENOSPC), a failed fdatasync (EIO), a failed checkpoint or a hanging disk: the requests
    caught in it get 503 with Retry-After (never a hang or a 500), and obsd takes traffic again by itself."""
    d, path = faulty_daemon(tmp_path, server={"accept_deadline_s": 1.5})
    load = Load(d, tmp_path, seconds=7, timeout=10)
    time.sleep(1.5)
    with fault(path, switch):
        time.sleep(2.5)
    stats = load.finish()
    if switch == "spool_eio_checkpoint":
        assert set(stats["statuses"]) == {"202"}, stats  # the checkpoint is retried; requests never notice
    else:
        assert stats["statuses"].get("503", 0) > 0, stats
    check_outcome(d, load, stats)
    assert d.stop() == 0


# -- the store and the stages --------------------------------------------------------------------------

def test_a_slow_store_makes_requests_wait_then_refuse_at_the_deadline(tmp_path: Path) -> None:
    """With the store behind, requests wait for its progress, and past server.accept_deadline_s get 503
    accept_timeout with Retry-After instead of waiting without end."""
    d, path = faulty_daemon(tmp_path, server={"accept_deadline_s": 1.0},
                            pipeline={**FAST, "batch_max_events": 100})
    load = Load(d, tmp_path, seconds=6, concurrency=8, timeout=10)
    time.sleep(1.0)
    with fault(path, "store_slow"):
        time.sleep(3.0)
    stats = load.finish()
    assert stats["reasons"].get("accept_timeout", 0) > 0, stats
    check_outcome(d, load, stats)
    assert d.stop() == 0


@pytest.mark.parametrize("stage", ["writer", "committer"])
def test_a_stage_that_throws_is_reported_and_recovers(tmp_path: Path, stage: str) -> None:
    """An exception inside the writer thread or the committer task: caught, counted, /ready names the stage
    and its error while it cannot progress, and when the fault goes the stage goes on; nothing is lost."""
    d, path = faulty_daemon(tmp_path)
    load = Load(d, tmp_path, seconds=8, timeout=10)
    time.sleep(1.0)
    seen_unready = None
    with fault(path, f"{stage}_raise"):
        for _ in range(60):
            time.sleep(0.1)
            r = http("GET", d.base + "/ready")
            if r.status == 503 and f"fault injected: {stage}_raise" in r.json()["checks"][stage]:
                seen_unready = r.json()["checks"]
                break
    assert seen_unready is not None, "/ready never named the failing stage"
    stats = load.finish()
    assert f'obsd_stage_failures_total{{stage="{stage}"}}' in d.metrics()
    check_outcome(d, load, stats)
    assert http("GET", d.base + "/ready").status == 200
    assert d.stop() == 0


def test_a_wedged_stage_stops_feeding_the_watchdog(tmp_path: Path) -> None:
    """While the writer keeps throwing past the stall timeout, WATCHDOG=1 stops (systemd would restart
    obsd) and the status names why; a store outage alone does not stop it."""
    from tests.harness import NotifyListener

    lst = NotifyListener(str(tmp_path / "notify.sock"))
    switch = tmp_path / "fault"
    switch.write_text("")
    d = Daemon(tmp_path, sections={"pipeline": dict(FAST)},
               env={"OBSD_FAULT_FILE": str(switch), "NOTIFY_SOCKET": lst.address, "WATCHDOG_USEC": "600000"})
    try:
        d.start()
        lst.wait_for("WATCHDOG=1")
        switch.write_text("store_down")
        assert d.post(envelope([event()])).status == 202
        time.sleep(3.0)  # past the stall timeout: the writer is stalled by the store, not wedged
        mark = len(lst.messages)
        lst.wait_for("WATCHDOG=1", after=mark, timeout=2)
        switch.write_text("writer_raise")
        assert d.post(envelope([event()])).status == 202  # work the throwing writer cannot do
        wedged = lst.wait_for("STATUS=wedged: writer", after=mark, timeout=10)
        time.sleep(1.0)
        assert "WATCHDOG=1" not in lst.kinds()[wedged + 1:]
        switch.write_text("")
        lst.wait_for("WATCHDOG=1", after=len(lst.messages), timeout=15)
        assert d.wait_for("SELECT count() FROM obsd.events", 2) == 2
    finally:
        d.stop()
        lst.close()


# -- retries, restarts and accounting -----------------------------------------------------------------

def test_a_crash_between_fsync_and_answer_then_a_resend_stores_once(tmp_path: Path) -> None:
    """The process dies after the batch is durable but before the 202; the client resends the same batch
    (same batch_id) to the restarted daemon: 202 with duplicate=true, and the events are stored once."""
    d, switch = faulty_daemon(tmp_path)
    body = envelope([event() for _ in range(5)], batch_id=str(uuid.uuid4()))
    switch.write_text("exit_after_commit")
    with pytest.raises(OSError):
        d.post(body)
    assert d.proc is not None and d.proc.wait(30) == 137
    switch.write_text("")
    d.start()
    r = d.post(body)
    assert r.status == 202 and r.json() == {"accepted": 0, "rejected": [], "duplicate": True}
    assert d.wait_for("SELECT count() FROM obsd.events", 5) == 5
    other = d.post(envelope([event()], batch_id=str(uuid.uuid4())))
    assert other.status == 202 and other.json()["accepted"] == 1
    assert d.wait_for("SELECT count() FROM obsd.events", 6) == 6
    assert 'obsd_batches_duplicate_total 1.0' in d.metrics()
    assert d.stop() == 0


def test_concurrent_resends_of_one_batch_store_it_once(tmp_path: Path) -> None:
    """The same batch sent four times at once (a retry racing its first attempt): stored once."""
    import concurrent.futures

    d = Daemon(tmp_path, sections={"pipeline": dict(FAST)}).start()
    body = envelope([event() for _ in range(3)], batch_id=str(uuid.uuid4()))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: d.post(body), range(4)))
    assert [a.status for a in answers] == [202] * 4
    assert sorted(a.json()["accepted"] for a in answers) == [0, 0, 0, 3]
    assert d.wait_for("SELECT count() FROM obsd.events", 3) == 3
    time.sleep(0.5)
    assert d.scalar("SELECT count() FROM obsd.events") == 3
    assert d.stop() == 0


def test_accounting_balances_at_every_moment_and_across_a_crash(tmp_path: Path) -> None:
    """accepted + replayed = inserted + dead-lettered + pending in every status sample taken while load
    runs (no sleeps between samples), and again after kill -9 and a restart (replayed events counted)."""
    d = Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 100}}).start()
    load = Load(d, tmp_path, seconds=5, concurrency=4)
    samples = 0
    while load.proc.poll() is None:
        accounts = status(d)["accounts"]
        assert accounts["balanced"], accounts
        samples += 1
    assert samples > 20 and accounts["accepted"] > 0
    d.kill()
    d.start()
    after = status(d)["accounts"]
    assert after["balanced"] and after["accepted"] == 0, after
    wait_drained(d)
    final = status(d)["accounts"]
    assert final["balanced"] and final["pending"] == 0
    assert final["inserted"] == final["replayed"]
    assert d.stop() == 0


# -- dead letters, imports, freshness, SDK drops --------------------------------------------------------

def test_dead_letters_are_durable_deduplicated_and_bounded(tmp_path: Path) -> None:
    """Refused events reach events_rejected through the spool (stored once across a crash); past
    spool.max_rejected_bytes they are dropped and counted, while valid events are still accepted."""
    d = Daemon(tmp_path, sections={"pipeline": dict(FAST)}).start()
    r = d.post(envelope([event(), event(id="not-a-uuid"), event(id="also-not")]))
    assert r.status == 202 and r.json()["accepted"] == 1
    assert d.wait_for("SELECT count() FROM obsd.events_rejected", 2) == 2
    d.kill()  # the rejected spool replays what it holds; tokens keep it from landing twice
    d.start()
    time.sleep(1.0)
    assert d.scalar("SELECT count() FROM obsd.events_rejected") == 2
    d.stop()
    tiny = Daemon(tmp_path / "tiny", sections={"pipeline": dict(FAST), "spool": {"max_rejected_bytes": 1}}).start()
    r = tiny.post(envelope([event(), event(id="bad")]))
    assert r.status == 202 and r.json()["accepted"] == 1
    r = tiny.post(envelope([event(), event(id="bad-again")]))
    assert r.status == 202 and r.json()["accepted"] == 1
    assert tiny.wait_for("SELECT count() FROM obsd.events", 2) == 2
    assert 'obsd_dead_letters_dropped_total{reason="full"}' in tiny.metrics()
    assert tiny.stop() == 0


def test_imports_too_large_for_the_buffer_get_413_and_many_months_do_not_wedge(tmp_path: Path) -> None:
    """An envelope whose rows can never fit the ring is a 413 with a reason (not an endless 503); an
    import spanning 150 months lands (split by month, and split again if ClickHouse refuses a batch
    for its partitions)."""
    d = Daemon(tmp_path, sections={"pipeline": {**FAST, "ring_max_events": 200, "batch_max_events": 100}}).start()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/x-ndjson"}
    big = json.dumps(envelope([event() for _ in range(300)])).encode()
    r = http("POST", d.base + "/v1/admin/import?project=demo", big, headers)
    assert r.status == 413 and r.json()["error"] == "too_large_for_buffer" and "ring_max_events" in r.json()["reason"]
    now_ms = int(time.time() * 1000)
    month_ms = 30 * 86_400_000
    lines = [json.dumps(envelope([event(ts=now_ms - m * month_ms)], session_id=f"m{m}")) for m in range(150)]
    r = http("POST", d.base + "/v1/admin/import?project=demo&batch_id=" + str(uuid.uuid4()),
             "\n".join(lines).encode(), headers)
    assert r.status == 202 and r.json()["accepted"] == 150
    assert d.wait_for("SELECT count() FROM obsd.events", 150, timeout=60) == 150
    assert d.scalar("SELECT uniqExact(toYYYYMM(ts)) FROM obsd.events") >= 140
    assert d.stop() == 0


def test_a_resent_import_stores_only_what_was_missing(tmp_path: Path) -> None:
    """The same import body with the same batch_id twice: the second stores nothing and says so."""
    d = Daemon(tmp_path, sections={"pipeline": dict(FAST)}).start()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/x-ndjson"}
    body = "\n".join(json.dumps(envelope([event(), event()], session_id=f"s{i}")) for i in range(10)).encode()
    url = d.base + "/v1/admin/import?project=demo&batch_id=" + str(uuid.uuid4())
    first, second = http("POST", url, body, headers), http("POST", url, body, headers)
    assert first.json()["accepted"] == 20 and second.json() == {**second.json(), "accepted": 0, "duplicate": 20}
    assert d.wait_for("SELECT count() FROM obsd.events", 20) == 20
    assert d.stop() == 0


def test_freshness_and_sdk_drops_are_reported(tmp_path: Path) -> None:
    """Accept → visible is observed per batch and shown with p50/p99; the SDK's dropped count is kept
    per project."""
    d = Daemon(tmp_path, sections={"pipeline": dict(FAST)}).start()
    for _ in range(5):
        assert d.post(envelope([event()], dropped=7)).status == 202
    d.wait_for("SELECT count() FROM obsd.events", 5)
    time.sleep(0.3)
    doc = status(d)
    assert doc["freshness"]["count"] >= 1 and 0 < doc["freshness"]["p50"] <= doc["freshness"]["p99"] < 10
    assert 'obsd_sdk_dropped_events_total{project="demo"} 35.0' in d.metrics()
    out = subprocess.run([sys.executable, "-m", "obsd.cli", "status", "--config", str(d.config), "--once"],
                         capture_output=True, text=True, timeout=60)
    assert "freshness p50" in out.stdout and "balanced" in out.stdout, out.stdout
    assert d.stop() == 0
