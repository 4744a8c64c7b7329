"""The committer: one task that moves what waits in the ring into the spool, one group commit at a time.

Each step takes everything waiting (up to the batch limits), compresses it into one record, appends
and fdatasyncs it off the loop, records the batch ids it carries, and only then answers every waiting
request. It also cuts insert batches (the END flag), spools dead letters, and supervises itself: an
exception fails the requests of that step with 503, is logged and counted, and the loop goes on
after a backoff. A disk that refuses a write costs those requests a 503, never the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import msgspec
import structlog
import zstandard

from obsd import faults
from obsd.errors import Overloaded, SpoolError
from obsd.ops.metrics import Metrics
from obsd.pipeline.batch_ids import BatchIdWindow
from obsd.pipeline.health import StageHealth
from obsd.pipeline.memory_log import MemoryLog
from obsd.pipeline.ring import Chunk, RingBuffer
from obsd.pipeline.spool import Spool
from obsd.settings import PipelineSettings
from obsd.store.client import short_error
from obsd.store.rows import DeadLetter

log = structlog.get_logger("obsd.pipeline.committer")

_MAX_STRETCH = 8  # an open batch waits for a busy writer at most this many batch intervals
_MAX_QUEUED_DEAD_BYTES = 4 * 1024 * 1024  # dead letters waiting for the next commit, at most
_encode_lines = msgspec.json.Encoder().encode_lines


class Committer:
    """The task between the ring and the spool (and between ingest-time rejects and their spool)."""

    def __init__(self, settings: PipelineSettings, ring: RingBuffer, spool: Spool | MemoryLog,
                 rejected: Spool | MemoryLog, batch_ids: BatchIdWindow, metrics: Metrics, health: StageHealth, *,
                 compression_level: int) -> None:
        self.settings = settings
        self.ring = ring
        self.spool = spool
        self.rejected = rejected
        self.batch_ids = batch_ids
        self.metrics = metrics
        self.health = health
        self.durable = isinstance(spool, Spool)
        self._zstd = zstandard.ZstdCompressor(level=compression_level)
        self.io = ThreadPoolExecutor(1, thread_name_prefix="obsd-spool")
        self.wake = asyncio.Event()
        self.closing = False
        self._taken: list[Chunk] = []
        self._dead: deque[tuple[bytes, int]] = deque()
        self._dead_bytes = 0
        self._batch_started: float | None = None
        self._batch_events = 0
        self._batch_bytes = 0

    # -- dead letters ------------------------------------------------------------------------------

    def reject(self, letters: list[DeadLetter]) -> None:
        """Queue ingest-time rejects for events_rejected; past its bound a dead letter is dropped (counted)."""
        if not letters:
            return
        data = _encode_lines(letters)
        if self._dead_bytes + len(data) > _MAX_QUEUED_DEAD_BYTES or self.rejected.over_budget():
            self.metrics.dead_letters_dropped.labels(reason="full").inc(len(letters))
            return
        self._dead.append((data, len(letters)))
        self._dead_bytes += len(data)
        self.wake.set()

    async def _spool_dead_letters(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._dead:
            return
        items = list(self._dead)
        self._dead.clear()
        self._dead_bytes = 0
        data = b"".join(d for d, _ in items)
        n = sum(k for _, k in items)
        try:
            await loop.run_in_executor(self.io, self._append_dead, data, n)
        except SpoolError as exc:
            self.metrics.dead_letters_dropped.labels(reason="spool_error").inc(n)
            log.warning("dead_letters.not_spooled", rows=n, error=str(exc))
        else:
            self.metrics.dead_letters_spooled.inc(n)

    def _append_dead(self, data: bytes, n: int) -> None:
        payload = self._zstd.compress(data) if self.durable else data
        self.rejected.append(payload, n, True, data)

    # -- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Commit until closing and drained; any failure is caught, counted and retried with backoff."""
        backoff = 0.05
        while True:
            self.health.beat()
            try:
                if faults.active("committer_raise"):
                    raise RuntimeError("fault injected: committer_raise")
                if await self._step():
                    return
                backoff = 0.05
            except Exception as exc:
                self._fail_taken(Overloaded("internal_error", "obsd could not commit these events; retry",
                                            max(1, round(backoff))))
                self.health.failed(exc, internal=True)
                self.metrics.stage_failures.labels(stage="committer").inc()
                log.exception("committer.failed", error=short_error(exc))
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)

    def _fail_taken(self, exc: Exception) -> None:
        for c in self._taken:
            if c.done is not None and not c.done.done():
                c.done.set_exception(exc)
        self._taken = []

    async def _step(self) -> bool:
        """One group commit (or a wait for work); True when closing and nothing is left."""
        p = self.settings
        interval = p.batch_interval_ms / 1000
        loop = asyncio.get_running_loop()
        if self.closing and not self.ring and self._batch_started is None and not self._dead:
            return True
        # Past its interval, an open batch waits (polling) for the writer to be free; see _batch_due.
        timeout = (None if self._batch_started is None
                   else max(0.005, self._batch_started + interval - time.monotonic()))
        if not self.ring and not self.closing and not self._dead:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()
        await self._spool_dead_letters(loop)
        now = time.monotonic()
        chunks = self._taken = self.ring.take(max(1, p.batch_max_events - self._batch_events),
                                              max(1, p.batch_max_bytes - self._batch_bytes))
        if not chunks:
            if self._batch_started is not None and (self._batch_due(now - self._batch_started, interval)
                                                    or self.closing):
                try:
                    await loop.run_in_executor(self.io, self.spool.append, b"", 0, True)
                except SpoolError as exc:  # the batch stays open; the cut is tried again next step
                    self.metrics.spool_errors.labels(kind="spool_full" if exc.full else "spool_error").inc()
                    log.warning("spool.cut_failed", error=str(exc))
                    await asyncio.sleep(0.1)
                    return False
                self._batch_started, self._batch_events, self._batch_bytes = None, 0, 0
            self.health.progress()
            return False
        events = sum(c.events for c in chunks)
        raw = b"".join(c.data for c in chunks)
        age = 0.0 if self._batch_started is None else now - self._batch_started
        end = (self._batch_events + events >= p.batch_max_events or self._batch_bytes + len(raw) >= p.batch_max_bytes
               or self._batch_due(age, interval))
        ids = tuple(c.batch for c in chunks if c.batch is not None)
        try:
            written = await loop.run_in_executor(self.io, self._append, raw, events, end, ids)
        except SpoolError as exc:
            reason = "spool_full" if exc.full else "spool_error"
            if exc.kept and ids:  # on disk after all: a resend of these batches must store nothing
                self.batch_ids.add(ids)
            self.metrics.spool_errors.labels(kind=reason).inc()
            log.warning("spool.append_failed", error=str(exc), events=events)
            self._fail_taken(Overloaded(reason, f"obsd cannot write its spool now ({exc}); retry later",
                                        10 if exc.full else 5))
            self.health.progress()  # the disk refused, the committer itself is fine
            return False
        if faults.active("exit_after_commit") and self.durable:
            os._exit(137)  # a crash between fsync and the 202 (fault tests only)
        if ids:
            self.batch_ids.add(ids)
        for c in chunks:
            if c.done is not None and not c.done.done():
                c.done.set_result(None)
        self._taken = []
        self.metrics.spooled.inc(events)
        self.metrics.spooled_bytes.inc(written)
        if self._batch_started is None:
            self._batch_started = now
        self._batch_events += events
        self._batch_bytes += len(raw)
        if end:
            self._batch_started, self._batch_events, self._batch_bytes = None, 0, 0
        self.health.progress()
        return False

    def _batch_due(self, age: float, interval: float) -> bool:
        """Whether an open batch of this age should close now.

        Each insert has a large fixed cost (the rollup views cost ~0.25 s per insert here, whatever
        its size), so a writer that is still busy gets one bigger batch rather than a queue of small
        ones: the batch stays open past its interval until the writer has nothing waiting, up to
        the size limits or _MAX_STRETCH intervals. The cut is still written into the log, so a
        replay cuts the same batches.
        """
        if age < interval:
            return False
        return age >= interval * _MAX_STRETCH or self.spool.pending_batches == 0

    def _append(self, raw: bytes, events: int, end: bool, ids: tuple[int, ...]) -> int:
        started = time.perf_counter()
        payload = self._zstd.compress(raw) if self.durable else raw
        self.spool.append(payload, events, end, raw, ids)
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        return len(payload)
