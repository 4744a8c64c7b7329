"""The spool: a write-ahead log of committed row groups, cut into insert batches by end-of-batch flags.

The committer appends records (obsd.pipeline.spool_format) and decides where an insert batch ends,
writing that decision into the record itself, in the same fsync as the data, so a replay after a crash
cuts exactly the same batches and their deduplication tokens match the ones ClickHouse has seen.

Disk faults never wedge it: a failed write or fdatasync is cut off again (or, if even that fails, the
segment is closed at its last good record and a new one started), so no batch ever covers torn bytes;
a failed rotation is retried at the next append; a failed checkpoint is retried at the next commit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from obsd.errors import SpoolError
from obsd.pipeline.ledger import Ledger
from obsd.pipeline.spool_format import FLAG_END, HEADER, encode_record, payloads, scan, split_body
from obsd.pipeline.spool_io import SpoolIO, default_io

log = structlog.get_logger("obsd.pipeline.spool")

_SUFFIX = ".wal"
# Uncompressed rows of the newest batches kept for the writer, so a writer that keeps up inserts
# them without reading the spool back and decompressing it; beyond this it reads the disk.
_CACHE_BYTES = 64 * 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows for one insert: a span of the spool (or of memory) and its deduplication token."""

    segment: int
    start: int
    end: int
    events: int
    payload: bytes
    compressed: bool
    token: str
    accepted_at: float | None = None  # when its first rows were acknowledged (None after a restart)


@dataclass(slots=True)
class RecoveryReport:
    """What opening the spool found on disk."""

    segments: int = 0
    batches: int = 0
    events: int = 0
    quarantined_ranges: int = 0
    quarantined_bytes: int = 0
    batch_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Span:
    segment: int
    start: int
    end: int
    events: int
    skips: tuple[tuple[int, int], ...] = ()
    accepted_at: float | None = None


def _failure(action: str, where: Path, exc: OSError, *, kept: bool = False) -> SpoolError:
    full = exc.errno in _FULL
    return SpoolError(f"cannot {action} the spool in {where}: {exc.strerror}", full=full, kept=kept)


class Spool:
    """Durable, segmented log of row groups; appended by the committer, drained by the writer thread."""

    def __init__(self, directory: Path, *, segment_bytes: int, max_bytes: int, fsync: bool = True,
                 preallocate: bool = False, ledger: Ledger | None = None, io: SpoolIO | None = None) -> None:
        self.dir = directory
        self.quarantine_dir = directory / "quarantine"
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.preallocate = preallocate
        self.ledger = ledger
        self.io = io or default_io()
        self._cond = threading.Condition(ledger.lock if ledger else threading.Lock())
        self._pending: deque[_Span] = deque()
        self._sizes: dict[int, int] = {}  # bytes of records in each segment
        self._disk: dict[int, int] = {}  # bytes each segment takes on disk (with preallocation)
        self._fd = -1
        self._seq = 0
        self._next_seq = 1
        self._open_start: int | None = None
        self._open_events = 0
        self._open_crc = 0  # crc32 of the open batch's payloads, as next_batch computes it from disk
        self._open_at: float | None = None
        self._open_plain: list[bytes] | None = []
        self._open_plain_bytes = 0
        self._cache: dict[tuple[int, int], tuple[bytes, int]] = {}  # (segment, start) -> rows, crc
        self._cache_bytes = 0
        self._readers: dict[int, int] = {}
        self._checkpoint: tuple[int, int] | None = None  # written to disk at the next chance when set
        self._doomed: dict[int, int] = {}  # segments to delete (retried after a failed unlink) -> disk bytes
        self.pending_events = 0
        self.last_error = ""
        self.last_error_at = 0.0  # monotonic time of the last refused write
        # Called before segments are deleted, so what only they hold (the batch ids) is saved first.
        self.before_delete: Callable[[], None] = lambda: None

    # -- opening and recovery ------------------------------------------------------------------

    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:012d}{_SUFFIX}"

    def _read_checkpoint(self) -> tuple[int, int, int]:
        try:
            seg, off, nxt = (int(x) for x in (self.dir / "checkpoint").read_text().split())
            return seg, off, nxt
        except (OSError, ValueError):
            return 0, 0, 1

    def open(self) -> RecoveryReport:
        """Recover what is on disk (quarantining corrupt bytes) and start a fresh segment."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {self.dir}: {exc.strerror}") from exc
        report = RecoveryReport()
        ck_seg, ck_off, self._next_seq = self._read_checkpoint()
        for path in sorted(self.dir.glob(f"*{_SUFFIX}")):
            seq = int(path.stem)
            self._next_seq = max(self._next_seq, seq + 1)
            if seq < ck_seg:
                path.unlink()
                continue
            self._recover_segment(seq, path, ck_off if seq == ck_seg else 0, report)
        if self.ledger is not None:
            with self._cond:
                self.ledger.replay(report.events)
        try:
            self._rotate()
        except SpoolError as exc:  # a full disk at start: serve the backlog, refuse new events until room
            self.last_error, self.last_error_at = str(exc), time.monotonic()
            log.warning("spool.no_segment", error=str(exc))
        return report

    def _recover_segment(self, seq: int, path: Path, from_offset: int, report: RecoveryReport) -> None:
        buf = path.read_bytes()
        found = scan(buf)
        if found.bad:
            self.quarantine_dir.mkdir(exist_ok=True)
        for start, stop in found.bad:
            (self.quarantine_dir / f"{seq:012d}-{start}.bad").write_bytes(buf[start:stop])
            report.quarantined_ranges += 1
            report.quarantined_bytes += stop - start
            log.warning("spool.quarantined", segment=seq, offset=start, bytes=stop - start,
                        folder=str(self.quarantine_dir))
        if found.good_end < len(buf) and (not found.bad or found.bad[-1][0] >= found.good_end):
            # A torn tail (or reserved space): cut the file back to its last valid record.
            with open(path, "r+b") as f:
                f.truncate(found.good_end)
        self._sizes[seq] = self._disk[seq] = found.good_end
        report.segments += 1
        first: int | None = None
        events = 0
        skips = tuple((a, b) for a, b in found.bad if b <= found.good_end)
        view = memoryview(buf)  # the ids are read in place: slicing bytes would copy every record's body
        for off, flags, ev, end in found.records:
            report.batch_ids.extend(split_body(flags, view[off + HEADER.size : end])[0])
            if off < from_offset:
                continue
            if first is None:
                first = off
            events += ev
            if flags & FLAG_END:
                self._push(_Span(seq, first, end, events, skips), report)
                first, events = None, 0
        if first is not None:  # records of a batch the crash left open: close it where it stops
            self._push(_Span(seq, first, found.good_end, events, skips), report)

    def _push(self, span: _Span, report: RecoveryReport) -> None:
        if span.events == 0:
            return
        self._pending.append(span)
        self.pending_events += span.events
        report.batches += 1
        report.events += span.events

    def _rotate(self) -> None:
        """Start the next segment (reserving its space when preallocating); SpoolError if the disk says no."""
        seq = self._next_seq
        path = self._path(seq)
        try:
            fd = self.io.open_segment(path)
        except OSError as exc:
            raise _failure("start a segment of", self.dir, exc) from exc
        try:
            if self.preallocate:
                self.io.preallocate(fd, self.segment_bytes)
            if self.fsync:
                self.io.sync_dir(self.dir)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.io.close(fd)
                self.io.unlink(path)
            raise _failure("reserve a segment of", self.dir, exc) from exc
        if self._fd >= 0:
            self.io.close(self._fd)
        with self._cond:
            self._fd, self._seq, self._next_seq = fd, seq, seq + 1
            self._sizes[seq] = 0
            self._disk[seq] = self.segment_bytes if self.preallocate else 0

    # -- the committer's side ---------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Bytes the spool takes on disk (reserved segment space included)."""
        return sum(self._disk.values()) + sum(self._doomed.values())

    def over_budget(self) -> bool:
        """True when the spool has reached its disk budget."""
        return self.size_bytes >= self.max_bytes

    @property
    def pending_batches(self) -> int:
        """Closed batches not yet in the store, including the one the writer is inserting."""
        return len(self._pending)

    @property
    def backlog_events(self) -> int:
        """Events written but not yet in the store, the open batch included."""
        return self.pending_events + self._open_events

    def append(self, payload: bytes, events: int, end: bool, plain: bytes | None = None,
               ids: tuple[int, ...] = ()) -> None:
        """Write one record and make it durable; FLAG_END closes the insert batch it belongs to.

        `plain` is the payload uncompressed: kept in memory, the writer can insert it as is. `ids` are
        the batch ids this record acknowledges. Raises SpoolError (`full` on ENOSPC) and leaves no torn
        bytes behind that a batch could cover.
        """
        if self._fd < 0:
            try:
                self._rotate()
            except SpoolError as exc:
                self.last_error, self.last_error_at = str(exc), time.monotonic()
                raise
        offset = self._sizes[self._seq]
        record = encode_record(payload, events, end, ids)
        written = False
        try:
            self.io.write_at(self._fd, record, offset)
            written = True
            if self.fsync:
                self.io.fdatasync(self._fd)
        except OSError as exc:
            self.last_error = f"{exc.strerror} (errno {exc.errno})"
            self.last_error_at = time.monotonic()
            if self._cut_back(offset):
                raise _failure("write", self.dir, exc) from exc
            # The bytes stay where they are. A whole record is valid on disk and a replay would insert
            # it, so it is kept now too (the same batch cut and token either way); a torn one never is.
            if written:
                self._record(offset, record, payload, events, plain)
            with self._cond:
                self._close_open_batch(self._sizes[self._seq])
            with contextlib.suppress(OSError):
                self.io.close(self._fd)
            self._fd = -1
            raise _failure("write", self.dir, exc, kept=written) from exc
        self.last_error = ""
        self._record(offset, record, payload, events, plain)
        if end:
            with self._cond:
                self._close_open_batch(offset + len(record))
            if self._sizes[self._seq] >= self.segment_bytes:
                try:
                    self._rotate()
                except SpoolError as exc:  # the record is durable; the next append tries again
                    log.warning("spool.rotate_failed", error=str(exc), retry="at the next append")
                    self.io.close(self._fd)
                    self._fd = -1

    def _record(self, offset: int, record: bytes, payload: bytes, events: int, plain: bytes | None) -> None:
        """Account for a record that is on disk: sizes, the open batch, its cache, the ledger."""
        now = time.time()
        with self._cond:
            self._sizes[self._seq] = offset + len(record)
            self._disk[self._seq] = max(self._disk[self._seq], offset + len(record))
            if self.ledger is not None and events:
                self.ledger.accept(events, len(plain) if plain is not None else len(payload))
            if self._open_start is None:
                self._open_start, self._open_at = offset, now
            self._open_events += events
            self._open_crc = zlib.crc32(payload, self._open_crc)
            if payload and self._open_plain is not None:
                if plain is None or self._cache_bytes + self._open_plain_bytes + len(plain) > _CACHE_BYTES:
                    self._open_plain = None
                else:
                    self._open_plain.append(plain)
                    self._open_plain_bytes += len(plain)

    def _close_open_batch(self, end: int) -> None:
        """Turn the open batch into a pending span ending at `end` (called with the lock held)."""
        if self._open_start is None:
            return
        span = _Span(self._seq, self._open_start, end, self._open_events, accepted_at=self._open_at)
        if span.events and self._open_plain is not None:
            self._cache[(span.segment, span.start)] = (b"".join(self._open_plain), self._open_crc)
            self._cache_bytes += self._open_plain_bytes
        self._open_start, self._open_events, self._open_at = None, 0, None
        self._open_crc, self._open_plain, self._open_plain_bytes = 0, [], 0
        if span.events:
            self._pending.append(span)
            self.pending_events += span.events
            self._cond.notify_all()

    def _cut_back(self, offset: int) -> bool:
        """After a failed write or sync, remove the record's bytes; False when even that fails (the caller
        then closes the segment where a replay would end it, and the next append starts a new one)."""
        try:
            self.io.truncate(self._fd, offset)
            return True
        except OSError as exc:
            log.error("spool.segment_abandoned", segment=self._seq, offset=offset, error=exc.strerror)
            return False

    # -- the writer's side ------------------------------------------------------------------------

    def _reader(self, seq: int) -> int:
        fd = self._readers.get(seq)
        if fd is None:
            fd = self._readers[seq] = os.open(self._path(seq), os.O_RDONLY)
        return fd

    def next_batch(self, timeout: float) -> Batch | None:
        """The oldest batch not yet committed to the store, waiting up to `timeout` seconds."""
        with self._cond:
            if not self._pending and timeout > 0:
                self._cond.wait(timeout)
            if not self._pending:
                return None
            span = self._pending[0]
            cached = self._cache.get((span.segment, span.start))
        if cached is not None:
            rows, crc = cached
            token = f"obsd-{span.segment}-{span.start}-{crc:08x}"
            return Batch(span.segment, span.start, span.end, span.events, rows, False, token, span.accepted_at)
        buf = os.pread(self._reader(span.segment), span.end - span.start, span.start)
        parts = payloads(buf, [(a - span.start, b - span.start) for a, b in span.skips])
        crc = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
        token = f"obsd-{span.segment}-{span.start}-{crc:08x}"
        return Batch(span.segment, span.start, span.end, span.events, b"".join(parts), True, token,
                     span.accepted_at)

    def commit(self, batch: Batch, inserted: int | None = None, dead: int = 0) -> None:
        """Record that a batch is in the store (`inserted` rows, `dead` dead-lettered); move the checkpoint
        and delete segments nothing points into any more. Disk errors here are retried later, never raised."""
        with self._cond:
            head = self._pending.popleft()
            if (head.segment, head.start) != (batch.segment, batch.start):
                raise SpoolError(f"spool committed out of order: {batch.segment}:{batch.start}")
            self.pending_events -= head.events
            if self.ledger is not None:
                self.ledger.store(head.events - dead if inserted is None else inserted, dead)
            cached = self._cache.pop((head.segment, head.start), None)
            if cached is not None:
                self._cache_bytes -= len(cached[0])
            self._checkpoint = (batch.segment, batch.end)
            oldest = self._pending[0].segment if self._pending else self._seq
            for seq in [s for s in self._sizes if s < oldest and s != self._seq]:
                fd = self._readers.pop(seq, None)
                if fd is not None:
                    os.close(fd)
                self._sizes.pop(seq)
                self._doomed[seq] = self._disk.pop(seq)
        self.flush_housekeeping()

    def flush_housekeeping(self) -> None:
        """Write a pending checkpoint and delete doomed segments; what fails is tried again next time."""
        if self._checkpoint is not None:
            seg, off = self._checkpoint
            try:
                self.io.replace_file(self.dir / "checkpoint", f"{seg} {off} {self._next_seq}\n".encode())
                self._checkpoint = None
            except OSError as exc:
                log.warning("spool.checkpoint_failed", error=exc.strerror, retry="at the next commit")
        if self._doomed:
            try:
                self.before_delete()
            except OSError as exc:  # space matters more than the resend window: delete anyway
                log.warning("spool.before_delete_failed", error=exc.strerror)
        for seq in list(self._doomed):
            try:
                self.io.unlink(self._path(seq))
            except OSError as exc:
                log.warning("spool.delete_failed", segment=seq, error=exc.strerror)
                continue
            self._doomed.pop(seq)

    def close(self) -> None:
        """Close file handles; what is on disk stays for the next start."""
        self.flush_housekeeping()
        with self._cond:
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()
            if self._fd >= 0:
                self.io.close(self._fd)
                self._fd = -1
