"""The writer thread: owns the ClickHouse connection, inserts spool batches, retries, dead-letters."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import msgspec
import structlog
import zstandard

from obsd.ops.metrics import Metrics
from obsd.pipeline.spool import Batch
from obsd.store.client import Store, is_data_error, short_error
from obsd.store.cpupriority import lower_foreign_threads
from obsd.store.rows import DeadLetter, dead_letter

log = structlog.get_logger("obsd.pipeline.writer")


class BatchSource(Protocol):
    """Where the writer takes batches from: the spool, or memory when durability is off."""

    pending_events: int

    def next_batch(self, timeout: float) -> Batch | None: ...
    def commit(self, batch: Batch) -> None: ...


class _RowProject(msgspec.Struct):
    project_id: str = ""


_row_project = msgspec.json.Decoder(_RowProject)
# chDB's threads run this much nicer than the event loop: they take the CPU the loop leaves, and
# the loop's latency no longer depends on how busy an insert keeps them.
ENGINE_NICENESS = 10
_encode_lines = msgspec.json.Encoder().encode_lines


class Writer(threading.Thread):
    """Takes batches in order, inserts each with its token, and commits it back to the source."""

    def __init__(self, source: BatchSource, open_store: Callable[[], Store], metrics: Metrics, *,
                 retry_min_s: float = 0.1, retry_max_s: float = 10.0, max_dead_letters: int = 10_000) -> None:
        super().__init__(name="obsd-writer", daemon=True)
        self.source = source
        self._open_store = open_store
        self.metrics = metrics
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._store: Store | None = None
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._dead: deque[DeadLetter] = deque(maxlen=max_dead_letters)
        self._dead_lock = threading.Lock()
        # True while the last store call succeeded (not: the thread is alive).
        self.store_ok = True
        self.last_error = ""

    # -- control from other threads -----------------------------------------------------------

    def stop(self, *, abandon_after: float | None = None) -> None:
        """Finish what the source holds, then exit; give up retrying after `abandon_after` seconds."""
        self._stopping.set()
        if abandon_after is not None:
            timer = threading.Timer(abandon_after, self._abandon.set)
            timer.daemon = True
            timer.start()

    def reject(self, rows: list[DeadLetter]) -> None:
        """Queue ingest-time rejects for events_rejected (bounded: oldest dropped first)."""
        with self._dead_lock:
            self._dead.extend(rows)

    # -- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        """Insert batches until stopped and drained (or told to abandon)."""
        while not self._abandon.is_set():
            batch = self.source.next_batch(timeout=0.05 if self._stopping.is_set() else 0.2)
            if batch is None:
                self._flush_dead_letters()
                if self._stopping.is_set():
                    break
                continue
            if not self._insert(batch):
                break
            self.source.commit(batch)
        self._flush_dead_letters()
        if self._store is not None:
            self._store.close()

    def _store_or_none(self) -> Store | None:
        if self._store is None:
            try:
                self._store = self._open_store()
            except Exception as exc:
                self._failed(exc)
                return None
        return self._store

    def _failed(self, exc: BaseException) -> None:
        text = short_error(exc)
        if self.store_ok or text != self.last_error:
            log.warning("store.unavailable", error=text)
        self.store_ok = False
        self.last_error = text
        self.metrics.store_up.set(0)
        self.metrics.insert_errors.labels(kind="unavailable").inc()

    def _ok(self) -> None:
        if not self.store_ok:
            log.info("store.recovered")
        self.store_ok = True
        self.last_error = ""
        self.metrics.store_up.set(1)

    def _backoff(self, attempt: int) -> bool:
        """Sleep a jittered exponential delay; False when the writer must give up."""
        delay = min(self.retry_max_s, self.retry_min_s * (2 ** min(attempt, 20)))
        return not self._abandon.wait(random.uniform(delay / 2, delay))

    def _send(self, data: bytes, *, compression: str | None, token: str) -> tuple[bool, BaseException | None]:
        """Insert rows, retrying while the store is unavailable.

        Returns (False, None) when told to give up, (True, exc) when ClickHouse refused the rows
        themselves, and (True, None) when they landed.
        """
        attempt = 0
        while True:
            store = self._store_or_none()
            if store is not None:
                started = time.monotonic()
                try:
                    store.insert_ndjson("events", data, compression=compression, token=token)
                except Exception as exc:
                    if is_data_error(exc):
                        self._ok()
                        return True, exc
                    self._failed(exc)
                else:
                    self._ok()
                    self.metrics.insert_seconds.observe(time.monotonic() - started)
                    if store.embedded:  # the engine may have started new threads for this insert
                        lower_foreign_threads(ENGINE_NICENESS)
                    return True, None
            if not self._backoff(attempt):
                return False, None
            attempt += 1

    def _insert(self, batch: Batch) -> bool:
        """Insert one batch; transient failures are retried, refused rows dead-lettered."""
        answered, refused = self._send(batch.payload, compression="zstd" if batch.compressed else None,
                                       token=batch.token)
        if not answered:
            return False
        if refused is not None:
            return self._bisect(batch, refused)
        self.metrics.inserted.inc(batch.events)
        self.metrics.inserted_bytes.inc(len(batch.payload))
        return True

    def _bisect(self, batch: Batch, first: BaseException) -> bool:
        """Split a refused batch until the good rows land and each bad row is dead-lettered."""
        data = batch.payload
        if batch.compressed:
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        lines = [ln for ln in data.split(b"\n") if ln]
        log.warning("store.batch_refused", events=len(lines), error=short_error(first))
        inserted = dead = 0
        stack = [(0, len(lines))]
        while stack:
            lo, hi = stack.pop()
            answered, refused = self._send(b"\n".join(lines[lo:hi]) + b"\n", compression=None,
                                           token=f"{batch.token}/{lo}-{hi}")
            if not answered:
                return False
            if refused is None:
                inserted += hi - lo
            elif hi - lo == 1:
                self._dead_letter(lines[lo], short_error(refused))
                dead += 1
            else:
                mid = (lo + hi) // 2
                stack.extend([(mid, hi), (lo, mid)])
        self.metrics.inserted.inc(inserted)
        self.metrics.dead_lettered.inc(dead)
        self._flush_dead_letters()
        return True

    def _dead_letter(self, line: bytes, reason: str) -> None:
        try:
            project = _row_project.decode(line).project_id
        except msgspec.DecodeError:
            project = ""
        self.reject([dead_letter(time.time(), project, "store", reason, line)])

    def _flush_dead_letters(self) -> None:
        with self._dead_lock:
            rows = list(self._dead)
            self._dead.clear()
        if not rows:
            return
        store = self._store_or_none()
        if store is None:
            with self._dead_lock:
                self._dead.extendleft(reversed(rows))
            return
        try:
            store.insert_ndjson("events_rejected", _encode_lines(rows))
        except Exception as exc:
            log.warning("store.dead_letter_failed", rows=len(rows), error=short_error(exc))
            if not is_data_error(exc):
                with self._dead_lock:
                    self._dead.extendleft(reversed(rows))
