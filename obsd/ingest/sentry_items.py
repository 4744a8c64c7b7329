"""Sentry's release-health items (`session`, `sessions`) as session rows, and client reports as counts.

A session update becomes one `session` row: name = status, value = errors, session_id = sid,
ts = when the session started (so every update of a session falls in the same hour), props
`{"init": true}` on its first update. A `sessions` item (pre-aggregated by server SDKs) becomes one
row per bucket and status with the count as value and no session id. The release_sessions_hourly
rollup (migrations/0007) counts both the way Sentry's Relay does. `did` (the user) and the
attribute `ip_address` are never read; the attribute `user_agent` (the browser's) is only parsed into
browser, OS, device and the bot flag, like a User-Agent header.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from obsd.ingest.sentry_event import gated, seconds
from obsd.ingest.wire import Envelope, Event, Sdk, WireError
from obsd.vocabulary import SESSION_STATUSES, SESSION_TYPE

MAX_BUCKETS = 100  # Relay's limit of aggregate buckets per item
_decode = msgspec.json.Decoder()
# Client report reasons and data categories Sentry's SDKs send; anything else is counted as "other"
# so a sender cannot grow the metric's label set.
REASONS = frozenset({"before_send", "event_processor", "sample_rate", "network_error", "queue_overflow",
                     "cache_overflow", "buffer_overflow", "ratelimit_backoff", "send_error", "internal_sdk_error",
                     "insufficient_data", "backpressure", "ignored"})
CATEGORIES = frozenset({"default", "error", "transaction", "security", "attachment", "session", "profile",
                        "profile_chunk", "replay", "internal", "monitor", "span", "log_item", "log_byte", "feedback",
                        "metric_bucket", "user_report", "statsd"})


def _object(payload: bytes, what: str) -> dict[str, Any]:
    gated(payload, f"invalid_{what}", f"a {what} item")
    try:
        doc = _decode.decode(payload)
    except msgspec.DecodeError as exc:
        raise WireError(f"invalid_{what}", f"a {what} item is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise WireError(f"invalid_{what}", f"a {what} item is not a JSON object")
    return doc


def _attrs(doc: dict[str, Any], what: str) -> tuple[str, str | None, str | None]:
    """release (required, as in Relay), environment and user agent of a session item."""
    attrs = doc.get("attrs")
    if not isinstance(attrs, dict):
        attrs = {}
    release, env, ua = attrs.get("release"), attrs.get("environment"), attrs.get("user_agent")
    if not isinstance(release, str) or not release:
        raise WireError("session_without_release", f"a {what} item has no attrs.release; Sentry needs one to count "
                        "sessions per release")
    return release, env if isinstance(env, str) and env else None, ua if isinstance(ua, str) and ua else None


def _status(v: Any) -> str:
    """The status as sent (lower case); unknown ones are kept and count as errored, as in Relay."""
    return v.lower()[:32] if isinstance(v, str) and v else SESSION_STATUSES[0]


def read_session(payload: bytes, now: float, sdk: Sdk) -> tuple[Envelope, str | None]:
    """One session update as one `session` row for its release and environment, and its user agent."""
    doc = _object(payload, "session")
    release, env, ua = _attrs(doc, "session")
    sid = doc.get("sid")
    try:
        session_id = uuid.UUID(sid).hex if isinstance(sid, str) else ""
    except ValueError:
        session_id = ""
    if not session_id:
        raise WireError("invalid_session", "a session item has no sid (a UUID)")
    started = seconds(doc.get("started")) or seconds(doc.get("timestamp")) or now
    errors = doc.get("errors")
    value = float(errors) if isinstance(errors, int) and not isinstance(errors, bool) and errors > 0 else 0.0
    event = Event(id=str(uuid.uuid4()), type=SESSION_TYPE, ts=started * 1000, name=_status(doc.get("status")),
                  value=value, props={"init": True} if doc.get("init") is True else None)
    return Envelope(events=[event], session_id=session_id, release=release, environment=env, sdk=sdk), ua


def read_sessions(payload: bytes, now: float, sdk: Sdk) -> tuple[Envelope, str | None]:
    """Pre-aggregated sessions: one row per bucket and status, the count as value, no session id."""
    doc = _object(payload, "sessions")
    release, env, ua = _attrs(doc, "sessions")
    buckets = doc.get("aggregates")
    if not isinstance(buckets, list):
        raise WireError("invalid_sessions", "a sessions item has no aggregates list")
    events: list[Event] = []
    for b in buckets[:MAX_BUCKETS]:
        if not isinstance(b, dict):
            continue
        started = seconds(b.get("started")) or now
        for status in SESSION_STATUSES[1:]:  # every status but ok
            n = b.get(status)
            if isinstance(n, int) and not isinstance(n, bool) and n > 0:
                events.append(Event(id=str(uuid.uuid4()), type=SESSION_TYPE, ts=started * 1000, name=status,
                                    value=float(n)))
    return Envelope(events=events, release=release, environment=env, sdk=sdk), ua


def read_client_report(payload: bytes) -> list[tuple[str, str, int]]:
    """(reason, category, quantity) of every event an SDK says it discarded itself."""
    doc = _object(payload, "client_report")
    out: list[tuple[str, str, int]] = []
    for key in ("discarded_events", "rate_limited_events", "filtered_events", "filtered_sampling_events"):
        entries = doc.get(key)
        for e in entries if isinstance(entries, list) else ():
            if not isinstance(e, dict):
                continue
            n = e.get("quantity")
            if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
                continue
            reason = e.get("reason") if key == "discarded_events" else key.removesuffix("_events")
            category = e.get("category")
            out.append((reason if reason in REASONS or reason in ("rate_limited", "filtered", "filtered_sampling")
                        else "other", category if category in CATEGORIES else "other", n))
    return out
