"""The requests real Plausible and Sentry clients sent (tests/ingest/fixtures/compat), to replay against obsd.

Captured from @plausible-analytics/tracker 0.4.6 and @sentry/browser 11.12.0 in Chromium, and
sentry-sdk 2.75.0 in Python, by a recording server: each body is the exact bytes received
(compressed when the client compressed), with the headers that matter for ingestion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "compat"
CAPTURED_KEY = "0123456789abcdef0123456789abcdef"  # the write key / DSN public key of the captures
CAPTURED_SENTRY_ID = 42
CAPTURED_ORIGIN = "http://127.0.0.1:8787"
PAGE_URL = "http://127.0.0.1:8787/dist/sentry-page.js"


@dataclass(frozen=True)
class Captured:
    """One request as a client sent it."""

    name: str
    mark: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes  # as sent
    decoded: bytes  # after Content-Encoding

    def json(self) -> Any:
        """The body as JSON (Plausible requests, Sentry store bodies)."""
        return json.loads(self.decoded)


@cache
def load() -> tuple[Captured, ...]:
    """Every captured request, in the order they were sent."""
    index = json.loads((FIXTURES / "index.json").read_text())
    out = []
    for e in index["requests"]:
        body = (FIXTURES / e["body"]).read_bytes()
        decoded = (FIXTURES / e["decoded"]).read_bytes() if e.get("decoded") else body
        out.append(Captured(e["name"], e["mark"], e["path"], e["query"], e["headers"], body, decoded))
    return tuple(out)


def plausible() -> list[Captured]:
    """The tracker's requests to /api/event."""
    return [c for c in load() if c.path == "/api/event"]


def sentry(prefix: str = "") -> list[Captured]:
    """Sentry envelopes (browser and Python) and store bodies whose mark starts with `prefix`."""
    return [c for c in load() if c.path.startswith("/api/42/") and c.mark.startswith(prefix)]


def native_errors() -> list[dict[str, Any]]:
    """What the page's own error handlers saw for the errors Sentry captured (message, filename, stack)."""
    return list(json.loads((FIXTURES / "native-errors.json").read_text())["errors"])
