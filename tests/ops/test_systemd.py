"""systemd integration: sd_notify on a real datagram socket, the watchdog, SIGHUP reload, the unit file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsd.ops.systemd import Notifier, unit_file, watchdog_interval
from tests.harness import Daemon, NotifyListener, envelope, event, write_config


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    lst = NotifyListener(str(tmp_path / "notify.sock"))
    try:
        yield lst
    finally:
        lst.close()


def test_notify_reaches_a_path_socket(listener: NotifyListener) -> None:
    """READY=1 with a STATUS line arrives as one datagram on the socket named by NOTIFY_SOCKET."""
    n = Notifier({"NOTIFY_SOCKET": listener.address})
    assert n.ready("accepting events")
    listener.wait_for("READY=1")
    assert listener.messages[0][1] == "READY=1\nSTATUS=accepting events"
    n.close()


def test_notify_reaches_an_abstract_socket() -> None:
    """An '@' address is Linux's abstract namespace, as systemd hands it out."""
    lst = NotifyListener(f"@obsd-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        n = Notifier({"NOTIFY_SOCKET": lst.address})
        assert n.stopping()
        lst.wait_for("STOPPING=1")
        n.close()
    finally:
        lst.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    """Outside systemd the notifier is a no-op and says so."""
    n = Notifier({})
    assert not n.ready()
    assert not n.notify("STATUS=anything")


def test_watchdog_interval_honours_watchdog_pid() -> None:
    """WATCHDOG_USEC applies only to the process named by WATCHDOG_PID, when that is set."""
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None


def test_daemon_lifecycle_notifications(tmp_path: Path, listener: NotifyListener) -> None:
    """READY=1 once events are accepted, WATCHDOG=1 while running, RELOADING/READY on SIGHUP, STOPPING=1."""
    d = Daemon(tmp_path, env={"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "600000"})
    d.start(wait_ready=False)
    try:
        ready = listener.wait_for("READY=1")
        # At READY=1 the listener is open and ingestion answers.
        assert d.post(envelope([event()])).status == 202
        first_wd = listener.wait_for("WATCHDOG=1", ready)
        listener.wait_for("WATCHDOG=1", first_wd + 1)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING=1", ready + 1)
        assert "MONOTONIC_USEC=" in listener.messages[reloading][1]
        listener.wait_for("READY=1", reloading)
        assert d.stop() == 0
        stopping = listener.wait_for("STOPPING=1", reloading)
        assert stopping > reloading
        assert listener.kinds()[0] == "READY=1", "nothing may claim readiness before the listener is open"
    finally:
        d.stop()


def test_sighup_reload_changes_keys_under_traffic_without_losing_events(tmp_path: Path,
                                                                       listener: NotifyListener) -> None:
    """A key rotated and a project added by SIGHUP while posts flow: every 202'd event is stored."""
    old = [{"id": "demo", "write_key": "key-aaaaaaaaaaaaaaaa"}]
    new = [{"id": "demo", "write_key": "key-bbbbbbbbbbbbbbbb"}, {"id": "shop", "write_key": "key-cccccccccccccccc"}]
    d = Daemon(tmp_path, projects=old, sections={"pipeline": {"batch_interval_ms": 50}},
               env={"NOTIFY_SOCKET": listener.address})
    d.start()
    results: list[tuple[float, float, str, int, int]] = []  # (sent, answered, key, status, accepted)
    errors: list[BaseException] = []
    stop = threading.Event()

    def traffic() -> None:
        keys = ["key-aaaaaaaaaaaaaaaa", "key-bbbbbbbbbbbbbbbb", "key-cccccccccccccccc"]
        i = 0
        while not stop.is_set():
            key = keys[i % 3]
            i += 1
            sent = time.monotonic()
            try:
                r = d.post(envelope([event(), event("click")]), key=key)
            except OSError as exc:  # a dropped connection would be a failed reload
                errors.append(exc)
                return
            results.append((sent, time.monotonic(), key, r.status,
                            r.json().get("accepted", 0) if r.status == 202 else 0))

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        write_config(d.config, d.data_dir, d.port, projects=new, sections={"pipeline": {"batch_interval_ms": 50}})
        assert d.proc is not None
        pid = d.proc.pid
        hup_at = time.monotonic()
        d.proc.send_signal(signal.SIGHUP)
        listener.wait_for("READY=1", listener.wait_for("RELOADING=1"))
        reloaded_at = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        assert not errors, errors
        assert d.proc is not None and d.proc.pid == pid and d.proc.poll() is None
        assert {r[3] for r in results} <= {202, 401}, "a reload must not cause errors other than old keys"
        before = [r for r in results if r[1] < hup_at]  # answered before SIGHUP was sent
        after = [r for r in results if r[0] > reloaded_at]  # sent after READY=1 said the reload is done
        assert before and after
        assert {(k, s) for _, _, k, s, _ in before} == {("key-aaaaaaaaaaaaaaaa", 202), ("key-bbbbbbbbbbbbbbbb", 401),
                                                   ("key-cccccccccccccccc", 401)}
        assert {(k, s) for _, _, k, s, _ in after} == {("key-aaaaaaaaaaaaaaaa", 401), ("key-bbbbbbbbbbbbbbbb", 202),
                                                  ("key-cccccccccccccccc", 202)}
        demo = sum(a for _, _, k, _, a in results if k in ("key-aaaaaaaaaaaaaaaa", "key-bbbbbbbbbbbbbbbb"))
        shop = sum(a for _, _, k, _, a in results if k == "key-cccccccccccccccc")
        assert d.wait_for("SELECT count() FROM obsd.events WHERE project_id = 'demo'", demo) == demo
        assert d.wait_for("SELECT count() FROM obsd.events WHERE project_id = 'shop'", shop) == shop
        assert 'obsd_config_reloads_total{result="ok"} 1.0' in d.metrics()
    finally:
        d.stop()


def test_a_broken_config_on_reload_keeps_the_old_one(tmp_path: Path, listener: NotifyListener) -> None:
    """A config that fails validation on SIGHUP is refused; obsd keeps serving with the previous keys."""
    d = Daemon(tmp_path, env={"NOTIFY_SOCKET": listener.address})
    d.start()
    try:
        d.config.write_text(d.config.read_text() + "\n[server]\nlisten = 'nonsense'\n")
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        i = listener.wait_for("READY=1", listener.wait_for("RELOADING=1"))
        assert "reload failed" in listener.messages[i][1]
        assert d.post(envelope([event()])).status == 202
        assert 'obsd_config_reloads_total{result="error"} 1.0' in d.metrics()
    finally:
        d.stop()


def test_systemd_unit_command_prints_a_hardened_unit() -> None:
    """`obsd systemd-unit` prints Type=notify with the watchdog, reload and hardening the issue asks for."""
    out = subprocess.run([sys.executable, "-m", "obsd.cli", "systemd-unit", "--exec", "/opt/obsd/bin/obsd",
                          "--data-dir", "/srv/obsd"], capture_output=True, text=True, check=True).stdout
    lines = set(out.splitlines())
    for want in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30s", "ExecReload=/bin/kill -HUP $MAINPID",
                 "ProtectSystem=strict", "ReadWritePaths=/srv/obsd", "NoNewPrivileges=yes", "User=obsd",
                 "LimitNOFILE=65536", "Restart=on-failure",
                 "ExecStart=/opt/obsd/bin/obsd serve --config /etc/obsd/obsd.toml"):
        assert want in lines, want


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The generated unit verifies cleanly; a unit whose ExecStart is missing does not (the check can fail)."""
    exe = shutil.which("obsd") or str(Path(sys.executable).parent / "obsd")
    good = tmp_path / "obsd.service"
    good.write_text(unit_file(exec_start=exe, data_dir=str(tmp_path)))
    r = subprocess.run(["systemd-analyze", "verify", str(good)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "obsd-bad.service"
    bad.write_text(unit_file(exec_start=str(tmp_path / "missing" / "obsd"), data_dir=str(tmp_path)))
    r = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0

