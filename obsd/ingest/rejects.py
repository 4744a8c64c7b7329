"""Dead letters built from client input: scrubbed like accepted events, strings capped, never an IP.

A refused event is still personal data: the same URL reduction and PII scrubbing as accepted events
apply to what events_rejected keeps of it, every string is cut to MAX_DEAD_STRING characters after
scrubbing, and the request context an import line carries (`client`: IP, user agent, country) is
dropped whole. A payload that is not JSON cannot be scrubbed field by field, so none of it is kept.
"""

from __future__ import annotations

from typing import Any

import jiter
import msgspec

from obsd.privacy.scrub import UrlScrubber, scrub_text
from obsd.store.rows import DeadLetter, dead_letter
from obsd.vocabulary import is_session_id

MAX_DEAD_STRING = 1024
# Fields holding URLs: reduced like page URLs (allowlisted query parameters only, no fragment).
URL_FIELDS = frozenset({"url", "referrer", "href", "source"})
# The visitor's request context in an import line: exactly what obsd never stores raw.
DROPPED_FIELDS = frozenset({"client"})
_encode = msgspec.json.encode


def _cap(s: str) -> str:
    return s if len(s) <= MAX_DEAD_STRING else s[:MAX_DEAD_STRING] + "…"


def _clean(value: Any, urls: UrlScrubber, key: str = "", top: bool = False) -> Any:
    """A copy of a decoded JSON value with every string scrubbed and capped (nesting is bounded by
    the parser: at most 200 levels)."""
    if isinstance(value, str):
        return _cap(urls.scrub(value) if key in URL_FIELDS else scrub_text(value))
    if isinstance(value, dict):
        return {_cap(scrub_text(k)): _clean(v, urls, k) for k, v in value.items()
                if not (top and k in DROPPED_FIELDS)}
    if isinstance(value, list):
        return [_clean(v, urls, key) for v in value]
    return value


def scrubbed_payload(payload: bytes, urls: UrlScrubber) -> tuple[str, Any]:
    """What a dead letter may keep of a refused payload, and the decoded value (None if not JSON)."""
    if not payload:
        return "", None
    try:
        value = jiter.from_json(payload, allow_inf_nan=False, cache_mode="keys")
    except ValueError:
        return f"(not kept: {len(payload)} bytes that are not valid JSON cannot be scrubbed)", None
    return _encode(_clean(value, urls, top=True)).decode(), value


def rejected_letter(now: float, project_id: str, stage: str, reason: str, payload: bytes, urls: UrlScrubber,
                    session_id: str | None = None) -> DeadLetter:
    """The dead letter of refused client input, scrubbed; the session comes from the envelope, or from
    the payload itself when it is a whole envelope (an import line)."""
    text, value = scrubbed_payload(payload, urls)
    if session_id is None and isinstance(value, dict):
        sid = value.get("session_id")
        session_id = sid if isinstance(sid, str) else None
    sid = session_id if session_id and is_session_id(session_id) else ""
    return dead_letter(now, project_id, stage, scrub_text(reason), text, sid)
