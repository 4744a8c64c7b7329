"""The spool on its own: records, batches, recovery, and exactly-once across crashes (Hypothesis)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obsd.pipeline.memory_log import MemoryLog
from obsd.pipeline.spool import HEADER, Batch, Spool, scan


def rows(ids: list[int]) -> bytes:
    return b"".join(b'{"n":%d}\n' % i for i in ids)


def ids_of(batch: Batch) -> list[int]:
    return [int(line[5:-1]) for line in batch.payload.split(b"\n") if line]


def open_spool(d: Path, segment_bytes: int = 10**9, max_bytes: int = 10**9) -> Spool:
    s = Spool(d, segment_bytes=segment_bytes, max_bytes=max_bytes, fsync=False)
    s.open()
    return s


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
    from obsd.pipeline.spool import encode_record
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
