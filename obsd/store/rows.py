"""The rows obsd writes, as Structs: `obsd.events` (EventPart + Common) and `obsd.events_rejected`.

The columns are owned by migrations/; these Structs are how Python writes them (NDJSON, one
msgspec encode), and a test keeps the two in step.
"""

from __future__ import annotations

import msgspec

# A dead letter keeps at most this much of the refused input, and this much of the reason.
MAX_DEAD_PAYLOAD = 65_536
MAX_DEAD_REASON = 500


class EventPart(msgspec.Struct, omit_defaults=True):
    """The columns of an obsd.events row that differ per event (with Common, a whole row)."""

    event_id: str
    type: str
    ts: float
    is_entry: bool = False  # the first pageview of a visit (since 0010)
    name: str = ""
    url: str = ""
    hostname: str = ""
    path: str = ""
    referrer: str = ""
    referrer_host: str = ""
    title: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_content: str = ""
    utm_term: str = ""
    source: str = ""  # since 0010: obsd/ingest/channels.py
    channel: str = ""
    value: float = 0.0
    rating: str = ""
    selector: str = ""
    tag: str = ""
    href: str = ""
    error_message: str = ""
    error_stack: str = ""
    error_source: str = ""
    error_line: int = 0
    error_col: int = 0
    props: str = ""


class Common(msgspec.Struct, omit_defaults=True):
    """The columns every row of a request shares: encoded once, spliced onto each row."""

    project_id: str
    received_at: float
    session_id: str = ""
    session_start: int = 0  # since 0010, Unix seconds; 0 is stored as the column default, the event's own time
    visitor_id: int = 0
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device_type: str = ""
    is_bot: bool = False
    country: str = ""
    region: str = ""
    city: str = ""
    language: str = ""
    timezone: str = ""
    screen_width: int = 0
    screen_height: int = 0
    viewport_width: int = 0
    viewport_height: int = 0
    environment: str = ""
    release: str = ""
    sdk: str = ""
    protocol: str = ""  # '' is stored as the column default, 'obsd'


class DeadLetter(msgspec.Struct, frozen=True):
    """A row of obsd.events_rejected: something refused, with why and where."""

    received_at: float
    project_id: str
    stage: str
    reason: str
    payload: str
    session_id: str = ""  # since migration 0006, so `obsd purge --session` reaches dead letters


def dead_letter(received_at: float, project_id: str, stage: str, reason: str, payload: bytes | str,
                session_id: str = "") -> DeadLetter:
    """The one way to build a dead letter: the payload and reason are capped, bytes read as UTF-8.

    Client input is scrubbed before it gets here (obsd/ingest/rejects.py); the store stage passes
    rows that were already encoded, and so already scrubbed.
    """
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return DeadLetter(received_at, project_id, stage, reason[:MAX_DEAD_REASON], text[:MAX_DEAD_PAYLOAD],
                      session_id[:128])


def row_fields() -> frozenset[str]:
    """Every column name of an events row."""
    return frozenset(EventPart.__struct_fields__) | frozenset(Common.__struct_fields__)
