"""Server-side visits for protocols without a session id: 30 minutes of quiet end one, memory stays bounded."""

from __future__ import annotations

from obsd.ingest.visits import Visits


def test_a_visit_lasts_while_events_come_within_the_timeout() -> None:
    """Events 29 minutes apart stay in one session; a 31-minute gap starts another."""
    v = Visits()
    first = v.session_id("p", 7, 0.0)
    assert v.session_id("p", 7, 29 * 60) == first
    assert v.session_id("p", 7, 58 * 60) == first  # the timeout runs from the last event, not the first
    assert v.session_id("p", 7, 89 * 60 + 1) != first


def test_visitors_and_projects_do_not_share_sessions() -> None:
    """Another visitor, or the same visitor hash in another project, is another session."""
    v = Visits()
    assert len({v.session_id("p", 1, 0.0), v.session_id("p", 2, 0.0), v.session_id("q", 1, 0.0)}) == 3


def test_memory_is_bounded_by_forgetting_the_least_recently_seen() -> None:
    """Past max_visits the oldest visitor is forgotten; the ones seen recently keep their session."""
    v = Visits(max_visits=100)
    kept = v.session_id("p", 0, 0.0)
    for i in range(1, 150):
        v.session_id("p", i, 1.0)
        v.session_id("p", 0, 1.0)  # visitor 0 keeps coming back
    assert len(v) == 100
    assert v.session_id("p", 0, 2.0) == kept
