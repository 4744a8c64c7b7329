"""Request bodies: read with a size cap, then decompressed with a cap on what they inflate to."""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

from obsd.httperrors import HttpError

# Inflating is done on the event loop only while it is small: a compressed body larger than
# OFF_LOOP_BYTES, or one that inflates past ON_LOOP_BYTES (gzip reaches ~1000:1, so a 4 KiB body can
# fill the 4 MiB cap), is inflated on a worker thread; milliseconds of CPU that belong to other requests.
OFF_LOOP_BYTES = 64 * 1024
ON_LOOP_BYTES = 256 * 1024


def gunzip_capped(body: bytes, limit: int) -> bytes:
    """Decompress gzip (every member of a multi-member body) without ever holding more than `limit`
    bytes: a gzip bomb stops at the cap."""
    out = bytearray()
    data = body
    while True:
        d = zlib.decompressobj(wbits=47)  # gzip or zlib, auto-detected
        try:
            out += d.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise HttpError(400, "invalid_gzip", f"the body is not valid gzip: {exc}") from exc
        if len(out) > limit or d.unconsumed_tail:
            raise HttpError(413, "decompressed_too_large",
                            f"the body decompresses to more than {limit} bytes (server.max_decompressed_bytes); "
                            "send smaller batches")
        if not d.eof:
            raise HttpError(400, "invalid_gzip", "the gzip body is truncated")
        # Concatenated gzip members are one stream (RFC 1952); NUL padding after the last is ignored.
        data = d.unused_data
        if not data.strip(b"\0"):
            return bytes(out)


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


def is_gzip(request: web.Request) -> bool:
    """Whether the body is gzip (Content-Encoding, or `?gzip=1` for beacons that cannot set headers)."""
    encoding = request.headers.get("Content-Encoding", "").lower()
    if encoding == "gzip" or request.query.get("gzip") == "1":
        return True
    if encoding not in ("", "identity"):
        raise HttpError(415, "unsupported_encoding", f"Content-Encoding {encoding[:40]!r} is not accepted; "
                        "use gzip or none")
    return False


def decode_content(request: web.Request, body: bytes, limit: int) -> bytes:
    """The body after its Content-Encoding, on the calling thread."""
    return gunzip_capped(body, limit) if is_gzip(request) else body


async def inflate(request: web.Request, body: bytes, limit: int) -> bytes:
    """The body after its Content-Encoding; large bodies (in or out) are inflated off the event loop."""
    if not is_gzip(request):
        return body
    if len(body) <= OFF_LOOP_BYTES:
        small = min(limit, ON_LOOP_BYTES)
        try:
            return gunzip_capped(body, small)
        except HttpError as exc:
            if exc.status != 413 or small == limit:
                raise
    return await asyncio.get_running_loop().run_in_executor(None, gunzip_capped, body, limit)
