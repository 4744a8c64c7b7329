"""The pipeline: ring buffer → committer (group commit into the spool) → writer thread → ClickHouse.

`Pipeline.submit` is what ingestion calls. It answers (returns) once the rows are durable, or raises
Overloaded (→ 503 + Retry-After) when it cannot promise that within `server.accept_deadline_s`, or
TooLarge (→ 413) for rows that could never fit. A resend of a batch accepted before (same project and
`batch_id`, within `spool.batch_id_window_s`) stores nothing and returns False.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from obsd.errors import Overloaded, TooLarge
from obsd.ops.metrics import Metrics
from obsd.pipeline.batch_ids import BatchIdWindow
from obsd.pipeline.committer import Committer
from obsd.pipeline.health import StageHealth
from obsd.pipeline.ledger import Accounts, Ledger
from obsd.pipeline.memory_log import MemoryLog
from obsd.pipeline.ring import Chunk, RingBuffer
from obsd.pipeline.spool import RecoveryReport, Spool
from obsd.pipeline.writer import Writer
from obsd.settings import Settings
from obsd.store.client import Store
from obsd.store.rows import DeadLetter

log = structlog.get_logger("obsd.pipeline")

_BACKLOG_BATCHES = 2  # requests wait while more than this many full batches wait for the store
_SPOOL_ERROR_SHOWN_S = 5.0  # /ready reports a failed spool write this long (then traffic may probe again)
_IDS_SAVE_EVERY_S = 5.0


class Pipeline:
    """Accepts encoded rows, makes them durable, and hands them to the writer thread."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        p, sp = settings.pipeline, settings.spool
        self.settings = settings
        self.metrics = metrics
        self.durable = sp.durability == "fsync"
        self.ledger = Ledger(metrics)
        self.ring = RingBuffer(p.ring_max_events, p.ring_max_bytes)
        self.spool: Spool | MemoryLog  # the write-ahead log, or its in-memory stand-in
        self.rejected: Spool | MemoryLog  # the same for dead letters (rows for events_rejected)
        if self.durable:
            self.spool = Spool(settings.spool_dir, segment_bytes=sp.segment_bytes, max_bytes=sp.max_spool_bytes,
                               preallocate=sp.preallocate, ledger=self.ledger)
            self.rejected = Spool(settings.spool_dir / "rejected", segment_bytes=min(sp.segment_bytes, 8 << 20),
                                  max_bytes=sp.max_rejected_bytes)
        else:
            self.spool = MemoryLog(p.ring_max_bytes, ledger=self.ledger)
            self.rejected = MemoryLog(sp.max_rejected_bytes)
        self.ledger.bind(lambda: self.spool.backlog_events)
        self.batch_ids = BatchIdWindow(sp.batch_id_window_s, sp.max_batch_ids,
                                       settings.spool_dir / "batch-ids" if self.durable else None,
                                       on_evict=metrics.batch_ids_evicted.inc)
        if isinstance(self.spool, Spool):
            self.spool.before_delete = self.batch_ids.save
        self.writer_health = StageHealth(
            "writer", lambda: self.spool.pending_batches > 0 or self.rejected.pending_batches > 0)
        self.committer_health = StageHealth("committer", lambda: bool(self.ring))
        self.committer = Committer(p, self.ring, self.spool, self.rejected, self.batch_ids, metrics,
                                   self.committer_health, compression_level=sp.compression_level)
        self.writer = Writer(
            self.spool, self.rejected, lambda: Store(settings.dsn, settings.clickhouse.database), metrics,
            self.writer_health, retry_min_s=p.retry_min_ms / 1000, retry_max_s=p.retry_max_ms / 1000,
            on_progress=self._progress_from_thread,
        )
        self._progress = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ids_task: asyncio.Task[None] | None = None
        self._inflight: dict[int, asyncio.Future[None]] = {}
        self._closing = False
        self.recovery = RecoveryReport()
        metrics.bind(lambda: self.ring.events, lambda: self.ring.bytes,
                     lambda: self.spool.size_bytes, lambda: self.ledger.read().pending,
                     lambda: self.batch_ids.size)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover the spools and the batch-id window, start the writer thread and the committer."""
        loop = self._loop = asyncio.get_running_loop()
        io = self.committer.io
        if isinstance(self.spool, Spool):
            self.recovery = r = await loop.run_in_executor(io, self.spool.open)
            self.metrics.quarantined_bytes.inc(r.quarantined_bytes)
            if r.events or r.quarantined_bytes:
                log.info("spool.recovered", batches=r.batches, events=r.events, segments=r.segments,
                         quarantined_bytes=r.quarantined_bytes, quarantined_ranges=r.quarantined_ranges)
            dead = await loop.run_in_executor(io, self.rejected.open) if isinstance(self.rejected, Spool) else None
            if dead is not None and dead.events:
                log.info("spool.recovered_dead_letters", rows=dead.events)
            held = self.batch_ids.load(await loop.run_in_executor(io, self.batch_ids.read_file), r.batch_ids)
            if held:
                log.info("batch_ids.recovered", ids=held)
            self._ids_task = asyncio.create_task(self._save_ids(), name="obsd-batch-ids")
        self.writer.start()
        self._start_committer()

    def _start_committer(self) -> None:
        self._task = asyncio.create_task(self.committer.run(), name="obsd-committer")
        self._task.add_done_callback(self._committer_ended)

    def _committer_ended(self, task: asyncio.Task[None]) -> None:
        """The committer only ends when closing; if it ever ends otherwise, say so and start it again."""
        if self._closing or task.cancelled():
            return
        log.error("committer.ended", error=repr(task.exception()), action="restarting it")
        self.metrics.stage_failures.labels(stage="committer").inc()
        self._start_committer()

    async def _save_ids(self) -> None:
        """Keep the batch-id snapshot current (the spool records hold the rest)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_IDS_SAVE_EVERY_S)
            try:
                await loop.run_in_executor(self.committer.io, self.batch_ids.save)
            except OSError as exc:
                log.warning("batch_ids.save_failed", error=exc.strerror, retry=f"in {_IDS_SAVE_EVERY_S:.0f} s")

    async def stop(self) -> None:
        """Stop taking events, commit the ring, drain to the store (or leave it in the spool)."""
        self._closing = True
        self.committer.closing = True
        self.committer.wake.set()
        self._progress.set()
        timeout = self.settings.server.shutdown_timeout_s
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except TimeoutError:
                log.error("shutdown.committer_stuck", waited_s=timeout)
        if self._ids_task is not None:
            self._ids_task.cancel()
        # With a spool, what the store cannot take now is safe on disk for the next start.
        give_up = (2.0 if not self.writer.store_ok else timeout) if self.durable else timeout
        self.writer.stop(abandon_after=give_up)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.writer.join)
        left = self.spool.pending_events
        if left:
            if self.durable:
                log.info("shutdown.left_in_spool", events=left)
            else:
                log.error("shutdown.events_lost", events=left, reason="store unavailable, durability=memory")
        with contextlib.suppress(OSError):
            await loop.run_in_executor(self.committer.io, self.batch_ids.save)
        self.spool.close()
        self.rejected.close()
        self.committer.io.shutdown(wait=True)

    # -- taking events -----------------------------------------------------------------------------

    def check_capacity(self, events: int, nbytes: int) -> None:
        """Raise Overloaded when a request of this size cannot be promised now, TooLarge when never."""
        if not self.ring.could_ever_fit(events, nbytes):
            raise TooLarge(f"{events} events in {nbytes} bytes do not fit obsd's buffer at once "
                           f"(pipeline.ring_max_events {self.ring.max_events}, ring_max_bytes "
                           f"{self.ring.max_bytes}); send them in smaller requests")
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

    async def submit(self, data: bytes, events: int, *, batch: int | None = None) -> bool:
        """Accept encoded rows; True once they are durable (or buffered, in memory mode), False when
        `batch` (a batch-id fingerprint) was accepted before and nothing was stored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.server.accept_deadline_s
        if batch is not None and await self._seen(batch, deadline):
            self.metrics.duplicate_batches.inc()
            return False
        self.check_capacity(events, len(data))
        await self._pace(deadline)
        done = loop.create_future() if self.durable else None
        chunk = Chunk(data, events, done, batch)
        if not self.ring.offer(chunk):  # it filled while this request waited
            raise Overloaded("buffer_full", "obsd's ring buffer is full; retry in a moment", 1)
        if done is None:
            with self.ledger.lock:
                self.ledger.accept(events, len(data))
                self.ledger.unsettled += events
            if batch is not None:
                self.batch_ids.add((batch,))
            self.committer.wake.set()
            return True
        if batch is not None:
            self._inflight[batch] = done
            done.add_done_callback(lambda f: self._inflight.pop(batch, None) if self._inflight.get(batch) is f
                                   else None)
        self.committer.wake.set()
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.shield(done), max(0.001, deadline - loop.time()))
        except TimeoutError:
            if self.ring.withdraw(chunk):
                done.set_exception(Overloaded("accept_timeout", "not stored", 2))
                done.exception()  # retrieved: nobody else awaits it
                raise Overloaded("accept_timeout", "obsd could not make these events durable in time "
                                 "(server.accept_deadline_s); nothing was stored, retry", 2) from None
            raise Overloaded("accept_timeout", "obsd could not confirm in time (server.accept_deadline_s) "
                             "that these events are durable; they may still be stored, so resend them with "
                             "the same batch_id", 5) from None
        self.metrics.commit_wait_seconds.observe(time.perf_counter() - started)
        return True

    async def _seen(self, batch: int, deadline: float) -> bool:
        """Whether this batch was accepted before, waiting for a first attempt still in flight."""
        if self.batch_ids.seen(batch):
            return True
        first = self._inflight.get(batch)
        if first is None:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(first), max(0.001, deadline - asyncio.get_running_loop().time()))
        except TimeoutError:
            raise Overloaded("accept_timeout", "an earlier attempt of this batch is still being stored; "
                             "retry", 2) from None
        except Exception:
            return False  # the first attempt failed: this one tries for real
        return True

    async def _pace(self, deadline: float) -> None:
        """Hold a request while the store is behind by more than _BACKLOG_BATCHES full batches.

        The loop and the store's threads share the CPU: when the loop acknowledges faster than
        the writer lands, the backlog only grows (and the engine, niced below the loop, gets even
        less CPU). Waiting here costs no CPU (the writer's progress wakes it), so the store catches
        up and acknowledgements follow what lands. Not while the store is down: then the spool
        absorbs, up to its budget. Past the accept deadline the request gets a 503.
        """
        limit = _BACKLOG_BATCHES * self.settings.pipeline.batch_max_events
        loop = asyncio.get_running_loop()
        while (self.spool.backlog_events + self.ring.events > limit and self.writer.store_ok
               and not self._closing):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Overloaded("accept_timeout", "obsd's store is behind and this request waited past "
                                 "server.accept_deadline_s; retry shortly", 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)

    def _progress_from_thread(self) -> None:
        """The writer landed a batch (or the store failed): wake the requests that wait in _pace."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._wake_pacers)

    def _wake_pacers(self) -> None:
        self._progress.set()
        self._progress.clear()

    def reject(self, rows: list[DeadLetter]) -> None:
        """Keep ingest-time rejects for events_rejected (durably, bounded in bytes)."""
        self.committer.reject(rows)

    # -- health ----------------------------------------------------------------------------------

    def accounts(self) -> Accounts:
        """A consistent reading of accepted, replayed, inserted, dead-lettered and pending events."""
        return self.ledger.read()

    def wedged(self) -> str | None:
        """Why the pipeline cannot recover by itself (the watchdog stops), or None."""
        if self._closing:
            return None
        if not self.writer.is_alive():
            return "the writer thread has ended"
        if self._task is None or self._task.done():
            return "the committer task has ended"
        stall_s = self.settings.pipeline.stall_timeout_s
        for health in (self.writer_health, self.committer_health):
            _, wedged, text = health.state(stall_s)
            if wedged:
                return f"{health.name}: {text}"
        return None

    def ready(self) -> tuple[bool, dict[str, object]]:
        """Whether obsd can take traffic, with the reasons."""
        stall_s = self.settings.pipeline.stall_timeout_s
        writer_stalled, _, writer_state = self.writer_health.state(stall_s)
        committer_stalled, _, committer_state = self.committer_health.state(stall_s)
        # A refused write is shown for a few seconds only: then traffic may try the disk again.
        spool_error = (self.spool.last_error
                       if time.monotonic() - self.spool.last_error_at < _SPOOL_ERROR_SHOWN_S else "")
        checks: dict[str, object] = {
            "store": "ok" if self.writer.store_ok else f"unavailable: {self.writer.last_error}",
            "writer": writer_state,
            "committer": committer_state,
            "spool": f"cannot write: {spool_error}" if spool_error else "ok",
            "buffer_fill": round(self.ring.fill, 3),
            "spool_bytes": self.spool.size_bytes,
            "pending_events": self.spool.backlog_events,
        }
        ok = (self.writer.store_ok and not writer_stalled and not committer_stalled and not spool_error
              and self.ring.fill < 0.9 and not self.spool.over_budget() and not self._closing)
        return ok, checks
