"""CORS for the ingestion routes: echo an allowed origin (never `*`) and let browsers read Retry-After."""

from __future__ import annotations

ALLOW_HEADERS = "Content-Type, Content-Encoding, X-Obsd-Key"


def cors_headers(origin: str | None, *, preflight: bool = False, expose: str = "Retry-After",
                 allow_headers: str = ALLOW_HEADERS) -> dict[str, str]:
    """CORS headers that echo an allowed origin and let the SDK read Retry-After (and `expose`)."""
    if not origin:
        return {}
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin", "Access-Control-Expose-Headers": expose}
    if preflight:
        headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        headers["Access-Control-Allow-Headers"] = allow_headers
        headers["Access-Control-Max-Age"] = "86400"
    return headers
