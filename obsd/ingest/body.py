"""Request bodies: read with a size cap, then decompressed with a cap on what they inflate to."""

from __future__ import annotations

import zlib

from aiohttp import web

from obsd.httperrors import HttpError


def gunzip_capped(body: bytes, limit: int) -> bytes:
    """Decompress gzip without ever holding more than `limit` bytes: a gzip bomb stops at the cap."""
    d = zlib.decompressobj(wbits=47)  # gzip or zlib, auto-detected
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise HttpError(400, "invalid_gzip", f"the body is not valid gzip: {exc}") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise HttpError(413, "decompressed_too_large",
                        f"the body decompresses to more than {limit} bytes (server.max_decompressed_bytes); "
                        "send smaller batches")
    if not d.eof:
        raise HttpError(400, "invalid_gzip", "the gzip body is truncated")
    return out


async def read_capped(request: web.Request, limit: int, setting: str) -> bytes:
    """The raw body, refused with 413 when it is larger than `limit` bytes (named by `setting`)."""
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, "body_too_large", f"the body is {request.content_length} bytes; the limit is "
                        f"{limit} ({setting})")
    buf = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            raise HttpError(413, "body_too_large", f"the body is larger than {limit} bytes ({setting})")
    return bytes(buf)


def decode_content(request: web.Request, body: bytes, limit: int) -> bytes:
    """The body after its Content-Encoding (gzip, or `?gzip=1` for beacons that cannot set headers)."""
    encoding = request.headers.get("Content-Encoding", "").lower()
    if encoding == "gzip" or request.query.get("gzip") == "1":
        return gunzip_capped(body, limit)
    if encoding not in ("", "identity"):
        raise HttpError(415, "unsupported_encoding", f"Content-Encoding {encoding[:40]!r} is not accepted; "
                        "use gzip or none")
    return body
