"""Stage health: whether the committer and the writer make progress, and why not.

Each stage beats while it runs, marks progress when it gets work done, and records its failures. A
stage with work waiting and no progress for `stall_s` is stalled: /ready names it with its last
error. A stalled stage whose failures are its own (an exception, or a loop that stopped beating) is
wedged: the systemd watchdog stops being fed so systemd restarts obsd. A store outage stalls the
writer without wedging it: restarting obsd cannot bring ClickHouse back, and the spool keeps
accepting while the writer retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from obsd.store.client import short_error


class StageHealth:
    """Progress and failures of one pipeline stage."""

    def __init__(self, name: str, has_work: Callable[[], bool], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.has_work = has_work
        self._clock = clock
        now = clock()
        self.last_progress = now
        self.last_beat = now
        self.last_error = ""
        self.internal = False  # whether the last failure was the stage's own, not the store's

    def beat(self) -> None:
        """The stage's loop is running."""
        self.last_beat = self._clock()

    def progress(self) -> None:
        """The stage got work done: its failures are over."""
        self.last_progress = self.last_beat = self._clock()
        self.last_error = ""
        self.internal = False

    def failed(self, exc: BaseException, *, internal: bool) -> None:
        """The stage failed (`internal`: by its own exception, not because the store is unavailable)."""
        self.last_error = short_error(exc, 300) or type(exc).__name__
        self.internal = internal

    def state(self, stall_s: float) -> tuple[bool, bool, str]:
        """(stalled, wedged, a sentence for /ready and `obsd status`). An idle stage is never stalled."""
        now = self._clock()
        if not self.has_work():
            self.last_progress = self.last_beat = now
            return False, False, f"retrying: {self.last_error}" if self.last_error else "ok"
        stalled = now - self.last_progress
        silent = now - self.last_beat
        if silent > stall_s:
            return True, True, f"stopped: no sign of life for {silent:.0f} s"
        if stalled > stall_s:
            why = self.last_error or "no error reported"
            return True, self.internal, f"stalled for {stalled:.0f} s: {why}"
        if self.last_error:
            return False, False, f"retrying: {self.last_error}"
        return False, False, "ok"
