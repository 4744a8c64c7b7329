"""CORS for the ingestion routes: echo an allowed origin (never `*`) and let browsers read Retry-After."""

from __future__ import annotations

EXPOSED = {"Access-Control-Expose-Headers": "Retry-After"}


def cors_headers(origin: str | None, *, preflight: bool = False) -> dict[str, str]:
    """CORS headers that echo an allowed origin and let the SDK read Retry-After."""
    if not origin:
        return {}
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin", **EXPOSED}
    if preflight:
        headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        headers["Access-Control-Allow-Headers"] = "Content-Type, Content-Encoding, X-Obsd-Key"
        headers["Access-Control-Max-Age"] = "86400"
    return headers
