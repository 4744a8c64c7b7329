"""Which pageview starts a visit and when the visit began: from the SDK, from the daemon for older SDKs, and
for Plausible's server-side visits."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from obsd.ingest.enrich import MAX_VISIT_S, Client, RowEncoder
from obsd.ingest.entries import SessionEntries
from obsd.ingest.visits import Visits
from obsd.ingest.wire import WireDecoder
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import Settings

NOW = time.time()
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def _rows(encoder: RowEncoder, session_id: str, events: list[tuple[str, float]], **env: Any) -> list[dict[str, Any]]:
    body = {"session_id": session_id, "context": {"url": "https://shop.example/"}, **env,
            "events": [{"id": str(uuid.uuid4()), "type": t, "ts": int(ts * 1000), **(
                {"name": "LCP", "value": 1.0} if t == "web_vital" else {})} for t, ts in events]}
    out = encoder.encode("demo", WireDecoder(encoder.settings.limits).decode(json.dumps(body).encode()),
                         Client("81.2.69.1", UA), NOW)
    assert not out.rejected
    return [json.loads(line) for line in out.data.splitlines()]


def test_older_sdks_get_the_first_pageview_of_an_unseen_session_as_entry() -> None:
    """Without session_start: the first pageview of a session not seen for 30 minutes is the entry, once;
    the visit's start is its first event, kept for the later batches of the visit."""
    enc = RowEncoder(Settings(), VisitorHasher(None))
    t0 = NOW - 3600
    first = _rows(enc, "old1", [("web_vital", t0), ("pageview", t0 + 1), ("pageview", t0 + 2)])
    assert [r.get("is_entry", False) for r in first] == [False, True, False]
    assert {r["session_start"] for r in first} == {int(t0)}
    later = _rows(enc, "old1", [("pageview", t0 + 600)])
    assert not later[0].get("is_entry") and later[0]["session_start"] == int(t0)
    # 31 minutes of silence: the same id starts a new visit.
    again = _rows(enc, "old1", [("pageview", t0 + 600 + 31 * 60)])
    assert again[0]["is_entry"] and again[0]["session_start"] == int(t0 + 600 + 31 * 60)


def test_sdk_flags_are_trusted_and_its_start_is_clamped() -> None:
    """With session_start the SDK's entry flags hold as sent; a start after the first event becomes the first
    event, one more than a day before it becomes a day before."""
    enc = RowEncoder(Settings(), VisitorHasher(None))
    t0 = NOW - 600
    body = {"session_id": "new1", "session_start": int((t0 - 5) * 1000), "context": {"url": "https://shop.example/"},
            "events": [{"id": str(uuid.uuid4()), "type": "pageview", "ts": int(t0 * 1000)},
                       {"id": str(uuid.uuid4()), "type": "pageview", "ts": int(t0 * 1000) + 5, "entry": True}]}
    out = enc.encode("demo", WireDecoder(enc.settings.limits).decode(json.dumps(body).encode()), Client("1.2.3.4", UA),
                     NOW)
    rows = [json.loads(x) for x in out.data.splitlines()]
    assert [r.get("is_entry", False) for r in rows] == [False, True]
    assert rows[0]["session_start"] == int(t0 - 5)
    late = _rows(enc, "new2", [("pageview", t0)], session_start=int((t0 + 60) * 1000))
    assert late[0]["session_start"] == int(t0)
    early = _rows(enc, "new3", [("pageview", t0)], session_start=int((t0 - 3 * MAX_VISIT_S) * 1000))
    assert early[0]["session_start"] == int(t0 - MAX_VISIT_S)


def test_session_memory_is_bounded() -> None:
    """The oldest sessions are forgotten first; a forgotten one that comes back starts a visit again."""
    entries = SessionEntries(max_sessions=3)
    for i in range(5):
        entries.visit("demo", f"s{i}", 100.0, 100.0, True)
    assert len(entries) == 3
    assert entries.visit("demo", "s4", 200.0, 200.0, True) == (100.0, False)
    assert entries.visit("demo", "s0", 200.0, 200.0, True) == (200.0, True)


def test_plausible_visits_know_their_start_and_entry() -> None:
    """Plausible's server-side visit: the first pageview enters it, a custom event first does not, 30 minutes
    of silence end it."""
    v = Visits()
    sid, start, entry = v.visit("demo", 7, 1000.0, pageview=False)
    assert (start, entry) == (1000.0, False)
    assert v.visit("demo", 7, 1010.0, pageview=True) == (sid, 1000.0, True)
    assert v.visit("demo", 7, 1020.0, pageview=True) == (sid, 1000.0, False)
    new, start, entry = v.visit("demo", 7, 1020.0 + 31 * 60, pageview=True)
    assert new != sid and entry and start == 1020.0 + 31 * 60
