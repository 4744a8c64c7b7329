"""`obsd tail`: the filter language, the bounded hub, and live streams from a real daemon."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from obsd.cli.tail_client import TailEvent, TailNotice, follow
from obsd.ops.tail import Subscription, TailHub
from obsd.ops.tailfilter import FilterError, TailFilter, parse_expression
from tests.harness import ADMIN_TOKEN, Daemon, envelope, event
from tests.strategies import tail_comparisons

ROW = {"project_id": "demo", "type": "custom", "name": "purchase", "path": "/checkout/success",
       "country": "DE", "value": 0.0, "props": '{"amount": 99.5, "coupon": true, "cart": {"items": 3}}'}


@pytest.mark.parametrize(("expr", "expected"), [
    ("props.amount > 50", True),
    ("props.amount > 100", False),
    ("props.amount >= 99.5 and props.amount <= 99.5", True),
    ("props.cart.items == 3", True),
    ("props.coupon == true", True),
    ("props.missing > 1", False),
    ("props.missing != 1", True),
    ("type == custom and name == 'purchase'", True),
    ('path ~ "/checkout"', True),
    ('path !~ "/checkout"', False),
    ("not (country == DE or country == FR)", False),
    ("type == error or props.amount > 90", True),
    ("props.coupon", True),
    ("error_message", False),
    ("value == 0", True),
])
def test_expressions_select_the_rows_users_expect(expr: str, expected: bool) -> None:
    """Comparisons on fields and props, with and/or/not and parentheses, evaluate as documented."""
    assert parse_expression(expr)(ROW) is expected


@pytest.mark.parametrize(("expr", "hint"), [
    ("props.amount >", "ends too early"),
    ("amount > 5", "unknown field"),
    ("props.amount > 5 props.x", "unexpected"),
    ("(type == error", "ends too early"),
    ("type == error $", "column 15"),
    ("", "empty"),
])
def test_malformed_expressions_say_where(expr: str, hint: str) -> None:
    """A filter that cannot be read is refused with a message that points at the problem."""
    with pytest.raises(FilterError, match=hint.replace("(", r"\(")):
        parse_expression(expr)


@given(tail_comparisons())
def test_numeric_comparisons_agree_with_python(case: tuple[float, str, float]) -> None:
    """`props.x OP n` is exactly Python's comparison of the numbers."""
    value, op, threshold = case
    row = {"props": json.dumps({"x": value})}
    py = {">": value > threshold, ">=": value >= threshold, "<": value < threshold,
          "<=": value <= threshold, "==": value == threshold, "!=": value != threshold}[op]
    assert parse_expression(f"props.x {op} {threshold!r}")(row) is py


def test_flag_filters_and_deterministic_sampling() -> None:
    """--project/--type/--name/--path narrow the rows; --sample keeps a stable share of event ids."""
    rows = [dict(ROW, event_id=f"{i:08d}-0000-4000-8000-000000000000", type=t, path=p)
            for i, (t, p) in enumerate([("pageview", "/"), ("error", "/checkout"), ("custom", "/checkout/x")] * 400)]
    assert sum(TailFilter(types=frozenset({"error"})).matches(r) for r in rows) == 400
    assert sum(TailFilter(path="/checkout*").matches(r) for r in rows) == 800
    assert sum(TailFilter(projects=frozenset({"other"})).matches(r) for r in rows) == 0
    half = [r for r in rows if TailFilter(sample=0.5).matches(r)]
    assert 450 < len(half) < 750
    assert half == [r for r in rows if TailFilter(sample=0.5).matches(r)]
    with pytest.raises(FilterError):
        TailFilter(sample=0)


def test_release_environment_and_protocol_filters() -> None:
    """--release/--environment/--protocol narrow the rows; a row without protocol came by obsd's own."""
    rows = [dict(ROW, release="shop@1", environment="prod"), dict(ROW, release="shop@2", environment="prod",
                                                                   protocol="sentry"),
            dict(ROW, release="shop@2", environment="staging", protocol="plausible")]
    assert [r.get("protocol") for r in rows if TailFilter(protocols=frozenset({"obsd"})).matches(r)] == [None]
    assert len([r for r in rows if TailFilter(releases=frozenset({"shop@2"})).matches(r)]) == 2
    both = TailFilter(releases=frozenset({"shop@2"}), environments=frozenset({"prod"}))
    assert [r["protocol"] for r in rows if both.matches(r)] == ["sentry"]
    assert [r for r in rows if parse_expression('protocol == "obsd"')(r)] == rows[:1]
    flt = TailFilter.from_query({}, lambda k: {"protocol": ["sentry,plausible"], "release": ["a"]}.get(k, []))
    assert flt.protocols == {"sentry", "plausible"} and flt.releases == {"a"} and not flt.passes_all
    assert TailFilter.from_query(dict(flt.to_query()), lambda k: [v for q, v in flt.to_query() if q == k]) == flt


def test_publish_without_viewers_does_nothing_and_a_full_queue_counts_missed() -> None:
    """No viewer: publish is a no-op. A viewer's queue is bounded; what does not fit is counted."""
    hub = TailHub(queue_bytes=100, queue_chunks=10)
    hub.publish(b"x\n" * 1000)  # nobody watching
    sub: Subscription = hub.subscribe()
    hub.publish(b'{"a":1}\n' * 10)  # 80 bytes: fits
    hub.publish(b'{"a":1}\n' * 5)  # 40 more bytes: over the bound, dropped and counted
    assert sub.queued_bytes == 80
    assert sub.missed == 5
    hub.unsubscribe(sub)
    assert hub.stats() == []


# Against a real daemon.

def _viewer_ids(d: Daemon) -> set[int]:
    return {v["id"] for v in _status(d).get("tail", [])}


def _wait_viewers(d: Daemon, n: int, known: set[int] | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The viewers that connected besides `known`, once there are at least n of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        viewers = [v for v in _status(d).get("tail", []) if v["id"] not in (known or set())]
        if len(viewers) >= n:
            return viewers
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} new tail viewers connected")


def _status(d: Daemon) -> dict[str, Any]:
    from tests.harness import http

    r = http("GET", d.base + "/v1/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status == 200, r.body
    return dict(r.json())


class Collector:
    """Runs follow() in a thread and keeps what it yields."""

    def __init__(self, d: Daemon, flt: TailFilter) -> None:
        self.items: list[TailEvent | TailNotice] = []
        self.responses: list[Any] = []
        self.thread = threading.Thread(target=self._run, args=(d.base, flt), daemon=True)
        self.thread.start()

    def _open(self, req: urllib.request.Request, timeout: float) -> Any:
        resp = urllib.request.urlopen(req, timeout=timeout)
        self.responses.append(resp)
        return resp

    def _run(self, base: str, flt: TailFilter) -> None:
        for item in follow(base, ADMIN_TOKEN, flt, read_timeout=5.0, reconnect=False, opener=self._open):
            self.items.append(item)

    def close(self) -> None:
        for r in self.responses:
            r.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(10)

    def events(self) -> list[dict[str, Any]]:
        return [i.row for i in self.items if isinstance(i, TailEvent)]

    def wait(self, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.events()) < n:
            time.sleep(0.05)
        return self.events()


def test_tail_streams_posted_events_with_filters_applied(daemon: Daemon) -> None:
    """A filtered viewer gets exactly the matching events, as stored rows; an unfiltered one gets all."""
    known = _viewer_ids(daemon)
    everything = Collector(daemon, TailFilter())
    big = Collector(daemon, TailFilter(types=frozenset({"custom"}), expression="props.amount > 50"))
    _wait_viewers(daemon, 2, known)
    evs = [event("custom", props={"amount": 10}), event("custom", props={"amount": 60}), event("pageview"),
           event("error"), event("custom", props={"amount": 75.5}), event("custom", name="signup", props={})]
    assert daemon.post(envelope(evs, url="https://shop.example/checkout")).json()["accepted"] == 6
    got = big.wait(2)
    time.sleep(0.3)  # nothing else should arrive
    assert sorted(r["event_id"] for r in big.events()) == sorted([evs[1]["id"], evs[4]["id"]])
    assert {r["path"] for r in got} == {"/checkout"} and all(r["project_id"] == "demo" for r in got)
    assert {r["event_id"] for r in everything.wait(6)} == {e["id"] for e in evs}
    everything.close()
    big.close()
    assert not everything.thread.is_alive()


def test_tail_refuses_without_token_or_with_a_bad_filter(daemon: Daemon) -> None:
    """The stream is an admin endpoint, and a filter it cannot read is a 400 with the reason."""
    from tests.harness import http

    assert http("GET", daemon.base + "/v1/admin/tail").status == 401
    r = http("GET", daemon.base + "/v1/admin/tail?where=amount%20%3E", headers={
        "Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status == 400 and r.json()["error"] == "invalid_filter"


def test_cli_tail_json_and_coloured_lines(daemon: Daemon) -> None:
    """`obsd tail --json --limit N` prints N NDJSON rows; without --json one readable line per event."""
    known = _viewer_ids(daemon)
    cmd = [sys.executable, "-m", "obsd.cli", "tail", "--config", str(daemon.config), "--limit", "2"]
    js = subprocess.Popen([*cmd, "--json", "--type", "error"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    human = subprocess.Popen([*cmd, "--type", "web_vital"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**__import__("os").environ, "COLUMNS": "200"})
    try:
        _wait_viewers(daemon, 2, known)
        errs = [event("error", message=f"boom {i}") for i in range(2)]
        vitals = [event("web_vital", name="LCP", value=5000.0, rating="poor"),
                  event("web_vital", name="CLS", value=0.05, rating="good")]
        daemon.post(envelope([event(), errs[0], vitals[0], errs[1], vitals[1]]))
        out, _ = js.communicate(timeout=30)
        rows = [json.loads(line) for line in out.decode().splitlines()]
        assert [r["error_message"] for r in rows] == ["boom 0", "boom 1"]
        text, _ = human.communicate(timeout=30)
        lines = text.decode().splitlines()
        assert len(lines) == 2
        assert "web_vital" in lines[0] and "LCP 5000 ms poor" in lines[0]
        assert "CLS 0.050 good" in lines[1]
    finally:
        for p in (js, human):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_stalled_viewer_does_not_slow_or_lose_ingestion(daemon: Daemon) -> None:
    """A viewer that never reads misses events (counted), while every posted event is still stored."""
    before = int(daemon.scalar("SELECT count() FROM obsd.events"))
    known = _viewer_ids(daemon)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", daemon.port))
    stalled.sendall(f"GET /v1/admin/tail HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
                    .encode())
    try:
        viewers = _wait_viewers(daemon, 1, known)
        pad = "x" * 4000
        posted = 0
        for _ in range(60):
            r = daemon.post(envelope([event("custom", props={"pad": pad, "i": i}) for i in range(100)]))
            assert r.status == 202
            posted += r.json()["accepted"]
        assert posted == 6000
        mine = next(v for v in _status(daemon)["tail"] if v["id"] == viewers[0]["id"])
        assert mine["missed"] > 0, "24 MB through a viewer that never reads must overflow its 8 MiB queue"
        assert mine["missed"] + mine["sent"] <= posted
        assert daemon.wait_for("SELECT count() FROM obsd.events", before + posted, timeout=30) == before + posted
        missed_total = next(float(line.split()[1]) for line in daemon.metrics().splitlines()
                            if line.startswith("obsd_tail_events_missed_total "))
        assert missed_total >= mine["missed"]
    finally:
        stalled.close()


def test_tail_reconnects_when_the_daemon_restarts(tmp_path: Path) -> None:
    """`obsd tail` keeps going across a daemon restart and shows events from both lives."""
    d = Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 50}}).start()
    proc = subprocess.Popen([sys.executable, "-m", "obsd.cli", "tail", "--config", str(d.config), "--json",
                             "--limit", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_viewers(d, 1)
        d.post(envelope([event("custom", name="first")]))
        assert d.stop() == 0
        d2 = Daemon(tmp_path, port=d.port, sections={"pipeline": {"batch_interval_ms": 50}}).start()
        try:
            _wait_viewers(d2, 1)
            second = event("custom", name="second")
            d2.post(envelope([second]))
            out, err = proc.communicate(timeout=30)
        finally:
            d2.stop()
        names = [json.loads(line)["name"] for line in out.decode().splitlines()]
        assert names == ["first", "second"]
        assert "reconnecting" in err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        d.stop()


def test_a_stuck_viewer_does_not_hold_up_shutdown(fresh_daemon: Daemon) -> None:
    """SIGTERM with a viewer that stopped reading: obsd still drains and exits 0 promptly."""
    d = fresh_daemon
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", d.port))
    stuck.sendall(f"GET /v1/admin/tail HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode())
    try:
        _wait_viewers(d, 1)
        pad = "x" * 4000
        for _ in range(20):  # enough to block the viewer's socket
            assert d.post(envelope([event("custom", props={"pad": pad}) for _ in range(100)])).status == 202
        started = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - started < 20, "shutdown must not wait out a stuck viewer's write"
    finally:
        stuck.close()


def test_cli_tail_shows_and_filters_by_protocol_release_and_environment(tmp_path: Path) -> None:
    """Plausible and Sentry events stream like obsd's; lines name the protocol and the release."""
    from tests.harness import http

    key = "tail_sentry_key_01"  # a Sentry DSN's key: letters, digits and _
    projects = [{"id": "demo", "write_key": key, "allowed_origins": ["*"], "domains": ["shop.example"],
                 "sentry_id": 42}]
    with Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 50}}, projects=projects) as d:
        cmd = [sys.executable, "-m", "obsd.cli", "tail", "--config", str(d.config), "--limit", "1"]
        env = {**__import__("os").environ, "COLUMNS": "200"}
        procs = [subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                 for args in (["--json", "--protocol", "sentry", "--release", "shop@2", "--environment", "prod"],
                              ["--protocol", "plausible"], ["--protocol", "sentry"])]
        try:
            _wait_viewers(d, 3)
            d.post(envelope([event("error", message="from obsd")], release="shop@2", environment="prod"), key=key)
            for release, env_name, message in (("shop@1", "prod", "old release"), ("shop@2", "prod", "the one")):
                body = (b'{}\n{"type":"event"}\n' + json.dumps({
                    "message": message, "platform": "javascript", "release": release, "environment": env_name,
                    "timestamp": time.time()}).encode())
                assert http("POST", f"{d.base}/api/42/envelope/?sentry_key={key}", body).status == 200
            assert http("POST", f"{d.base}/api/event", json.dumps({"n": "pageview", "u": "https://shop.example/p",
                                                                   "d": "shop.example"}).encode()).status == 202
            outs = [p.communicate(timeout=30)[0].decode() for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        [row] = [json.loads(line) for line in outs[0].splitlines()]
        assert (row["error_message"], row["protocol"], row["release"]) == ("the one", "sentry", "shop@2")
        assert "[plausible]" in outs[1] and "pageview" in outs[1] and "/p" in outs[1]
        assert "[sentry]" in outs[2] and "old release" in outs[2] and "@shop@1 (prod)" in outs[2]
