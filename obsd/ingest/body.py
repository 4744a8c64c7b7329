"""Request bodies: read with a size cap, then decompressed with a cap on what they inflate to.

Every Content-Encoding obsd accepts (gzip, deflate, br, zstd) is inflated in bounded steps, so a
compression bomb stops at the cap whatever the encoding: no decoder is ever asked for "everything".
"""

from __future__ import annotations

import asyncio
import io
import zlib
from collections.abc import Callable

import brotli
import zstandard
from aiohttp import web

from obsd.httperrors import HttpError

ENCODINGS = ("gzip", "deflate", "br", "zstd")
# Inflating is done on the event loop only while it is small: a compressed body larger than
# OFF_LOOP_BYTES, or one that inflates past ON_LOOP_BYTES (gzip reaches ~1000:1, so a 4 KiB body can
# fill the 4 MiB cap), is inflated on a worker thread; milliseconds of CPU that belong to other requests.
OFF_LOOP_BYTES = 64 * 1024
ON_LOOP_BYTES = 256 * 1024


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "decompressed_too_large",
                     f"the body decompresses to more than {limit} bytes (server.max_decompressed_bytes); "
                     "send smaller batches")


def _invalid(encoding: str, detail: str) -> HttpError:
    return HttpError(400, f"invalid_{encoding}", f"the body is not valid {encoding}: {detail}")


def _zlib_capped(body: bytes, limit: int, wbits: int, encoding: str, *, members: bool = False) -> bytes:
    """Inflate without ever holding more than `limit` bytes (a bomb stops at the cap); with `members`, every
    member of a concatenated stream (RFC 1952), NUL padding after the last ignored."""
    out = bytearray()
    data = body
    while True:
        d = zlib.decompressobj(wbits=wbits)
        try:
            out += d.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise _invalid(encoding, str(exc)) from exc
        if len(out) > limit or d.unconsumed_tail:
            raise _too_large(limit)
        if not d.eof:
            raise _invalid(encoding, "the body is truncated")
        data = d.unused_data
        if not members or not data.strip(b"\0"):
            return bytes(out)


def gunzip_capped(body: bytes, limit: int) -> bytes:
    """Decompress gzip (or zlib, auto-detected), every member of a multi-member body, capped at `limit` bytes."""
    return _zlib_capped(body, limit, 47, "gzip", members=True)


def inflate_capped(body: bytes, limit: int) -> bytes:
    """HTTP `deflate`: zlib-wrapped as the RFC says, or raw deflate as some clients send it; capped."""
    if len(body) >= 2 and (body[0] & 0x0F) == 8 and ((body[0] << 8) | body[1]) % 31 == 0:
        return _zlib_capped(body, limit, 15, "deflate")
    return _zlib_capped(body, limit, -15, "deflate")


def unbrotli_capped(body: bytes, limit: int) -> bytes:
    """Decompress brotli in steps of at most `limit + 1` output bytes; stop as soon as the cap is passed."""
    d = brotli.Decompressor()
    try:
        out = bytearray(d.process(body, output_buffer_limit=limit + 1))
        while len(out) <= limit and not d.is_finished() and not d.can_accept_more_data():
            out += d.process(b"", output_buffer_limit=limit + 1 - len(out))
    except brotli.error as exc:
        raise _invalid("br", str(exc) or "corrupt stream") from exc
    if len(out) > limit:
        raise _too_large(limit)
    if not d.is_finished():
        raise _invalid("br", "the body is truncated")
    return bytes(out)


def unzstd_capped(body: bytes, limit: int) -> bytes:
    """Decompress zstd (one or more frames) reading at most `limit + 1` bytes out of it."""
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True)
    try:
        out = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise _invalid("zstd", str(exc)) from exc
    if len(out) > limit:
        raise _too_large(limit)
    # The reader stops quietly at a cut-off frame; the output is known to be small now, so a second,
    # frame-by-frame pass can tell a complete stream from a truncated one.
    rest = body
    while rest:
        d = zstandard.ZstdDecompressor().decompressobj()
        try:
            d.decompress(rest)
        except zstandard.ZstdError as exc:
            raise _invalid("zstd", str(exc)) from exc
        if not d.eof:
            raise _invalid("zstd", "the body is truncated")
        rest = d.unused_data
    return bytes(out)


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": gunzip_capped, "x-gzip": gunzip_capped, "deflate": inflate_capped, "br": unbrotli_capped,
    "zstd": unzstd_capped,
}


def _unsupported(encoding: str) -> HttpError:
    return HttpError(415, "unsupported_encoding", f"Content-Encoding {encoding[:40]!r} is not accepted; "
                     f"use {', '.join(ENCODINGS)} or none")


def decompress_capped(body: bytes, encoding: str, limit: int) -> bytes:
    """The body after one Content-Encoding, never inflating past `limit` bytes (413 beyond it)."""
    decode = _DECODERS.get(encoding)
    if decode is None:
        raise _unsupported(encoding)
    return decode(body, limit)


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


def _encoding(request: web.Request) -> str | None:
    """The body's Content-Encoding (`?gzip=1` for beacons that cannot set headers); None for identity."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return "gzip" if request.query.get("gzip") == "1" else None
    if encoding not in _DECODERS:
        raise _unsupported(encoding)
    return encoding


async def inflate(request: web.Request, body: bytes, limit: int) -> bytes:
    """The body after its Content-Encoding; large bodies (in or out) are inflated off the event loop."""
    encoding = _encoding(request)
    if encoding is None:
        return body
    if len(body) <= OFF_LOOP_BYTES:
        small = min(limit, ON_LOOP_BYTES)
        try:
            return decompress_capped(body, encoding, small)
        except HttpError as exc:
            if exc.status != 413 or small == limit:
                raise
    return await asyncio.get_running_loop().run_in_executor(None, decompress_capped, body, encoding, limit)
