"""Which pageview starts a visit, for senders that do not say (obsd-js before 0.2, imports of old data).

The SDK marks the first pageview of a session `entry: true` and sends when the session began
(`session_start`); the visit rollup takes its entry page, source and campaign from that row. For
envelopes without `session_start` the daemon decides: the first pageview of a session it has not
seen for 30 minutes (of event time) is the entry. Memory is bounded: the least recently seen
sessions are forgotten first (~100 bytes each).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from obsd.ingest.visits import VISIT_TIMEOUT_S

MAX_SESSIONS: Final = 100_000


class SessionEntries:
    """Project and session id → (when the visit began, last event time, entry pageview seen)."""

    def __init__(self, timeout_s: float = VISIT_TIMEOUT_S, max_sessions: int = MAX_SESSIONS) -> None:
        self.timeout_s = timeout_s
        self.max_sessions = max_sessions
        self._seen: OrderedDict[tuple[str, str], list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def visit(self, project_id: str, session_id: str, first_ts: float, last_ts: float,
              has_pageview: bool) -> tuple[float, bool]:
        """For an envelope of a session spanning [first_ts, last_ts] (seconds): when its visit began, and
        whether its first pageview is the visit's entry (the visit has had none yet)."""
        key = (project_id, session_id)
        state = self._seen.get(key)
        if state is None or first_ts - state[1] > self.timeout_s or first_ts < state[0] - self.timeout_s:
            state = [first_ts, last_ts, 0.0]
            if key not in self._seen and len(self._seen) >= self.max_sessions:
                self._seen.popitem(last=False)
            self._seen[key] = state
        else:
            self._seen.move_to_end(key)
            state[1] = max(state[1], last_ts)
        entry = has_pageview and not state[2]
        if has_pageview:
            state[2] = 1.0
        return state[0], entry
