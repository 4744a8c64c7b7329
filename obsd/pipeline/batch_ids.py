"""The batch-id window: which (project, batch_id) pairs were accepted lately, so a resent batch stores nothing.

A pair is kept as a 64-bit BLAKE2b fingerprint. Ids are grouped by the minute they were accepted:
the newest in a set (closed early, past `max_ids / 16` ids); each closed minute as a sorted array of
8 bytes per id (kept for expiry and the snapshot), and all closed ids together in one sorted array that
a lookup binary-searches (numpy). Memory is about 20 bytes per remembered batch plus ~70 bytes for each
of at most `max_ids / 16` in the set. Past `max_ids` the oldest minutes are forgotten early (counted),
so memory stays bounded whatever the load. The window survives restarts: every spool record carries
the ids it acknowledges (recovery reads them back), and a snapshot file keeps the ids of segments
already deleted.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import structlog

log = structlog.get_logger("obsd.pipeline.batch_ids")

_MAGIC = b"OBSDIDS1"
_GROUP = struct.Struct("<qI")  # minute (unix seconds // 60), count; then count * u64


def fingerprint(project: str, batch_id: str) -> int:
    """The 64-bit id of a project's batch (a collision needs ~2^32 batches in one window)."""
    return int.from_bytes(hashlib.blake2b(f"{project}\0{batch_id}".encode(), digest_size=8).digest(), "little")


class BatchIdWindow:
    """Remembers accepted batch ids for `window_s` seconds, at most `max_ids` of them."""

    def __init__(self, window_s: float, max_ids: int, path: Path | None = None, *,
                 clock: Callable[[], float] = time.time, on_evict: Callable[[int], object] = lambda n: None) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self.path = path
        self._clock = clock
        self._on_evict = on_evict
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._closed: deque[tuple[int, np.ndarray]] = deque()  # (minute, sorted uint64 ids), oldest first
        self._merged = np.zeros(0, dtype=np.uint64)  # every closed minute's ids, sorted
        self._next_roll = 0.0  # the next minute boundary: before it, _roll has nothing to do
        self._chunk = max(1000, max_ids // 16)  # the current set is closed early past this many ids
        self._minute = int(clock() // 60)
        self._current: set[int] = set()
        self._current_order = array("Q")
        self.size = 0
        self.evicted = 0
        self.dirty = False

    def _roll(self) -> bool:
        """Close the current minute if the clock moved on; drop minutes out of the window, and the oldest
        ones early while over `max_ids` (counted as evicted). True when the merged array was rebuilt."""
        now = self._clock()
        if now < self._next_roll and self.size <= self.max_ids:
            return False  # nothing can have expired or closed since the last roll
        minute = int(now // 60)
        self._next_roll = (minute + 1) * 60
        changed = False
        if minute != self._minute:
            changed = bool(self._current)
            self._close_current()
            self._minute = minute
        cutoff = int((now - self.window_s) // 60)  # minutes before this hold only expired ids
        while self._closed:
            first, ids = self._closed[0]
            expired = first < cutoff
            if not expired and self.size <= self.max_ids:
                break
            self._closed.popleft()
            self.size -= len(ids)
            self.dirty = changed = True
            if not expired:
                self.evicted += len(ids)
                self._on_evict(len(ids))
        if changed:
            self._merge()
        return changed

    def _close_current(self) -> None:
        """Move the current ids (one minute's, or part of it) into a sorted array."""
        if self._current:
            self._closed.append((self._minute, np.sort(np.frombuffer(self._current_order, dtype=np.uint64))))
        self._current, self._current_order = set(), array("Q")

    def _merge(self) -> None:
        """Rebuild the one sorted array of closed ids (a few ms per million ids, once a minute)."""
        parts = [ids for _, ids in self._closed]
        merged = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
        merged.sort()
        self._merged = merged

    def seen(self, fp: int) -> bool:
        """Whether this batch was accepted within the window."""
        with self._lock:
            self._roll()
            if fp in self._current:
                return True
            merged = self._merged
            if not merged.size:
                return False
            i = int(merged.searchsorted(np.uint64(fp)))
            return i < merged.size and int(merged[i]) == fp

    def add(self, fps: Iterable[int]) -> None:
        """Remember batches accepted now."""
        with self._lock:
            self._roll()
            for fp in fps:
                if fp not in self._current:
                    self._current.add(fp)
                    self._current_order.append(fp)
                    self.size += 1
                    self.dirty = True
            closed = len(self._current) >= self._chunk
            if closed:
                self._close_current()  # a set costs ~70 bytes an id; a closed array costs ~16
            # Over max_ids the roll evicts and merges; else a closed chunk is merged here (once: a merge of
            # 4M ids takes ~90 ms on the event loop).
            if not self._roll() and closed:
                self._merge()

    # -- persistence ---------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Every remembered id, grouped by minute, as the snapshot file holds them."""
        with self._lock:
            self._roll()
            groups = [*self._closed, (self._minute, np.frombuffer(self._current_order, dtype=np.uint64).copy())]
            self.dirty = False
        out = [_MAGIC]
        for minute, ids in groups:
            out.append(_GROUP.pack(minute, len(ids)))
            out.append(ids.astype("<u8").tobytes())
        return b"".join(out)

    def load(self, data: bytes, recovered: Iterable[int] = ()) -> int:
        """Take a snapshot's ids (those still in the window) and ids recovered from spool records
        (treated as accepted now); returns how many ids the window holds."""
        now = self._clock()
        now_minute = int(now // 60)
        cutoff = int((now - self.window_s) // 60)
        groups: list[tuple[int, np.ndarray]] = []
        if data.startswith(_MAGIC):
            off = len(_MAGIC)
            try:
                while off < len(data):
                    minute, count = _GROUP.unpack_from(data, off)
                    off += _GROUP.size
                    ids = np.frombuffer(data[off : off + 8 * count], dtype="<u8").astype(np.uint64)
                    off += 8 * count
                    if minute >= cutoff and len(ids) == count:
                        groups.append((minute, np.sort(ids)))
            except struct.error:
                log.warning("batch_ids.snapshot_truncated", kept_groups=len(groups))
        elif data:
            log.warning("batch_ids.snapshot_unreadable", reason="bad magic")
        with self._lock:
            for minute, ids in sorted(groups, key=lambda g: g[0]):
                if minute < now_minute:
                    self._closed.append((minute, ids))
                    self.size += len(ids)
                else:
                    recovered = [*recovered, *ids.tolist()]
            self._merge()
        self.add(recovered)
        return self.size

    def save(self) -> None:
        """Write the snapshot file atomically and durably (when the window changed since the last save)."""
        if self.path is None:
            return
        # The writer thread (before deleting a segment) and the spool's io thread (every few seconds) both
        # save: one at a time, or they would write the same .tmp file together.
        with self._save_lock:
            if not self.dirty:
                return
            data = self.snapshot()
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)

    def read_file(self) -> bytes:
        """The snapshot file's bytes ('' when there is none)."""
        if self.path is None:
            return b""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
