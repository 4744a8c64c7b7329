"""The spool's record format, and the scan that finds valid records and corrupt ranges in a segment.

A record is `magic u32 | flags u8 | events u32 | length u32 | crc32 u32 | body`, the crc covering
flags, events, length and body. The body is a zstd frame of NDJSON rows. Flags:

- FLAG_END: this record closes an insert batch (the committer's cut, in the same fsync as the data);
- FLAG_IDS: the body starts with the batch ids (64-bit fingerprints of project and batch_id) whose
  rows this record holds: `count u32 | count * u64`, then the zstd frame. Written since obsd 0.2;
  records without it (obsd 0.1) read exactly as before.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

MAGIC = 0x0B5D5701
HEADER = struct.Struct("<IBIII")  # magic, flags, events, body length, crc32(flags..body)
FLAG_END = 1
FLAG_IDS = 2
KNOWN_FLAGS = FLAG_END | FLAG_IDS
MAX_RECORD = 1 << 30
_COUNT = struct.Struct("<I")
_MAGIC_BYTES = struct.pack("<I", MAGIC)


def encode_record(payload: bytes, events: int, end: bool, ids: tuple[int, ...] = ()) -> bytes:
    """One spool record: header, then the ids (when any) and the payload."""
    flags = (FLAG_END if end else 0) | (FLAG_IDS if ids else 0)
    body = _COUNT.pack(len(ids)) + struct.pack(f"<{len(ids)}Q", *ids) + payload if ids else payload
    crc = zlib.crc32(body, zlib.crc32(struct.pack("<BII", flags, events, len(body))))
    return HEADER.pack(MAGIC, flags, events, len(body), crc) + body


def split_body(flags: int, body: bytes | memoryview) -> tuple[tuple[int, ...], bytes | memoryview]:
    """A record body's batch ids and its payload (the compressed rows)."""
    if not flags & FLAG_IDS:
        return (), body
    (count,) = _COUNT.unpack_from(body, 0)
    end = _COUNT.size + 8 * count
    return struct.unpack_from(f"<{count}Q", body, _COUNT.size), body[end:]


def valid_at(buf: bytes, off: int) -> tuple[int, int, int] | None:
    """The (flags, events, end offset) of a valid record at `off`, or None."""
    if off + HEADER.size > len(buf):
        return None
    magic, flags, events, length, crc = HEADER.unpack_from(buf, off)
    end = off + HEADER.size + length
    if magic != MAGIC or length > MAX_RECORD or end > len(buf) or flags & ~KNOWN_FLAGS:
        return None
    body = memoryview(buf)[off + HEADER.size : end]
    if zlib.crc32(body, zlib.crc32(struct.pack("<BII", flags, events, length))) != crc:
        return None
    if flags & FLAG_IDS and (length < _COUNT.size or _COUNT.size + 8 * _COUNT.unpack_from(body, 0)[0] > length):
        return None
    return flags, events, end


@dataclass(slots=True)
class Scan:
    """What a segment holds: valid records, corrupt byte ranges, and where the last valid record ends."""

    records: list[tuple[int, int, int, int]] = field(default_factory=list)  # offset, flags, events, end
    bad: list[tuple[int, int]] = field(default_factory=list)
    good_end: int = 0


def scan(buf: bytes) -> Scan:
    """Find valid records and corrupt ranges; after a corrupt byte, resume at the next valid record.

    Zero bytes after the last record are free space (a preallocated segment), not corruption.
    """
    out = Scan()
    off = 0
    zeros_from: int | None = None
    while off < len(buf):
        rec = valid_at(buf, off)
        if rec is not None:
            out.records.append((off, rec[0], rec[1], rec[2]))
            off = out.good_end = rec[2]
            continue
        if buf.count(0, off) == len(buf) - off:
            break  # only zeros from here on: space reserved for records not yet written
        nxt = buf.find(_MAGIC_BYTES, off + 1)
        while nxt != -1 and valid_at(buf, nxt) is None:
            nxt = buf.find(_MAGIC_BYTES, nxt + 1)
        if nxt == -1:
            zeros_from = _zero_tail(buf) if zeros_from is None else zeros_from
            stop = max(off + 1, zeros_from)
        else:
            stop = nxt
        out.bad.append((off, stop))
        off = stop
    return out


def _zero_tail(buf: bytes) -> int:
    """Where the run of zero bytes that ends `buf` starts (len(buf) when it does not end in a zero)."""
    end = len(buf)
    while end > 0:
        start = max(0, end - 65536)
        kept = len(buf[start:end].rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
    return 0


def payloads(buf: bytes, skips: list[tuple[int, int]]) -> list[bytes]:
    """The compressed payloads of the records in `buf` (a batch's span), jumping over corrupt ranges."""
    parts: list[bytes] = []
    view = memoryview(buf)  # one copy per payload (bytes() below), not two
    off = 0
    while off < len(buf):
        skip = next((b for a, b in skips if a == off), None)
        if skip is not None:
            off = skip
            continue
        _, flags, _events, length, _ = HEADER.unpack_from(buf, off)
        body = view[off + HEADER.size : off + HEADER.size + length]
        parts.append(bytes(split_body(flags, body)[1]))
        off += HEADER.size + length
    return parts
