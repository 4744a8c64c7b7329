"""The words every stage shares: event types, Web Vitals and their thresholds, and the id patterns.

Each rule has this one owner; the wire decoder, the settings, reports, purge and the import all
import it from here (a test keeps the SQL rollups' thresholds equal to these).
"""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

EventType = Literal["pageview", "click", "scroll", "error", "web_vital", "custom"]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)
# Rows only protocol adapters write, never accepted on /v1/events: a Sentry session update (release health).
SESSION_TYPE: Final = "session"
SESSION_STATUSES: Final = ("ok", "exited", "errored", "unhandled", "crashed", "abnormal")
VITALS: Final = ("LCP", "INP", "CLS", "FCP", "TTFB")
# Google's published Web Vitals thresholds: value <= good is "good", value > poor is "poor". FID is
# no longer sent by the SDK but is still rated when old data has it.
THRESHOLDS: Final[dict[str, tuple[float, float]]] = {
    "LCP": (2500, 4000), "INP": (200, 500), "CLS": (0.1, 0.25), "FCP": (1800, 3000),
    "TTFB": (800, 1800), "FID": (100, 300),
}
METRIC_ORDER: Final = (*VITALS, "FID")

UUID_PATTERN: Final = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
UUID_RULE: Final = "a UUID string like 0b7e6c1e-8d2a-4c1e-9f3b-2a6d5c4b3a21"
PROJECT_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PROJECT_ID_RULE: Final = "1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
SESSION_ID_RULE: Final = "1-64 characters of letters, digits, '-' or '_'"
_UUID: Final = re.compile(UUID_PATTERN)


# A site's domain as Plausible's tracker names it (`d`): a hostname, lower case, without "www.".
_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN: Final = re.compile(rf"(?=.{{1,253}}$)(?:{_LABEL}\.)*{_LABEL}")
DOMAIN_RULE: Final = "a hostname such as \"shop.example\" (no scheme, port or path)"
SENTRY_ID_MAX: Final = 2**53 - 1  # Sentry project ids are integers; above this JSON readers lose digits


def site_domain(text: str) -> str | None:
    """The canonical form of a site domain (lower case, IDNA, no trailing dot or leading "www."), or None."""
    host = text.strip().rstrip(".").lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    host = host.removeprefix("www.")
    return host if _DOMAIN.fullmatch(host) else None


def is_project_id(text: str) -> bool:
    """True when `text` is a valid project id."""
    return PROJECT_ID.fullmatch(text) is not None


def is_uuid(text: str) -> bool:
    """True when `text` is a UUID string (event ids, batch ids)."""
    return _UUID.fullmatch(text) is not None


def is_session_id(text: str) -> bool:
    """True when `text` is a valid session id."""
    return SESSION_ID.fullmatch(text) is not None
