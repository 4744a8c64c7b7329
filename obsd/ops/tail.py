"""Live fan-out of ingested rows to `obsd tail` viewers, bounded per viewer so none can slow ingestion.

Server side: ingestion calls `TailHub.publish(rows)` with the NDJSON rows it just made durable.
With no viewer that is one truth test; with viewers it appends the same bytes object to each
viewer's bounded queue (no copy, no decode). A viewer whose queue is full loses the chunk and the
events in it are counted as missed and reported to that viewer when it catches up. Filtering and
writing happen in the viewer's own request task.

Wire format of `GET /v1/admin/tail`: NDJSON. Event lines are rows of the events table exactly as
stored; control lines are objects with an `_obsd` key: `hello`, `heartbeat` and `missed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from obsd.httperrors import HttpError
from obsd.ops.metrics import Metrics
from obsd.ops.tailfilter import FilterError, TailFilter

CONTROL_PREFIX = b'{"_obsd":'
DEFAULT_QUEUE_BYTES = 8 * 1024 * 1024
DEFAULT_QUEUE_CHUNKS = 4096
HEARTBEAT_S = 2.0
_encode = msgspec.json.encode


class Subscription:
    """One viewer: a bounded queue of row chunks and what it has missed."""

    _ids = itertools.count(1)

    def __init__(self, max_bytes: int, max_chunks: int, peer: str = "") -> None:
        self.id = next(self._ids)
        self.peer = peer
        self.max_bytes = max_bytes
        self.max_chunks = max_chunks
        self.chunks: deque[bytes] = deque()
        self.queued_bytes = 0
        self.missed = 0
        self.missed_unreported = 0
        self.sent = 0
        self.closed = False
        self.started = time.time()
        self.task: asyncio.Task[Any] | None = None
        self._wake = asyncio.Event()

    def offer(self, rows: bytes) -> bool:
        """Queue a chunk, or count its events as missed when the queue is full; never blocks."""
        if self.queued_bytes + len(rows) > self.max_bytes or len(self.chunks) >= self.max_chunks:
            n = rows.count(b"\n")
            self.missed += n
            self.missed_unreported += n
            return False
        self.chunks.append(rows)
        self.queued_bytes += len(rows)
        self._wake.set()
        return True

    async def next(self, timeout: float) -> list[bytes]:
        """Everything queued, waiting up to `timeout` for something (empty on timeout or close)."""
        if not self.chunks and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        out = list(self.chunks)
        self.chunks.clear()
        self.queued_bytes = 0
        return out

    def close(self) -> None:
        """Wake the viewer's task so it can end its response."""
        self.closed = True
        self._wake.set()

    def stats(self) -> dict[str, Any]:
        """What `obsd status` shows about this viewer."""
        return {"id": self.id, "peer": self.peer, "sent": self.sent, "missed": self.missed,
                "queued_bytes": self.queued_bytes, "since": round(self.started, 3)}


class TailHub:
    """Fans rows out to the subscribed viewers; `publish` costs one check when nobody watches."""

    def __init__(self, metrics: Metrics | None = None, *, queue_bytes: int = DEFAULT_QUEUE_BYTES,
                 queue_chunks: int = DEFAULT_QUEUE_CHUNKS) -> None:
        self._subs: dict[int, Subscription] = {}
        self.metrics = metrics
        self.queue_bytes = queue_bytes
        self.queue_chunks = queue_chunks
        self.closed = False

    def publish(self, rows: bytes) -> None:
        """Offer NDJSON rows to every viewer; called on the event loop right after a durable submit."""
        if not self._subs:
            return
        for sub in self._subs.values():
            if not sub.offer(rows) and self.metrics is not None:
                self.metrics.tail_missed.inc(rows.count(b"\n"))

    def subscribe(self, peer: str = "") -> Subscription:
        """A new viewer with its own bounded queue."""
        sub = Subscription(self.queue_bytes, self.queue_chunks, peer)
        if self.closed:
            sub.close()
        self._subs[sub.id] = sub
        self._gauge()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a viewer."""
        self._subs.pop(sub.id, None)
        self._gauge()

    def close(self) -> None:
        """End every viewer's stream (at shutdown); viewers reconnect to the next daemon."""
        self.closed = True
        for sub in self._subs.values():
            sub.close()
            if sub.task is not None:  # a stuck viewer must not hold up shutdown in a blocked write
                sub.task.cancel()

    def stats(self) -> list[dict[str, Any]]:
        """Per-viewer counters."""
        return [s.stats() for s in self._subs.values()]

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.tail_viewers.set(len(self._subs))


class TailEndpoint:
    """GET /v1/admin/tail: an admin-token-protected NDJSON stream of live rows."""

    def __init__(self, hub: TailHub, check: Callable[[web.Request], None], *,
                 heartbeat_s: float = HEARTBEAT_S, write_timeout_s: float = 60.0) -> None:
        self.hub = hub
        self.check = check
        self.heartbeat_s = heartbeat_s
        self.write_timeout_s = write_timeout_s

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Stream rows matching the query's filter until the viewer leaves or the daemon stops."""
        self.check(request)
        try:
            flt = TailFilter.from_query(request.query, lambda k: request.query.getall(k, []))
        except FilterError as exc:
            raise HttpError(400, "invalid_filter", str(exc)) from exc
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        sub = self.hub.subscribe(request.remote or "")
        sub.task = asyncio.current_task()
        metrics = self.hub.metrics
        try:
            await self._write(resp, {"_obsd": "hello", "viewer": sub.id})
            while not sub.closed:
                chunks = await sub.next(self.heartbeat_s)
                if sub.missed_unreported:
                    await self._write(resp, {"_obsd": "missed", "missed": sub.missed_unreported,
                                             "total": sub.missed})
                    sub.missed_unreported = 0
                if not chunks:
                    if not sub.closed:
                        await self._write(resp, {"_obsd": "heartbeat", "t": round(time.time(), 3)})
                    continue
                out, n = flt.select(b"".join(chunks))
                if n:
                    await asyncio.wait_for(resp.write(out), self.write_timeout_s)
                    sub.sent += n
                    if metrics is not None:
                        metrics.tail_sent.inc(n)
        except (ConnectionError, TimeoutError):
            return resp  # the viewer left, or stayed stuck past write_timeout_s
        finally:
            self.hub.unsubscribe(sub)
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp

    async def _write(self, resp: web.StreamResponse, msg: dict[str, Any]) -> None:
        await asyncio.wait_for(resp.write(_encode(msg) + b"\n"), self.write_timeout_s)
