"""The pipeline: ring buffer → committer (group commit into the spool) → writer thread → ClickHouse."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import structlog
import zstandard

from obsd.errors import ObsdError
from obsd.ops.metrics import Metrics
from obsd.pipeline.memory_log import MemoryLog
from obsd.pipeline.ring import Chunk, RingBuffer
from obsd.pipeline.spool import RecoveryReport, Spool
from obsd.pipeline.writer import Writer
from obsd.settings import Settings
from obsd.store.client import Store
from obsd.store.rows import DeadLetter

log = structlog.get_logger("obsd.pipeline.committer")

_MAX_STRETCH = 8  # an open batch waits for a busy writer at most this many batch intervals
_BACKLOG_BATCHES = 2  # requests wait while more than this many full batches wait for the store


class Overloaded(ObsdError):
    """obsd cannot promise to keep more events right now; the client should retry later."""

    def __init__(self, reason: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class Pipeline:
    """Accepts encoded rows, makes them durable, and hands them to the writer thread."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        p = settings.pipeline
        self.settings = settings
        self.metrics = metrics
        self.durable = settings.spool.durability == "fsync"
        self.ring = RingBuffer(p.ring_max_events, p.ring_max_bytes)
        self.spool: Spool | MemoryLog  # the write-ahead log, or its in-memory stand-in
        if self.durable:
            self.spool = Spool(settings.spool_dir, segment_bytes=settings.spool.segment_bytes,
                             max_bytes=settings.spool.max_spool_bytes)
        else:
            self.spool = MemoryLog(p.ring_max_bytes)
        self.writer = Writer(
            self.spool, lambda: Store(settings.dsn, settings.clickhouse.database), metrics,
            retry_min_s=p.retry_min_ms / 1000, retry_max_s=p.retry_max_ms / 1000,
        )
        self._zstd = zstandard.ZstdCompressor(level=settings.spool.compression_level)
        self._io = ThreadPoolExecutor(1, thread_name_prefix="obsd-spool")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.recovery = RecoveryReport()
        metrics.bind(lambda: self.ring.events, lambda: self.ring.bytes,
                     lambda: self.spool.size_bytes, lambda: self.spool.backlog_events + self.ring.events)

    async def start(self) -> None:
        """Recover the spool, start the writer thread and the committer."""
        if isinstance(self.spool, Spool):
            self.recovery = await asyncio.get_running_loop().run_in_executor(self._io, self.spool.open)
            r = self.recovery
            self.metrics.replayed.inc(r.events)
            self.metrics.quarantined_bytes.inc(r.quarantined_bytes)
            if r.events or r.quarantined_bytes:
                log.info("spool.recovered", batches=r.batches, events=r.events, segments=r.segments,
                         quarantined_bytes=r.quarantined_bytes, quarantined_ranges=r.quarantined_ranges)
        self.writer.start()
        self._task = asyncio.create_task(self._commit_loop(), name="obsd-committer")

    def check_capacity(self, events: int, nbytes: int) -> None:
        """Raise Overloaded when a request of this size cannot be promised now."""
        if self._closing:
            raise Overloaded("shutting_down", "obsd is shutting down; retry shortly", 5)
        if self.spool.over_budget():
            raise Overloaded(
                "spool_full",
                "obsd's backlog is at its budget (spool.max_spool_bytes) while the store catches up; "
                "retry later", 10,
            )
        if not self.ring.fits(events, nbytes):
            raise Overloaded("buffer_full", "obsd's ring buffer is full; retry in a moment", 1)

    async def submit(self, data: bytes, events: int) -> None:
        """Accept encoded rows; returns once they are durable (or buffered, in memory mode)."""
        self.check_capacity(events, len(data))
        await self._pace()
        done = asyncio.get_running_loop().create_future() if self.durable else None
        self.ring.offer(Chunk(data, events, done))
        self._wake.set()
        if done is not None:
            started = time.perf_counter()
            await done
            self.metrics.commit_wait_seconds.observe(time.perf_counter() - started)

    async def _pace(self) -> None:
        """Hold a request while the store is behind by more than _BACKLOG_BATCHES full batches.

        The loop and the store's threads share the CPU: when the loop acknowledges faster than
        the writer lands, the backlog only grows (and the engine, niced below the loop, gets even
        less CPU). Waiting here costs no CPU, so the store catches up and acknowledgements follow
        what lands. Not while the store is down: then the spool absorbs, up to its budget.
        """
        limit = _BACKLOG_BATCHES * self.settings.pipeline.batch_max_events
        while (self.spool.backlog_events + self.ring.events > limit and self.writer.store_ok
               and not self._closing):
            await asyncio.sleep(0.005)

    def reject(self, rows: list[DeadLetter]) -> None:
        """Keep ingest-time rejects for events_rejected."""
        self.writer.reject(rows)

    def ready(self) -> tuple[bool, dict[str, object]]:
        """Whether obsd can take traffic, with the reasons."""
        checks: dict[str, object] = {
            "store": "ok" if self.writer.store_ok else f"unavailable: {self.writer.last_error}",
            "buffer_fill": round(self.ring.fill, 3),
            "spool_bytes": self.spool.size_bytes,
            "pending_events": self.spool.pending_events,
        }
        ok = self.writer.store_ok and self.ring.fill < 0.9 and not self.spool.over_budget() and not self._closing
        return ok, checks

    async def _commit_loop(self) -> None:
        p = self.settings.pipeline
        interval = p.batch_interval_ms / 1000
        loop = asyncio.get_running_loop()
        batch_started: float | None = None
        batch_events = batch_bytes = 0
        while True:
            if self._closing and not self.ring and batch_started is None:
                return
            # Past its interval, an open batch waits (polling) for the writer to be free; see _batch_due.
            timeout = None if batch_started is None else max(0.005, batch_started + interval - time.monotonic())
            if not self.ring and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            now = time.monotonic()
            chunks = self.ring.take(max(1, p.batch_max_events - batch_events),
                                    max(1, p.batch_max_bytes - batch_bytes))
            if not chunks:
                if batch_started is not None and (self._batch_due(now - batch_started, interval) or self._closing):
                    await loop.run_in_executor(self._io, self.spool.append, b"", 0, True)
                    batch_started, batch_events, batch_bytes = None, 0, 0
                continue
            if batch_started is None:
                batch_started = now
            events = sum(c.events for c in chunks)
            raw = b"".join(c.data for c in chunks)
            batch_events += events
            batch_bytes += len(raw)
            end = (batch_events >= p.batch_max_events or batch_bytes >= p.batch_max_bytes
                   or self._batch_due(now - batch_started, interval))
            try:
                written = await loop.run_in_executor(self._io, self._append, raw, events, end)
            except Exception as exc:
                log.error("spool.append_failed", error=str(exc))
                for c in chunks:
                    if c.done is not None and not c.done.done():
                        c.done.set_exception(Overloaded("spool_error", str(exc), 10))
                continue
            self.metrics.spooled.inc(events)
            self.metrics.spooled_bytes.inc(written)
            for c in chunks:
                if c.done is not None and not c.done.done():
                    c.done.set_result(None)
            if end:
                batch_started, batch_events, batch_bytes = None, 0, 0

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

    def _append(self, raw: bytes, events: int, end: bool) -> int:
        started = time.perf_counter()
        payload = self._zstd.compress(raw) if self.durable else raw
        self.spool.append(payload, events, end, raw)
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        return len(payload)

    async def stop(self) -> None:
        """Stop taking events, commit the ring, drain to the store (or leave it in the spool)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        timeout = self.settings.server.shutdown_timeout_s
        # With a spool, what the store cannot take now is safe on disk for the next start.
        give_up = (2.0 if not self.writer.store_ok else timeout) if self.durable else timeout
        self.writer.stop(abandon_after=give_up)
        await asyncio.get_running_loop().run_in_executor(None, self.writer.join)
        left = self.spool.pending_events
        if left:
            if self.durable:
                log.info("shutdown.left_in_spool", events=left)
            else:
                log.error("shutdown.events_lost", events=left, reason="store unavailable, durability=memory")
        self.spool.close()
        self._io.shutdown(wait=True)
