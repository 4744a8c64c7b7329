"""Session ids for protocols that send none (Plausible): a visit ends after 30 minutes without events.

Like Plausible's session cache, a visitor's events within 30 minutes of each other share one
session. The id is random, so it links nothing beyond the visit; the key is the daily-rotating
visitor hash, so a visit also ends at midnight UTC. Memory is bounded: the least recently seen
visitors are forgotten first (their next event starts a new visit).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Final

VISIT_TIMEOUT_S: Final = 30 * 60
MAX_VISITS: Final = 65_536


class Visits:
    """Visitor → current session id, for at most `max_visits` visitors, least recently seen evicted."""

    def __init__(self, timeout_s: float = VISIT_TIMEOUT_S, max_visits: int = MAX_VISITS) -> None:
        self.timeout_s = timeout_s
        self.max_visits = max_visits
        self._visits: OrderedDict[tuple[str, int], tuple[str, float, float, bool]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._visits)

    def session_id(self, project_id: str, visitor_id: int, now: float) -> str:
        """The visitor's session id: the current one if seen within the timeout, else a new one."""
        return self.visit(project_id, visitor_id, now, pageview=False)[0]

    def visit(self, project_id: str, visitor_id: int, now: float, *, pageview: bool) -> tuple[str, float, bool]:
        """The visitor's visit at `now`: its session id, when it began, and whether this event is its entry (the
        visit's first pageview)."""
        key = (project_id, visitor_id)
        found = self._visits.get(key)
        if found is not None and now - found[1] < self.timeout_s:
            sid, _, start, entered = found
            self._visits.move_to_end(key)
        else:
            sid, start, entered = secrets.token_hex(8), now, False
            if found is None and len(self._visits) >= self.max_visits:
                self._visits.popitem(last=False)
        self._visits[key] = (sid, now, start, entered or pageview)
        return sid, start, pageview and not entered
