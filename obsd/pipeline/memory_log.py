"""The `durability = "memory"` stand-in for the spool: the same interface, batches held in RAM."""

from __future__ import annotations

import threading
import time
from collections import deque

from obsd.pipeline.ledger import Ledger
from obsd.pipeline.spool import Batch


class MemoryLog:
    """The `durability = "memory"` stand-in for the spool: batches held in RAM, lost on a crash."""

    def __init__(self, max_bytes: int, *, ledger: Ledger | None = None) -> None:
        self.max_bytes = max_bytes
        self.ledger = ledger
        self._cond = threading.Condition(ledger.lock if ledger else threading.Lock())
        self._batches: deque[Batch] = deque()
        self._parts: list[bytes] = []
        self._open_events = 0
        self._open_at: float | None = None
        self._bytes = 0
        self._seq = 0
        self.pending_events = 0
        self.last_error = ""
        self.last_error_at = 0.0

    @property
    def size_bytes(self) -> int:
        """Bytes held in memory."""
        return self._bytes

    def over_budget(self) -> bool:
        """True when the in-memory backlog has reached its bound."""
        return self._bytes >= self.max_bytes

    @property
    def pending_batches(self) -> int:
        """Closed batches not yet in the store, including the one the writer is inserting."""
        return len(self._batches)

    @property
    def backlog_events(self) -> int:
        """Events written but not yet in the store, the open batch included."""
        return self.pending_events + self._open_events

    def append(self, payload: bytes, events: int, end: bool, plain: bytes | None = None,
               ids: tuple[int, ...] = ()) -> None:
        """Add rows (`payload` is already uncompressed; `plain` and `ids` are unused); `end` closes the batch.

        The rows were acknowledged when the ring took them; here they move from the ledger's unsettled
        count into the backlog, under the same lock.
        """
        with self._cond:
            if payload:
                self._parts.append(payload)
                self._open_events += events
                self._open_at = self._open_at or time.time()
                self._bytes += len(payload)
                if self.ledger is not None:
                    self.ledger.unsettled -= events
            if end and self._parts:
                self._seq += 1
                data = b"".join(self._parts)
                token = f"obsd-mem-{time.time_ns()}-{self._seq}"
                self._batches.append(Batch(0, self._seq, self._seq, self._open_events, data, False, token,
                                           self._open_at))
                self.pending_events += self._open_events
                self._parts, self._open_events, self._open_at = [], 0, None
                self._cond.notify_all()

    def next_batch(self, timeout: float) -> Batch | None:
        """The oldest batch not yet in the store."""
        with self._cond:
            if not self._batches and timeout > 0:
                self._cond.wait(timeout)
            return self._batches[0] if self._batches else None

    def commit(self, batch: Batch, inserted: int | None = None, dead: int = 0) -> None:
        """Forget a batch that is in the store."""
        with self._cond:
            head = self._batches.popleft()
            self._bytes -= len(head.payload)
            self.pending_events -= head.events
            if self.ledger is not None:
                self.ledger.store(head.events - dead if inserted is None else inserted, dead)

    def close(self) -> None:
        """Nothing to close."""
