"""The spool: a write-ahead log of committed row groups, cut into insert batches by end-of-batch flags.

Each record is `magic | flags | events | length | crc32 | payload`, where the payload is a zstd frame
of NDJSON rows. The committer decides where an insert batch ends and writes that decision into the
record itself (FLAG_END), in the same fsync as the data, so a replay after a crash cuts exactly the
same batches and their deduplication tokens match the ones ClickHouse has already seen.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from obsd.errors import SpoolError

log = structlog.get_logger("obsd.pipeline.spool")

MAGIC = 0x0B5D5701
HEADER = struct.Struct("<IBIII")  # magic, flags, events, payload length, crc32(flags..payload)
FLAG_END = 1
_MAX_RECORD = 1 << 30
_SUFFIX = ".wal"
# Uncompressed rows of the newest batches kept for the writer, so a writer that keeps up inserts
# them without reading the spool back and decompressing it; beyond this it reads the disk.
_CACHE_BYTES = 64 * 1024 * 1024


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


@dataclass(slots=True)
class RecoveryReport:
    """What opening the spool found on disk."""

    segments: int = 0
    batches: int = 0
    events: int = 0
    quarantined_ranges: int = 0
    quarantined_bytes: int = 0


@dataclass(frozen=True, slots=True)
class _Span:
    segment: int
    start: int
    end: int
    events: int
    skips: tuple[tuple[int, int], ...] = ()


@dataclass(slots=True)
class _Scan:
    records: list[tuple[int, int, int, int]] = field(default_factory=list)  # offset, flags, events, end
    bad: list[tuple[int, int]] = field(default_factory=list)  # corrupt byte ranges
    good_end: int = 0


def encode_record(payload: bytes, events: int, end: bool) -> bytes:
    """One spool record: header, then payload."""
    flags = FLAG_END if end else 0
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<BII", flags, events, len(payload))))
    return HEADER.pack(MAGIC, flags, events, len(payload), crc) + payload


def _valid_at(buf: bytes, off: int) -> tuple[int, int, int] | None:
    """The (flags, events, end offset) of a valid record at `off`, or None."""
    if off + HEADER.size > len(buf):
        return None
    magic, flags, events, length, crc = HEADER.unpack_from(buf, off)
    end = off + HEADER.size + length
    if magic != MAGIC or length > _MAX_RECORD or end > len(buf) or flags & ~FLAG_END:
        return None
    body = memoryview(buf)[off + HEADER.size : end]
    if zlib.crc32(body, zlib.crc32(struct.pack("<BII", flags, events, length))) != crc:
        return None
    return flags, events, end


def scan(buf: bytes) -> _Scan:
    """Find valid records and corrupt ranges; after a corrupt byte, resume at the next valid record."""
    out = _Scan()
    off = 0
    magic = struct.pack("<I", MAGIC)
    while off < len(buf):
        rec = _valid_at(buf, off)
        if rec is not None:
            out.records.append((off, rec[0], rec[1], rec[2]))
            off = out.good_end = rec[2]
            continue
        nxt = buf.find(magic, off + 1)
        while nxt != -1 and _valid_at(buf, nxt) is None:
            nxt = buf.find(magic, nxt + 1)
        stop = len(buf) if nxt == -1 else nxt
        out.bad.append((off, stop))
        off = stop
    return out


class Spool:
    """Durable, segmented log of row groups; appended by the committer, drained by the writer thread."""

    def __init__(self, directory: Path, *, segment_bytes: int, max_bytes: int, fsync: bool = True) -> None:
        self.dir = directory
        self.quarantine_dir = directory / "quarantine"
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._cond = threading.Condition()
        self._pending: deque[_Span] = deque()
        self._sizes: dict[int, int] = {}
        self._fd = -1
        self._seq = 0
        self._open_start: int | None = None
        self._open_events = 0
        self._open_crc = 0  # crc32 of the open batch's payloads, as next_batch computes it from disk
        self._open_plain: list[bytes] | None = []
        self._open_plain_bytes = 0
        self._cache: dict[tuple[int, int], tuple[bytes, int]] = {}  # (segment, start) -> rows, crc
        self._cache_bytes = 0
        self._next_seq = 1
        self._readers: dict[int, int] = {}
        self._total = 0
        self.pending_events = 0

    # -- opening and recovery ------------------------------------------------------------------

    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:012d}{_SUFFIX}"

    def _read_checkpoint(self) -> tuple[int, int, int]:
        try:
            seg, off, nxt = (int(x) for x in (self.dir / "checkpoint").read_text().split())
            return seg, off, nxt
        except (OSError, ValueError):
            return 0, 0, 1

    def _write_checkpoint(self, seg: int, off: int) -> None:
        tmp = self.dir / "checkpoint.tmp"
        tmp.write_text(f"{seg} {off} {self._next_seq}\n")
        os.replace(tmp, self.dir / "checkpoint")

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
        self._rotate()
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
        if found.good_end < len(buf) and (not found.bad or found.bad[-1][1] == len(buf)):
            # A torn tail: cut the file back to its last valid record so nothing reads it again.
            with open(path, "r+b") as f:
                f.truncate(found.good_end)
        self._sizes[seq] = found.good_end
        self._total += found.good_end
        report.segments += 1
        first: int | None = None
        events = 0
        skips = tuple((a, b) for a, b in found.bad if b <= found.good_end)
        for off, flags, ev, end in found.records:
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
        if self._fd >= 0:
            os.close(self._fd)
        self._seq = self._next_seq
        self._next_seq += 1
        path = self._path(self._seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._sizes[self._seq] = 0
        if self.fsync:
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    # -- the committer's side ---------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Bytes of segments on disk."""
        return self._total

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

    def append(self, payload: bytes, events: int, end: bool, plain: bytes | None = None) -> None:
        """Write one record and make it durable; FLAG_END closes the insert batch it belongs to.

        `plain` is the payload uncompressed: kept in memory, the writer can insert it as is.
        """
        record = encode_record(payload, events, end)
        offset = self._sizes[self._seq]
        try:
            os.write(self._fd, record)
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            # A partial write is cut off by recovery's checksum; make sure we never append after it.
            size = os.lseek(self._fd, 0, os.SEEK_END)
            with self._cond:
                self._total += size - offset
                self._sizes[self._seq] = size
                self._open_plain = None  # this batch is read back from disk, as it always was
            raise SpoolError(f"cannot write the spool in {self.dir}: {exc.strerror}") from exc
        with self._cond:
            self._sizes[self._seq] = offset + len(record)
            self._total += len(record)
            if self._open_start is None:
                self._open_start = offset
            self._open_events += events
            self._open_crc = zlib.crc32(payload, self._open_crc)
            if payload and self._open_plain is not None:
                if plain is None or self._cache_bytes + self._open_plain_bytes + len(plain) > _CACHE_BYTES:
                    self._open_plain = None
                else:
                    self._open_plain.append(plain)
                    self._open_plain_bytes += len(plain)
            if end:
                span = _Span(self._seq, self._open_start, offset + len(record), self._open_events)
                if span.events and self._open_plain is not None:
                    self._cache[(span.segment, span.start)] = (b"".join(self._open_plain), self._open_crc)
                    self._cache_bytes += self._open_plain_bytes
                self._open_start, self._open_events = None, 0
                self._open_crc, self._open_plain, self._open_plain_bytes = 0, [], 0
                if span.events:
                    self._pending.append(span)
                    self.pending_events += span.events
                    self._cond.notify_all()
                if self._sizes[self._seq] >= self.segment_bytes:
                    self._rotate()

    # -- the writer's side ------------------------------------------------------------------------

    def _reader(self, seq: int) -> int:
        fd = self._readers.get(seq)
        if fd is None:
            fd = self._readers[seq] = os.open(self._path(seq), os.O_RDONLY)
        return fd

    def next_batch(self, timeout: float) -> Batch | None:
        """The oldest batch not yet committed to the store, waiting up to `timeout` seconds."""
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            if not self._pending:
                return None
            span = self._pending[0]
            cached = self._cache.get((span.segment, span.start))
        if cached is not None:
            rows, crc = cached
            token = f"obsd-{span.segment}-{span.start}-{crc:08x}"
            return Batch(span.segment, span.start, span.end, span.events, rows, False, token)
        buf = os.pread(self._reader(span.segment), span.end - span.start, span.start)
        parts: list[bytes] = []
        off = 0
        skips = [(a - span.start, b - span.start) for a, b in span.skips]
        while off < len(buf):
            skip = next((b for a, b in skips if a == off), None)
            if skip is not None:
                off = skip
                continue
            _, _flags, _events, length, _ = HEADER.unpack_from(buf, off)
            parts.append(buf[off + HEADER.size : off + HEADER.size + length])
            off += HEADER.size + length
        payload = b"".join(parts)
        token = f"obsd-{span.segment}-{span.start}-{zlib.crc32(payload):08x}"
        return Batch(span.segment, span.start, span.end, span.events, payload, True, token)

    def commit(self, batch: Batch) -> None:
        """Record that a batch is in the store; delete segments nothing points into any more."""
        with self._cond:
            head = self._pending.popleft()
            if (head.segment, head.start) != (batch.segment, batch.start):
                raise SpoolError(f"spool committed out of order: {batch.segment}:{batch.start}")
            self.pending_events -= head.events
            cached = self._cache.pop((head.segment, head.start), None)
            if cached is not None:
                self._cache_bytes -= len(cached[0])
            self._write_checkpoint(batch.segment, batch.end)
            oldest = self._pending[0].segment if self._pending else self._seq
            for seq in [s for s in self._sizes if s < oldest and s != self._seq]:
                fd = self._readers.pop(seq, None)
                if fd is not None:
                    os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    self._path(seq).unlink()
                self._total -= self._sizes.pop(seq)

    def close(self) -> None:
        """Close file handles; what is on disk stays for the next start."""
        with self._cond:
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
