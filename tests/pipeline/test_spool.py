"""The spool on its own: records, batches, recovery, and exactly-once across crashes (Hypothesis)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obsd.errors import SpoolError
from obsd.pipeline.memory_log import MemoryLog
from obsd.pipeline.spool import Batch, Spool
from obsd.pipeline.spool_format import HEADER, encode_record, scan
from obsd.pipeline.spool_io import SpoolIO
from tests.harness import ROOT

FIXTURE_0_1 = ROOT / "tests" / "pipeline" / "fixtures" / "spool-0.1.0"


def rows(ids: list[int]) -> bytes:
    return b"".join(b'{"n":%d}\n' % i for i in ids)


def ids_of(batch: Batch) -> list[int]:
    return [int(line[5:-1]) for line in batch.payload.split(b"\n") if line]


def open_spool(d: Path, segment_bytes: int = 10**9, max_bytes: int = 10**9, io: SpoolIO | None = None,
               preallocate: bool = False) -> Spool:
    s = Spool(d, segment_bytes=segment_bytes, max_bytes=max_bytes, fsync=io is not None, io=io,
              preallocate=preallocate)
    s.open()
    return s


class FlakyIO(SpoolIO):
    """SpoolIO whose next write, data sync, truncation or preallocation fails when told to (no real syncs)."""

    def __init__(self) -> None:
        self.tear_at: int | None = None  # the next write stops after this many bytes with ENOSPC
        self.fail_sync = False
        self.fail_truncate = False
        self.full = False  # preallocation says ENOSPC

    def write_at(self, fd: int, data: bytes, offset: int) -> None:
        if self.tear_at is not None:
            k, self.tear_at = min(self.tear_at, len(data)), None
            os.pwrite(fd, data[:k], offset)
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write_at(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        if self.fail_sync:
            self.fail_sync = False
            raise OSError(errno.EIO, "Input/output error")

    def truncate(self, fd: int, size: int) -> None:
        if self.fail_truncate:
            self.fail_truncate = False
            raise OSError(errno.EIO, "Input/output error")
        super().truncate(fd, size)

    def preallocate(self, fd: int, size: int) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().preallocate(fd, size)

    def sync_dir(self, directory: Path) -> None:
        pass


def test_batches_are_cut_where_the_committer_said(tmp_path: Path) -> None:
    """Records up to an end flag form one batch; an open batch is not handed to the writer."""
    s = open_spool(tmp_path)
    s.append(rows([1, 2]), 2, False)
    s.append(rows([3]), 1, True)
    s.append(rows([4]), 1, False)
    b = s.next_batch(0)
    assert b is not None and ids_of(b) == [1, 2, 3] and b.events == 3
    s.commit(b)
    assert s.next_batch(0) is None and s.backlog_events == 1 and s.pending_events == 0
    s.append(b"", 0, True)
    b2 = s.next_batch(0)
    assert b2 is not None and ids_of(b2) == [4]
    s.close()


def test_replay_cuts_the_same_batches_with_the_same_tokens(tmp_path: Path) -> None:
    """After a restart, the uncommitted batch comes back with the same rows and token (so the store dedups it)."""
    s = open_spool(tmp_path)
    for i in range(6):
        s.append(rows([i]), 1, i % 2 == 1)
    first = s.next_batch(0)
    assert first is not None and ids_of(first) == [0, 1]
    s.commit(first)
    second = s.next_batch(0)
    assert second is not None and ids_of(second) == [2, 3]
    s.close()  # crash: inserted maybe, never committed
    s2 = open_spool(tmp_path)
    again = s2.next_batch(0)
    assert again is not None
    assert (ids_of(again), again.token) == (ids_of(second), second.token)
    s2.commit(again)
    third = s2.next_batch(0)
    assert third is not None and ids_of(third) == [4, 5] and third.token != again.token
    s2.close()


def test_committed_segments_are_deleted(tmp_path: Path) -> None:
    """Once every batch in a segment is in the store, the segment file goes."""
    s = open_spool(tmp_path, segment_bytes=200)
    for i in range(20):
        s.append(rows(list(range(i * 5, i * 5 + 5))), 5, True)
    assert len(list(tmp_path.glob("*.wal"))) > 3
    while (b := s.next_batch(0)) is not None:
        s.commit(b)
    assert len(list(tmp_path.glob("*.wal"))) == 1  # only the active one
    assert s.size_bytes == 0 or s.size_bytes < 200
    assert s.pending_events == 0
    s.close()


def test_budget(tmp_path: Path) -> None:
    """over_budget turns on at max_bytes and off once batches are committed."""
    s = open_spool(tmp_path, segment_bytes=100, max_bytes=500)
    while not s.over_budget():
        s.append(rows([1] * 10), 10, True)
    while (b := s.next_batch(0)) is not None:
        s.commit(b)
    assert not s.over_budget()
    s.close()


def test_memory_log_hands_over_whole_batches() -> None:
    """durability = memory keeps the same batch contract, in RAM."""
    m = MemoryLog(10_000)
    m.append(rows([1]), 1, False)
    assert m.next_batch(0) is None
    m.append(rows([2]), 1, True)
    b = m.next_batch(0)
    assert b is not None and ids_of(b) == [1, 2] and not b.compressed
    m.commit(b)
    assert m.pending_events == 0 and m.size_bytes == 0


def test_scan_resumes_after_a_corrupt_record() -> None:
    """A flipped byte costs only its own record; the next valid record is found again."""
    data = bytearray(b"".join(encode_record(rows([i]), 1, True) for i in range(3)))
    second = len(encode_record(rows([0]), 1, True))
    data[second + HEADER.size + 2] ^= 1
    found = scan(bytes(data))
    assert [r[0] for r in found.records] == [0, 2 * second]
    assert found.bad == [(second, 2 * second)]


# -- exactly-once under any interleaving of appends, inserts, commits and crashes -----------------

ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 4), st.booleans(), st.booleans()),  # rows, END, keep in memory
    st.tuples(st.just("insert"), st.booleans()),  # insert the next batch; commit it (True) or crash before
    st.tuples(st.just("crash"), st.integers(0, 10_000)),  # torn write of a new record at an arbitrary byte
), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_any_interleaving_of_appends_commits_crashes_and_replays_is_exactly_once(plan: list[tuple]) -> None:
    """Whatever happens, every acknowledged row ends up in the (deduplicating) store exactly once.

    Batches come from memory or from disk depending on `keep`; a crash then replays from disk, so a
    token computed in memory that differed from the disk one would show up here as a duplicate.
    """
    d = Path(tempfile.mkdtemp())
    try:
        s = open_spool(d, segment_bytes=300)
        store: dict[str, list[int]] = {}  # token → rows, as ClickHouse's dedup window keeps them
        acked: list[int] = []
        counter = 0

        def insert(batch: Batch) -> None:
            store.setdefault(batch.token, ids_of(batch))

        for op in plan:
            if op[0] == "append":
                n, end, keep = op[1], op[2], op[3]
                ids = list(range(counter, counter + n))
                counter += n
                # With `plain`, the writer may get the batch from memory; the token must match a replay's.
                s.append(rows(ids), n, end, plain=rows(ids) if keep else None)
                acked += ids
            elif op[0] == "insert":
                b = s.next_batch(0)
                if b is not None:
                    insert(b)
                    if op[1]:
                        s.commit(b)
                    else:  # crash after the insert, before the checkpoint
                        s.close()
                        s = open_spool(d, segment_bytes=300)
            else:
                s.close()
                # A record that was being written when the power went: never acknowledged, torn anywhere.
                seg = sorted(d.glob("*.wal"))[-1]
                torn = (HEADER.pack(0x0B5D5701, 1, 3, 30, 0) + rows([10**6, 10**6 + 1, 10**6 + 2]))
                with open(seg, "ab") as f:
                    f.write(torn[: op[1] % len(torn)])
                s = open_spool(d, segment_bytes=300)
        s.append(b"", 0, True)
        while (b := s.next_batch(0)) is not None:
            insert(b)
            s.commit(b)
        s.close()
        landed = sorted(i for batch in store.values() for i in batch)
        assert landed == sorted(acked)
    finally:
        shutil.rmtree(d)


# -- formats of earlier releases --------------------------------------------------------------------

def test_a_spool_written_by_obsd_0_1_replays(tmp_path: Path) -> None:
    """Segments and checkpoint written by obsd 0.1 (records without batch ids) open and replay the same batches."""
    d = tmp_path / "spool"
    shutil.copytree(FIXTURE_0_1, d)
    s = open_spool(d)
    first = s.next_batch(0)
    assert first is not None
    assert [r["event_id"][-1] for r in map(json.loads, zstd_lines(first))] == ["4", "5", "6"]
    s.commit(first)
    rest = s.next_batch(0)  # the record the "crash" left without an END flag is a batch of its own
    assert rest is not None and [json.loads(x)["path"] for x in zstd_lines(rest)] == ["/p/7"]
    s.commit(rest)
    assert s.next_batch(0) is None and s.pending_events == 0
    s.close()


def zstd_lines(batch: Batch) -> list[bytes]:
    data = zstandard.ZstdDecompressor().decompressobj().decompress(batch.payload) if batch.compressed \
        else batch.payload
    return [ln for ln in data.split(b"\n") if ln]


def test_batch_ids_in_records_come_back_at_recovery(tmp_path: Path) -> None:
    """The ids a record acknowledges are read back on open, committed or not; the rows read as before."""
    s = open_spool(tmp_path)
    s.append(rows([1]), 1, True, ids=(11, 12))
    s.append(rows([2]), 1, True, ids=(13,))
    b = s.next_batch(0)
    assert b is not None and ids_of(b) == [1]
    s.commit(b)
    s.close()
    s2 = Spool(tmp_path, segment_bytes=10**9, max_bytes=10**9, fsync=False)
    report = s2.open()
    assert sorted(report.batch_ids) == [11, 12, 13]
    b2 = s2.next_batch(0)
    assert b2 is not None and ids_of(b2) == [2]
    s2.close()


# -- disk faults --------------------------------------------------------------------------------------

def test_a_torn_write_is_cut_off_and_the_batch_goes_on(tmp_path: Path) -> None:
    """ENOSPC half way through a record: SpoolError(full), the bytes are cut off, the open batch continues."""
    io = FlakyIO()
    s = open_spool(tmp_path, io=io)
    s.append(rows([1]), 1, False)
    io.tear_at = 10
    with pytest.raises(SpoolError) as info:
        s.append(rows([2]), 1, False)
    assert info.value.full
    s.append(rows([3]), 1, True)
    b = s.next_batch(0)
    assert b is not None and ids_of(b) == [1, 3]
    s.close()
    assert scan((sorted(tmp_path.glob("*.wal"))[-1]).read_bytes()).bad == []


@pytest.mark.parametrize("fault", ["torn", "unsynced"])
def test_when_cutting_back_fails_the_segment_ends_where_a_replay_would_end_it(tmp_path: Path, fault: str) -> None:
    """The failed record cannot be cut off: a torn one is left out, a whole one whose sync failed is kept
    (and said so: `kept`, so its batch ids are remembered); the open batch ends there, live exactly as
    after a restart, and a new segment takes the next records."""
    io = FlakyIO()
    s = open_spool(tmp_path, io=io)
    s.append(rows([1]), 1, False)
    if fault == "torn":
        io.tear_at = 12
    else:
        io.fail_sync = True
    io.fail_truncate = True
    with pytest.raises(SpoolError) as info:
        s.append(rows([2]), 1, False)
    assert info.value.kept is (fault == "unsynced")
    s.append(rows([3]), 1, True)
    first = s.next_batch(0)
    assert first is not None
    s.close()
    replayed = open_spool(tmp_path).next_batch(0)  # what a crash now would insert
    assert replayed is not None and (ids_of(replayed), replayed.token) == (ids_of(first), first.token)
    assert ids_of(first) == ([1] if fault == "torn" else [1, 2])


def test_a_full_disk_at_rotation_is_spool_full_until_there_is_room(tmp_path: Path) -> None:
    """With preallocation, no room for the next segment refuses the append (full) and the next one succeeds."""
    io = FlakyIO()
    s = open_spool(tmp_path, segment_bytes=100, io=io, preallocate=True)
    s.append(rows(list(range(20))), 20, True)  # past segment_bytes: rotates into a new reserved segment
    io.full = True
    s.append(rows(list(range(20, 40))), 20, True)  # fills the second one; its rotation fails quietly
    with pytest.raises(SpoolError) as info:
        s.append(rows([99]), 1, True)
    assert info.value.full and s.last_error
    io.full = False
    s.append(rows([100]), 1, True)
    got = []
    while (b := s.next_batch(0)) is not None:
        got += ids_of(b)
        s.commit(b)
    assert got == [*range(40), 100]
    s.close()


def test_a_failed_checkpoint_is_retried_and_never_lost(tmp_path: Path) -> None:
    """Writing the checkpoint fails: the commit still counts, and the next commit writes it."""
    class NoCheckpoint(FlakyIO):
        fail = True

        def replace_file(self, path: Path, data: bytes) -> None:
            if self.fail:
                raise OSError(errno.EIO, "Input/output error")
            super().replace_file(path, data)

    io = NoCheckpoint()
    s = open_spool(tmp_path, io=io)
    s.append(rows([1]), 1, True)
    s.append(rows([2]), 1, True)
    b = s.next_batch(0)
    assert b is not None
    s.commit(b)
    assert not (tmp_path / "checkpoint").exists() and s.pending_events == 1
    io.fail = False
    b = s.next_batch(0)
    assert b is not None
    s.commit(b)
    assert (tmp_path / "checkpoint").read_text().split()[:2] == [str(b.segment), str(b.end)]
    s.close()


# -- exactly-once with live disk faults ------------------------------------------------------------

fault_ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 4), st.booleans()),  # rows, END
    st.tuples(st.just("torn"), st.integers(1, 4), st.integers(0, 60), st.booleans()),  # ENOSPC after k bytes
    st.tuples(st.just("unsynced"), st.integers(1, 4), st.booleans()),  # fdatasync fails (truncate too?)
    st.tuples(st.just("insert"), st.booleans()),
    st.tuples(st.just("crash"),),
), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fault_ops)
def test_live_partial_writes_and_sync_failures_never_lose_duplicate_or_tear(plan: list[tuple]) -> None:
    """Every acknowledged row lands exactly once; a write that failed is never acknowledged and lands at
    most once (only if its bytes survived a failed cut-back); no batch ever covers torn bytes."""
    d = Path(tempfile.mkdtemp())
    io = FlakyIO()
    try:
        s = open_spool(d, segment_bytes=300, io=io)
        store: dict[str, list[int]] = {}
        acked: list[int] = []
        failed: list[int] = []
        counter = 0
        for op in plan:
            if op[0] in ("append", "torn", "unsynced"):
                n = op[1]
                ids = list(range(counter, counter + n))
                counter += n
                if op[0] == "torn":
                    io.tear_at, io.fail_truncate = op[2], op[3]
                elif op[0] == "unsynced":
                    io.fail_sync, io.fail_truncate = True, op[2]
                try:
                    s.append(rows(ids), n, op[0] == "append" and op[2])
                except SpoolError:
                    failed += ids
                else:
                    acked += ids
                io.tear_at, io.fail_sync, io.fail_truncate = None, False, False
            elif op[0] == "insert":
                b = s.next_batch(0)
                if b is not None:
                    store.setdefault(b.token, ids_of(b))  # raises on torn bytes in a batch
                    if op[1]:
                        s.commit(b)
            else:
                s.close()
                s = open_spool(d, segment_bytes=300, io=io)
        s.append(b"", 0, True)
        while (b := s.next_batch(0)) is not None:
            store.setdefault(b.token, ids_of(b))
            s.commit(b)
        s.close()
        landed = [i for batch in store.values() for i in batch]
        assert len(landed) == len(set(landed)), "a row landed twice"
        assert set(acked) <= set(landed), "an acknowledged row was lost"
        assert set(landed) <= set(acked) | set(failed)
    finally:
        shutil.rmtree(d)
