"""Exact event accounting: accepted + replayed = inserted + dead-lettered + pending, at every moment.

Every change to these numbers happens under one lock, together with the change of where the events
are (the spool or the memory log moves its backlog under the same lock: its Condition is built on
it). So a snapshot taken under the lock always balances, while traffic flows and across restarts
(events recovered from the spool count as replayed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from obsd.ops.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Accounts:
    """One consistent reading of the ledger."""

    accepted: int
    replayed: int
    inserted: int
    dead_lettered: int
    pending: int

    @property
    def balanced(self) -> bool:
        """Whether every event taken in is accounted for."""
        return self.accepted + self.replayed == self.inserted + self.dead_lettered + self.pending

    def to_json(self) -> dict[str, int | bool]:
        """The reading as the status document shows it."""
        return {"accepted": self.accepted, "replayed": self.replayed, "inserted": self.inserted,
                "dead_lettered": self.dead_lettered, "pending": self.pending, "balanced": self.balanced}


class Ledger:
    """The counters of events taken in and put away, kept under one lock with the backlog they describe."""

    def __init__(self, metrics: Metrics) -> None:
        self.lock = threading.Lock()
        self.metrics = metrics
        self.accepted = 0
        self.replayed = 0
        self.inserted = 0
        self.dead_lettered = 0
        # Memory mode only: accepted events still in the ring or on their way to the memory log.
        self.unsettled = 0
        self._pending: Callable[[], int] = lambda: 0

    def bind(self, backlog: Callable[[], int]) -> None:
        """Where the backlog is read from (the spool's or memory log's events not yet stored)."""
        self._pending = backlog

    # The methods below are called with `lock` held.

    def accept(self, events: int, nbytes: int) -> None:
        """Events are acknowledged: durable in the spool, or (memory mode) taken into the ring."""
        self.accepted += events
        self.metrics.accepted.inc(events)
        self.metrics.accepted_bytes.inc(nbytes)

    def replay(self, events: int) -> None:
        """Events recovered from the spool at start, acknowledged by a previous run."""
        self.replayed += events
        self.metrics.replayed.inc(events)

    def store(self, inserted: int, dead: int) -> None:
        """A batch is in the store: `inserted` rows in events, `dead` refused rows in events_rejected."""
        self.inserted += inserted
        self.dead_lettered += dead
        self.metrics.inserted.inc(inserted)
        self.metrics.dead_lettered.inc(dead)

    def read(self) -> Accounts:
        """A consistent reading (takes the lock)."""
        with self.lock:
            return Accounts(self.accepted, self.replayed, self.inserted, self.dead_lettered,
                            self._pending() + self.unsettled)
