"""The writer thread: owns the ClickHouse connection, inserts spool batches, retries, dead-letters.

It is supervised from the inside: any exception in an iteration is caught, logged with its error,
counted (`obsd_stage_failures_total{stage="writer"}`), recorded in its StageHealth and retried with
backoff; the thread only ends when told to stop.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
import structlog
import zstandard

from obsd import faults
from obsd.ops.metrics import Metrics
from obsd.pipeline.health import StageHealth
from obsd.pipeline.spool import Batch
from obsd.store.client import Store, is_data_error, is_split_refusal, short_error
from obsd.store.cpupriority import lower_foreign_threads
from obsd.store.rows import dead_letter

log = structlog.get_logger("obsd.pipeline.writer")


class BatchSource(Protocol):
    """Where the writer takes batches from: the spool, or memory when durability is off."""

    def next_batch(self, timeout: float) -> Batch | None: ...
    def commit(self, batch: Batch, inserted: int | None = None, dead: int = 0) -> None: ...


class _RowProject(msgspec.Struct):
    project_id: str = ""


_row_project = msgspec.json.Decoder(_RowProject)
# chDB's threads run this much nicer than the event loop: they take the CPU the loop leaves, and
# the loop's latency no longer depends on how busy an insert keeps them.
ENGINE_NICENESS = 10
_encode_lines = msgspec.json.Encoder().encode_lines


class Writer(threading.Thread):
    """Takes batches in order from its sources (events first, then dead letters), inserts each with its
    token, and commits it back to its source."""

    def __init__(self, events: BatchSource, rejected: BatchSource, open_store: Callable[[], Store],
                 metrics: Metrics, health: StageHealth, *, retry_min_s: float = 0.1, retry_max_s: float = 10.0,
                 on_progress: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="obsd-writer", daemon=True)
        self.sources: tuple[tuple[BatchSource, str], ...] = ((events, "events"), (rejected, "events_rejected"))
        self._open_store = open_store
        self.metrics = metrics
        self.health = health
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.on_progress = on_progress
        self._store: Store | None = None
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        # True while the last store call succeeded (not: the thread is alive).
        self.store_ok = True
        self.last_error = ""

    # -- control from other threads -----------------------------------------------------------

    def stop(self, *, abandon_after: float | None = None) -> None:
        """Finish what the sources hold, then exit; give up retrying after `abandon_after` seconds."""
        self._stopping.set()
        if abandon_after is not None:
            timer = threading.Timer(abandon_after, self._abandon.set)
            timer.daemon = True
            timer.start()

    # -- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        """Insert batches until stopped and drained (or told to abandon); survive any failure on the way."""
        failures = 0
        while not self._abandon.is_set():
            self.health.beat()
            try:
                if faults.active("writer_raise"):
                    raise RuntimeError("fault injected: writer_raise")
                done = self._step()
            except Exception as exc:
                failures += 1
                self.health.failed(exc, internal=True)
                self.metrics.stage_failures.labels(stage="writer").inc()
                log.exception("writer.failed", error=short_error(exc), attempt=failures)
                if not self._backoff(failures - 1):
                    break
                continue
            failures = 0
            if done:
                break
        if self._store is not None:
            self._store.close()

    def _step(self) -> bool:
        """Insert the next batch, if any; True when stopping and nothing is left."""
        wait = 0.05 if self._stopping.is_set() else 0.2
        for i, (source, table) in enumerate(self.sources):
            batch = source.next_batch(timeout=wait if i == 0 else 0)
            if batch is None:
                continue
            result = self._insert(batch, table)
            if result is None:
                return True  # told to give up: what is left stays in the spool
            source.commit(batch, *result)
            self.health.progress()
            self.on_progress()
            return False
        return self._stopping.is_set()

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
        self.health.failed(exc, internal=False)
        self.metrics.store_up.set(0)
        self.metrics.insert_errors.labels(kind="unavailable").inc()
        self.on_progress()  # waiting requests stop pacing while the store is down

    def _ok(self) -> None:
        if not self.store_ok:
            log.info("store.recovered")
        self.store_ok = True
        self.last_error = ""
        self.metrics.store_up.set(1)

    def _backoff(self, attempt: int) -> bool:
        """Sleep a jittered exponential delay; False when the writer must give up."""
        delay = min(self.retry_max_s, self.retry_min_s * (2 ** min(attempt, 20)))
        self.health.beat()
        return not self._abandon.wait(random.uniform(delay / 2, delay))

    def _send(self, table: str, data: bytes, *, compression: str | None,
              token: str) -> tuple[bool, BaseException | None]:
        """Insert rows, retrying while the store is unavailable.

        Returns (False, None) when told to give up, (True, exc) when ClickHouse refused the rows
        themselves (or the batch's shape: too many partitions), and (True, None) when they landed.
        """
        attempt = 0
        while True:
            store = self._store_or_none()
            if store is not None:
                started = time.monotonic()
                try:
                    store.insert_ndjson(table, data, compression=compression, token=token)
                except Exception as exc:
                    if is_data_error(exc) or is_split_refusal(exc):
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

    def _insert(self, batch: Batch, table: str) -> tuple[int, int] | None:
        """Insert one batch: (rows inserted, rows dead-lettered), or None when told to give up."""
        answered, refused = self._send(table, batch.payload, compression="zstd" if batch.compressed else None,
                                       token=batch.token)
        if not answered:
            return None
        if refused is not None:
            return self._bisect(batch, table, refused)
        if table == "events":
            self.metrics.inserted_bytes.inc(len(batch.payload))
            if batch.accepted_at is not None:
                self.metrics.freshness_seconds.observe(max(0.0, time.time() - batch.accepted_at))
        else:
            self.metrics.dead_letters_inserted.inc(batch.events)
        return batch.events, 0

    def _bisect(self, batch: Batch, table: str, first: BaseException) -> tuple[int, int] | None:
        """Split a refused batch until the good rows land; refused rows go to events_rejected, with a token
        derived from the batch's, before the batch is committed (so a crash cannot lose or repeat them)."""
        data = batch.payload
        if batch.compressed:
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        lines = [ln for ln in data.split(b"\n") if ln]
        log.warning("store.batch_refused", table=table, events=len(lines), error=short_error(first))
        inserted = 0
        dead: list[bytes] = []
        stack = [(0, len(lines))]
        while stack:
            lo, hi = stack.pop()
            answered, refused = self._send(table, b"\n".join(lines[lo:hi]) + b"\n", compression=None,
                                           token=f"{batch.token}/{lo}-{hi}")
            if not answered:
                return None
            if refused is None:
                inserted += hi - lo
            elif hi - lo == 1:
                dead.append(self._dead_letter(lines[lo], short_error(refused)))
            else:
                mid = (lo + hi) // 2
                stack.extend([(mid, hi), (lo, mid)])
        if dead and table == "events":
            answered, refused = self._send("events_rejected", b"".join(dead), compression=None,
                                           token=f"{batch.token}/dead")
            if not answered:
                return None
            if refused is not None:
                log.error("store.dead_letters_refused", rows=len(dead), error=short_error(refused))
                self.metrics.dead_letters_dropped.labels(reason="refused").inc(len(dead))
        elif dead:  # a dead letter refused by events_rejected itself: nowhere left to keep it
            self.metrics.dead_letters_dropped.labels(reason="refused").inc(len(dead))
        return inserted, len(dead)

    def _dead_letter(self, line: bytes, reason: str) -> bytes:
        try:
            project = _row_project.decode(line).project_id
        except msgspec.DecodeError:
            project = ""
        return _encode_lines([dead_letter(time.time(), project, "store", reason, line)])
