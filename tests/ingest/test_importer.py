"""The admin import's chunking: one calendar month per chunk, deterministic, at envelope boundaries."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from obsd.ingest.enrich import RowEncoder
from obsd.ingest.importer import encode_lines, historic
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import load_settings


def _line(when: datetime, session: str) -> bytes:
    return json.dumps({"session_id": session, "context": {"url": "https://shop.example/"},
                       "client": {"ip": "81.2.69.1", "user_agent": "Mozilla/5.0"},
                       "events": [{"id": str(uuid.uuid4()), "type": "pageview",
                                   "ts": int(when.timestamp() * 1000)}]}).encode()


def test_chunks_follow_calendar_months_the_store_partitions_by() -> None:
    """January 1 and 31 share a chunk, February 1 starts another; the same body always makes the same chunks
    (31-day buckets counted from 1970 used to split or join months where they did not meet)."""
    settings, visitors = historic(load_settings(None, environ={})), VisitorHasher(None)
    encoder = RowEncoder(settings, visitors)
    days = [datetime(2026, 1, 1, 0, 5, tzinfo=UTC), datetime(2026, 1, 31, 23, 55, tzinfo=UTC),
            datetime(2026, 2, 1, 0, 5, tzinfo=UTC), datetime(2026, 3, 31, 12, tzinfo=UTC)]
    body = b"\n".join(_line(d, f"s{i}") for i, d in enumerate(days))
    now = datetime(2026, 4, 1, tzinfo=UTC).timestamp()
    result = encode_lines(encoder, "demo", body, now)
    assert result.accepted == 4 and not result.rejected
    def month(row: bytes) -> str:
        return datetime.fromtimestamp(json.loads(row)["ts"], UTC).strftime("%Y-%m")

    months = [sorted({month(row) for row in data.splitlines()}) for data, _ in result.chunks]
    assert months == [["2026-01"], ["2026-02"], ["2026-03"]]
    assert [n for _, n in result.chunks] == [2, 1, 1]
    # A fresh encoder (as after a restart: no sessions seen) makes the same chunks of the same body.
    assert encode_lines(RowEncoder(settings, visitors), "demo", body, now).chunks == result.chunks
