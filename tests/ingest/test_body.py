"""Request bodies: every gzip member is read, bombs stop at the cap, large bodies inflate off the loop."""

from __future__ import annotations

import gzip
import json
import secrets

import pytest

from obsd.httperrors import HttpError
from obsd.ingest.body import OFF_LOOP_BYTES, gunzip_capped
from tests.harness import Daemon, envelope, event


def test_a_multi_member_body_is_inflated_whole() -> None:
    """Two concatenated gzip members are one stream (RFC 1952), not the first one only."""
    assert gunzip_capped(gzip.compress(b"hello ") + gzip.compress(b"world"), 100) == b"hello world"
    assert gunzip_capped(gzip.compress(b"x") + b"\0" * 8, 100) == b"x"  # NUL padding after the last member


@pytest.mark.parametrize("body, status", [
    (gzip.compress(b"a" * 60) + gzip.compress(b"b" * 60), 413),   # the cap counts every member
    (gzip.compress(b"ok") + b"garbage", 400),
    (gzip.compress(b"ok") + gzip.compress(b"truncated")[:-6], 400),
])
def test_every_member_is_checked(body: bytes, status: int) -> None:
    """The cap and the checks apply to the members after the first too."""
    with pytest.raises(HttpError) as info:
        gunzip_capped(body, 100)
    assert info.value.status == status


def test_the_daemon_reads_every_member_and_inflates_large_bodies(daemon: Daemon) -> None:
    """A batch split across gzip members is accepted whole; a body over OFF_LOOP_BYTES inflates correctly."""
    raw = json.dumps(envelope([event() for _ in range(3)], session_id="members")).encode()
    half = len(raw) // 2
    r = daemon.post(None, raw=gzip.compress(raw[:half]) + gzip.compress(raw[half:]),
                    headers={"Content-Encoding": "gzip"})
    assert r.status == 202 and r.json()["accepted"] == 3
    big = envelope([event(title=secrets.token_hex(1000)) for _ in range(120)], session_id="big-gzip")
    body = gzip.compress(json.dumps(big).encode())
    assert len(body) > OFF_LOOP_BYTES
    r = daemon.post(None, raw=body, headers={"Content-Encoding": "gzip"})
    assert r.status == 202 and r.json()["accepted"] == 120
    assert daemon.wait_for("SELECT count() FROM obsd.events WHERE session_id = 'members'", 3) == 3


def test_small_bodies_that_inflate_large_are_inflated_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4 KiB body that inflates to 4 MiB is inflated on a worker thread, the cap still applies."""
    import asyncio
    import threading

    from obsd.ingest import body as body_mod

    threads: list[str] = []
    real = body_mod.decompress_capped

    def spy(data: bytes, encoding: str, limit: int) -> bytes:
        threads.append(threading.current_thread().name)
        return real(data, encoding, limit)

    monkeypatch.setattr(body_mod, "decompress_capped", spy)

    class Request:
        def __init__(self) -> None:
            self.headers = {"Content-Encoding": "gzip"}
            self.query: dict[str, str] = {}

    bomb = gzip.compress(b"a" * 4_000_000)
    assert len(bomb) < body_mod.OFF_LOOP_BYTES
    out = asyncio.run(body_mod.inflate(Request(), bomb, 4_194_304))  # type: ignore[arg-type]
    assert len(out) == 4_000_000 and threads[0] == "MainThread" and threads[-1] != "MainThread"
    threads.clear()
    assert asyncio.run(body_mod.inflate(Request(), gzip.compress(b"small"), 4_194_304)) == b"small"  # type: ignore[arg-type]
    assert threads == ["MainThread"]
