"""The ring buffer: encoded row chunks waiting for the spool, bounded in events and in bytes."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Chunk:
    """The encoded rows of one request (NDJSON), with the future its request awaits. Two requests with the same
    rows are two chunks: a chunk equals only itself (withdraw() must take back the caller's own)."""

    data: bytes
    events: int
    done: asyncio.Future[None] | None = field(default=None, compare=False)
    batch: int | None = None  # fingerprint of the request's (project, batch_id), when it sent one


class RingBuffer:
    """A FIFO of chunks that refuses a chunk rather than exceed its event or byte bound."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._items: deque[Chunk] = deque()
        self.events = 0
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def fits(self, events: int, nbytes: int) -> bool:
        """True when a chunk of this size can be offered now."""
        return self.events + events <= self.max_events and self.bytes + nbytes <= self.max_bytes

    def offer(self, chunk: Chunk) -> bool:
        """Append a chunk; False (and nothing changes) when it would exceed a bound."""
        if not self.fits(chunk.events, len(chunk.data)):
            return False
        self._items.append(chunk)
        self.events += chunk.events
        self.bytes += len(chunk.data)
        return True

    def could_ever_fit(self, events: int, nbytes: int) -> bool:
        """False for a chunk larger than the whole buffer: waiting cannot help it."""
        return events <= self.max_events and nbytes <= self.max_bytes

    def withdraw(self, chunk: Chunk) -> bool:
        """Take back a chunk the committer has not taken yet (its request gave up); False if it is gone."""
        try:
            self._items.remove(chunk)
        except ValueError:
            return False
        self.events -= chunk.events
        self.bytes -= len(chunk.data)
        return True

    def take(self, max_events: int, max_bytes: int) -> list[Chunk]:
        """Remove the oldest chunks up to the limits; always at least one chunk when not empty."""
        out: list[Chunk] = []
        events = nbytes = 0
        items = self._items
        while items:
            head = items[0]
            size = len(head.data)
            if out and (events + head.events > max_events or nbytes + size > max_bytes):
                break
            items.popleft()
            out.append(head)
            events += head.events
            nbytes += size
        self.events -= events
        self.bytes -= nbytes
        return out

    @property
    def fill(self) -> float:
        """How full the buffer is, 0..1, by whichever bound is closer."""
        return max(self.events / self.max_events, self.bytes / self.max_bytes)
