"""Whether the store's schema is current, as /ready reports it: asked on a connection of its own, at most
every few seconds (/ready is polled), and the first connection the daemon opens, so it starts the
embedded engine with its memory cap (obsd.store.limits.engine_options)."""

from __future__ import annotations

import threading
import time

from obsd.errors import ObsdError
from obsd.settings import Settings
from obsd.store.client import Store
from obsd.store.limits import engine_options
from obsd.store.migrations import Migrator, pending_labels
from obsd.store.retention import apply_retention, retention_plan


class SchemaWatch:
    """Pending migration labels of the store, cached for `ttl_s` seconds."""

    def __init__(self, settings: Settings, ttl_s: float = 5.0) -> None:
        self.settings = settings
        self.ttl_s = ttl_s
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._pending: list[str] = []
        self._error = ""

    def open(self) -> None:
        """Open the watch's connection (call before any other connection of the daemon)."""
        s = self.settings
        self._store = Store(s.dsn, s.clickhouse.database, engine=engine_options(s))

    def fresh(self) -> bool:
        """True while the last answer is younger than ttl_s."""
        return time.monotonic() - self._checked_at < self.ttl_s

    def state(self) -> tuple[list[str], str]:
        """The last answer: pending labels, and an error text when the store could not be asked."""
        return list(self._pending), self._error

    def check(self) -> tuple[list[str], str]:
        """Ask the store now unless the last answer is fresh (blocking: run it off the event loop)."""
        with self._lock:
            if self.fresh():
                return self.state()
            try:
                self._pending = pending_labels(self._connection(), Migrator.shipped())
                self._error = ""
            except ObsdError as exc:
                self._error = str(exc)[:300]
            self._checked_at = time.monotonic()
            return self.state()

    def apply_retention(self, settings: Settings) -> list[str]:
        """Make the TTLs match new retention settings (reload); returns the tables changed."""
        with self._lock:
            return apply_retention(self._connection(), retention_plan(settings.clickhouse))

    def _connection(self) -> Store:
        """The watch's connection, opened on first use (callers hold the lock)."""
        if self._store is None:
            self.open()
        assert self._store is not None
        return self._store

    def close(self) -> None:
        """Close the connection (last, so the engine outlives every other connection)."""
        if self._store is not None:
            self._store.close()
            self._store = None
