"""The batch-id window on its own: recognition, expiry, the memory cap, and the snapshot across restarts."""

from __future__ import annotations

from pathlib import Path

from obsd.pipeline.batch_ids import BatchIdWindow, fingerprint

T0 = 1_764_288_000.0


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_fingerprints_separate_projects_and_ids() -> None:
    """The same batch id in two projects, or two ids in one project, are different batches."""
    a = fingerprint("shop", "0b7e6c1e-8d2a-4c1e-9f3b-2a6d5c4b3a21")
    assert a == fingerprint("shop", "0b7e6c1e-8d2a-4c1e-9f3b-2a6d5c4b3a21")
    assert a != fingerprint("blog", "0b7e6c1e-8d2a-4c1e-9f3b-2a6d5c4b3a21")
    assert a != fingerprint("shop", "0b7e6c1e-8d2a-4c1e-9f3b-2a6d5c4b3a22")


def test_ids_are_recognised_for_the_window_then_forgotten() -> None:
    """An id is seen for (at least) the window, across minute boundaries, and gone a minute after it."""
    clock = Clock(T0)
    w = BatchIdWindow(900, 1000, clock=clock)
    w.add([1, 2])
    assert w.seen(1) and w.seen(2) and not w.seen(3)
    for _ in range(15):  # 15 minutes later, read from closed (sorted) minutes
        clock.t += 60
        assert w.seen(1)
    w.add([3])
    clock.t += 120
    assert not w.seen(1) and w.seen(3) and w.size == 1
    assert w.evicted == 0


def test_past_the_cap_the_oldest_minutes_go_early_and_are_counted() -> None:
    """Memory stays bounded: over max_ids the oldest minutes are dropped, and the count says so."""
    clock = Clock(T0)
    evicted: list[int] = []
    w = BatchIdWindow(900, 250, clock=clock, on_evict=evicted.append)
    for minute in range(5):
        w.add(range(minute * 100, minute * 100 + 100))
        clock.t += 60
    w.seen(0)
    assert w.size <= 250 and w.evicted == 300 and sum(evicted) == 300
    assert not w.seen(0) and w.seen(499)


def test_the_snapshot_keeps_the_window_across_a_restart(tmp_path: Path) -> None:
    """Saved, then loaded by a new process: unexpired ids are seen, expired ones are not; ids recovered from
    spool records are added."""
    clock = Clock(T0)
    path = tmp_path / "batch-ids"
    w = BatchIdWindow(900, 10_000, path, clock=clock)
    w.add([10])
    clock.t += 600
    w.add([20])
    w.save()
    assert path.exists() and not w.dirty
    clock.t += 400  # id 10 is now 1000 s old, 20 is 400 s old
    again = BatchIdWindow(900, 10_000, path, clock=clock)
    assert again.load(again.read_file(), recovered=[30]) == 2
    assert not again.seen(10) and again.seen(20) and again.seen(30)


def test_a_damaged_snapshot_loses_ids_not_the_daemon(tmp_path: Path) -> None:
    """Garbage or a truncated file is read as far as it is whole, with a warning."""
    clock = Clock(T0)
    path = tmp_path / "batch-ids"
    w = BatchIdWindow(900, 10_000, path, clock=clock)
    w.add([1, 2, 3])
    clock.t += 60
    w.add([4])
    w.save()
    data = path.read_bytes()
    fresh = BatchIdWindow(900, 10_000, path, clock=clock)
    assert fresh.load(data[:-8]) == 3  # the last group is cut: only whole groups count
    assert BatchIdWindow(900, 10_000, clock=clock).load(b"not a snapshot") == 0
