"""Loading generated traffic: shards made by worker processes, sent through the daemon's admin import
or encoded with the ingest RowEncoder and inserted straight into the store."""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

import msgspec

from obsd.cli.seed_traffic import Generator, Session
from obsd.errors import DaemonError
from obsd.ingest.enrich import Client, RowEncoder
from obsd.ingest.importer import ImportClient, historic
from obsd.ingest.wire import Context, Decoded, Event, Sdk
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import Settings
from obsd.store.client import Store


class _ImportLine(msgspec.Struct):
    events: list[Event]
    sdk: Sdk
    sent_at: float | None
    session_id: str | None
    session_start: float | None
    release: str | None
    context: Context
    client: ImportClient


_encode = msgspec.json.Encoder()


def import_lines(sessions: list[Session]) -> bytes:
    """An import body: one envelope per line with its client context."""
    return _encode.encode_lines([
        _ImportLine(s.envelope.events, s.envelope.sdk, s.envelope.sent_at, s.envelope.session_id,
                    s.envelope.session_start, s.envelope.release, s.envelope.context, s.client) for s in sessions])


Progress = Callable[[int], None]
SHARD_EVENTS = 25_000


@dataclass(frozen=True, slots=True)
class SeedPlan:
    """N events over D days from a seed, cut into shards that workers can make independently."""

    events: int
    days: float
    seed: int
    end: float
    project: str = "demo"

    @property
    def visitors(self) -> int:
        """Size of the visitor pool: 1.5 x the sessions of a day (a session is ~29 events), so about 1.4 visits
        per visitor-day, as on real sites."""
        return max(10, int(1.5 * self.events / 29 / max(self.days, 1)))

    def shards(self) -> list[tuple[int, int]]:
        """(stream, events) of each shard; together they make exactly `events` events."""
        return [(i, min(SHARD_EVENTS, self.events - start))
                for i, start in enumerate(range(0, self.events, SHARD_EVENTS))]

    def generator(self, stream: int, events: int) -> Generator:
        """The generator of one shard."""
        return Generator(events, self.days, self.seed, self.end, visitors=self.visitors, stream=stream)

    def sessions(self) -> Iterator[Session]:
        """Every session of the plan, shard after shard (what the workers make, in one process)."""
        for stream, n in self.shards():
            yield from self.generator(stream, n).sessions()


@dataclass(frozen=True, slots=True)
class Shard:
    """The output of one shard: an import body or encoded rows."""

    data: bytes
    events: int
    rejected: int
    sessions: int


_worker_encoder: RowEncoder | None = None


def _init_worker(settings: Settings | None, salts: dict[int, bytes] | None) -> None:
    """A worker's encoder: it hashes with salts borrowed from the seeding process, which alone owns them
    (a worker never creates, writes or destroys a salt file)."""
    global _worker_encoder
    if settings is not None:
        hasher = VisitorHasher.borrowed(salts) if salts else VisitorHasher(None)
        _worker_encoder = RowEncoder(historic(settings), hasher)


def _import_shard(plan: SeedPlan, stream: int, events: int) -> Shard:
    sessions = list(plan.generator(stream, events).sessions())
    return Shard(import_lines(sessions), events, 0, len(sessions))


def _row_shard(plan: SeedPlan, stream: int, events: int) -> Shard:
    encoder = _worker_encoder
    assert encoder is not None, "_init_worker sets the encoder"
    parts: list[bytes] = []
    accepted = rejected = sessions = 0
    now = time.time()
    for s in plan.generator(stream, events).sessions():
        c = s.client
        enc = encoder.encode(plan.project, Decoded(s.envelope, None, []),
                             Client(c.ip, c.user_agent, c.country, region=c.region, city=c.city), now)
        parts.append(enc.data)
        accepted += enc.accepted
        rejected += len(enc.rejected)
        sessions += 1
    return Shard(b"".join(parts), accepted, rejected, sessions)


def _shards(plan: SeedPlan, make: Callable[[SeedPlan, int, int], Shard], workers: int,
            settings: Settings | None = None, salts: dict[int, bytes] | None = None) -> Iterator[Shard]:
    """Shards in order, made by `workers` processes (a bounded window of them in flight)."""
    todo = plan.shards()
    if workers <= 1 or len(todo) <= 1:
        _init_worker(settings, salts)
        for stream, n in todo:
            yield make(plan, stream, n)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork: the caller may run threads (progress, HTTP)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(settings, salts)) as pool:
        window: deque[Future[Shard]] = deque()
        it = iter(todo)
        for stream, n in itertools.islice(it, workers * 2):
            window.append(pool.submit(make, plan, stream, n))
        while window:
            shard = window.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                window.append(pool.submit(make, plan, *nxt))
            yield shard


def default_workers(reserve: int = 0) -> int:
    """Worker processes for generation: one per CPU, minus those left for the daemon."""
    return max(1, (os.cpu_count() or 1) - reserve)


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What a seed run did."""

    events: int
    sessions: int
    rejected: int
    seconds: float
    mode: str


class _Pipelined:
    """Runs the slow consumer (HTTP or the store) in a thread while the caller keeps generating."""

    def __init__(self, consume: Callable[[bytes, int], int], depth: int = 2) -> None:
        self.consume = consume
        self.q: Queue[tuple[bytes, int] | None] = Queue(depth)
        self.error: BaseException | None = None
        self.rejected = 0
        self.thread = threading.Thread(target=self._run, name="obsd-seed", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.q.get()) is not None:
            if self.error is None:
                try:
                    self.rejected += self.consume(*item)
                except BaseException as exc:
                    self.error = exc

    def put(self, data: bytes, events: int) -> None:
        if self.error is not None:
            raise self.error
        self.q.put((data, events))

    def finish(self) -> int:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.rejected


def seed_via_daemon(base: str, token: str | None, plan: SeedPlan, *,
                    progress: Progress | None = None, workers: int | None = None,
                    timeout: float = 300.0) -> SeedReport:
    """Send the generated sessions through a running daemon's POST /v1/admin/import."""
    started = time.perf_counter()
    url = f"{base}/v1/admin/import?project={plan.project}"

    def send(body: bytes, events: int) -> int:
        delay = 0.2
        # The body's own hash is its batch id: a resend after a 503 half way stores only what is missing.
        batch_id = uuid.UUID(bytes=hashlib.blake2b(body, digest_size=16).digest(), version=4)
        while True:
            req = urllib.request.Request(f"{url}&batch_id={batch_id}", data=body, method="POST", headers={
                "Content-Type": "application/x-ndjson", **({"Authorization": f"Bearer {token}"} if token else {})})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    out = msgspec.json.decode(resp.read())
            except urllib.error.HTTPError as exc:
                if exc.code in (429, 503):  # backpressure: wait as told, then resend the same batch
                    time.sleep(min(10.0, float(exc.headers.get("Retry-After") or delay)))
                    delay = min(5.0, delay * 2)
                    continue
                detail = exc.read()[:500].decode("utf-8", "replace")
                raise DaemonError(f"the daemon at {base} refused the import ({exc.code}): {detail}") from exc
            except OSError as exc:
                raise DaemonError(f"lost the daemon at {base} while seeding: {exc}") from exc
            if progress:
                progress(events)
            return int(out.get("rejected", 0))

    sender = _Pipelined(send)
    sessions = 0
    try:
        for shard in _shards(plan, _import_shard, default_workers(reserve=1) if workers is None else workers):
            sessions += shard.sessions
            sender.put(shard.data, shard.events)
    finally:
        rejected = sender.finish()
    return SeedReport(plan.events - rejected, sessions, rejected, time.perf_counter() - started, "daemon")


def seed_store(settings: Settings, store: Store, plan: SeedPlan, *, progress: Progress | None = None,
               workers: int | None = None, batch_events: int = 100_000) -> SeedReport:
    """Encode the sessions with the ingest RowEncoder and insert them straight into an open store."""
    started = time.perf_counter()

    def insert(data: bytes, events: int) -> int:
        store.insert_ndjson("events", data)
        if progress:
            progress(events)
        return 0

    writer = _Pipelined(insert)
    sessions = rejected = 0
    # This process owns the salts (as the daemon does when seeding goes through it); the workers borrow
    # today's and yesterday's, so every row is hashed exactly as a live event of today would be.
    salts = VisitorHasher(Path(settings.data_dir) / "salts").snapshot()
    try:
        parts: list[bytes] = []
        pending = 0
        for shard in _shards(plan, _row_shard, default_workers() if workers is None else workers,
                             settings, salts):
            sessions += shard.sessions
            rejected += shard.rejected
            if shard.rejected and progress:
                progress(shard.rejected)
            parts.append(shard.data)
            pending += shard.events
            if pending >= batch_events:
                writer.put(b"".join(parts), pending)
                parts, pending = [], 0
        if parts:
            writer.put(b"".join(parts), pending)
    finally:
        writer.finish()
    return SeedReport(plan.events - rejected, sessions, rejected, time.perf_counter() - started, "store")
