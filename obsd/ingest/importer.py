"""POST /v1/admin/import: admin-only bulk ingestion of historical envelopes (used by `obsd seed`).

The body is NDJSON, one wire-format envelope per line, each optionally carrying the visitor's
request context in a `client` object (`ip`, `user_agent`, `country`) that a browser would have sent
as headers. Events go through the same validation, scrubbing and enrichment as POST /v1/events,
with one difference: `limits.max_event_age_s` is not applied, so history can be loaded. Rows are
encoded off the event loop and made durable through the same pipeline before the 202.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import msgspec
from aiohttp import web

from obsd.httperrors import HttpError, json_response
from obsd.ingest.accept import Acceptor
from obsd.ingest.body import gunzip_capped, read_capped
from obsd.ingest.enrich import Client, RowEncoder
from obsd.ingest.rejects import rejected_letter
from obsd.ingest.wire import WireError
from obsd.ops.metrics import Metrics
from obsd.pipeline.batch_ids import fingerprint
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import Settings
from obsd.store.rows import DeadLetter
from obsd.vocabulary import PROJECT_ID_RULE, UUID_RULE, is_project_id, is_uuid

MAX_IMPORT_BYTES = 64 * 1024 * 1024
HISTORY_S = 20 * 366 * 86_400  # how far back an import may reach


class ImportClient(msgspec.Struct, frozen=True):
    """The request context of the visitor who sent an imported envelope (region and city: a location the
    exported data already had, used when no GeoIP database is configured)."""

    ip: str = "127.0.0.1"
    user_agent: str = ""
    country: str = ""
    region: str = ""
    city: str = ""


class _ClientOnly(msgspec.Struct, frozen=True):
    client: ImportClient = ImportClient()


_client = msgspec.json.Decoder(_ClientOnly)


def historic(settings: Settings) -> Settings:
    """The settings an import validates with: the live limits, without the maximum event age."""
    limits = msgspec.structs.replace(settings.limits, max_event_age_s=HISTORY_S)
    return msgspec.structs.replace(settings, limits=limits)


@dataclass(slots=True)
class ImportResult:
    """The rows of one import body, in chunks of one calendar month each, and what was refused, by reason."""

    chunks: list[tuple[bytes, int]]
    accepted: int
    rejected: Counter[str]
    dead: list[DeadLetter]


def encode_lines(encoder: RowEncoder, project: str, body: bytes, now: float, *,
                 max_events: int = 20_000, max_bytes: int = 16 << 20) -> ImportResult:
    """Validate and enrich every envelope line of an import body into NDJSON rows.

    Rows are grouped by the month of each envelope's first event (one ClickHouse partition per insert
    batch where possible) and cut into chunks of at most `max_events` / `max_bytes` at envelope
    boundaries, in a deterministic order, so the same body always makes the same chunks.
    """
    months: dict[int, list[tuple[bytes, int]]] = {}
    accepted = 0
    rejected: Counter[str] = Counter()
    dead: list[DeadLetter] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            decoded = encoder.decoder.decode(line)
            c = _client.decode(line).client
            enc = encoder.encode(project, decoded, Client(c.ip, c.user_agent[:512], c.country[:2].upper(),
                                                          region=c.region[:8], city=c.city[:100]), now)
        except (WireError, msgspec.ValidationError) as exc:
            rejected[getattr(exc, "code", "invalid_envelope")] += 1
            dead.append(rejected_letter(now, project, "import", str(exc), line, encoder.urls))
            continue
        if enc.accepted:
            first = decoded.envelope.events[0].ts / 1000 if decoded.envelope.events else now
            utc = time.gmtime(first)
            month = utc.tm_year * 12 + utc.tm_mon  # the calendar month: events are partitioned by toYYYYMM(ts)
            months.setdefault(month, []).append((enc.data, enc.accepted))
            accepted += enc.accepted
        sid = decoded.envelope.session_id or ""
        for r in enc.rejected:
            rejected[r.code] += 1
            dead.append(rejected_letter(now, project, "import", r.reason, r.raw, encoder.urls, sid))
    chunks: list[tuple[bytes, int]] = []
    for month in sorted(months):
        parts: list[bytes] = []
        events = size = 0
        for data, n in months[month]:
            if parts and (events + n > max_events or size + len(data) > max_bytes):
                chunks.append((b"".join(parts), events))
                parts, events, size = [], 0, 0
            parts.append(data)
            events += n
            size += len(data)
        if parts:
            chunks.append((b"".join(parts), events))
    return ImportResult(chunks, accepted, rejected, dead)


class Importer:
    """The handler for POST /v1/admin/import?project=P."""

    def __init__(self, settings: Settings, acceptor: Acceptor, metrics: Metrics,
                 check: Callable[[web.Request], None], visitors: VisitorHasher) -> None:
        self.acceptor = acceptor
        self.metrics = metrics
        self.check = check
        self.visitors = visitors
        self.apply(settings)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="obsd-import")

    def apply(self, settings: Settings) -> None:
        """Take new limits (on start and on reload)."""
        self.encoder = RowEncoder(historic(settings), self.visitors)
        # Each chunk must fit the ring with room to spare, and is at most one insert batch.
        p = settings.pipeline
        self.chunk_events = max(1, min(p.batch_max_events, p.ring_max_events // 2))
        self.chunk_bytes = max(1, min(p.batch_max_bytes, p.ring_max_bytes // 2))

    async def post(self, request: web.Request) -> web.Response:
        """Accept a body of envelopes for one project; 202 once the rows are durable.

        With `?batch_id=<uuid>` the import is idempotent: each chunk's id derives from it, so resending
        the same body after a 503 half way stores only what had not been accepted yet.
        """
        self.check(request)
        project = request.query.get("project", "")
        if not is_project_id(project):
            raise HttpError(400, "invalid_project", f"give ?project=<id>: {PROJECT_ID_RULE}")
        batch_id = request.query.get("batch_id", "")
        if batch_id and not is_uuid(batch_id):
            raise HttpError(400, "invalid_batch_id", f"batch_id must be {UUID_RULE}")
        encoder = self.encoder  # one snapshot of the configuration for the whole request
        body = await read_capped(request, MAX_IMPORT_BYTES, "an import body; send smaller chunks")
        loop = asyncio.get_running_loop()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = await loop.run_in_executor(self._pool, gunzip_capped, body, MAX_IMPORT_BYTES * 4)
        now = time.time()
        res = await loop.run_in_executor(
            self._pool, partial(encode_lines, encoder, project, body, now, max_events=self.chunk_events,
                                max_bytes=self.chunk_bytes))
        stored = duplicate = 0
        for i, (data, n) in enumerate(res.chunks):
            batch = fingerprint(project, f"{batch_id}/{i}") if batch_id else None
            try:
                if await self.acceptor.accept(data, n, batch=batch):
                    stored += n
                else:
                    duplicate += n
            except HttpError as exc:
                if stored or duplicate:
                    exc.reason += (f" ({stored + duplicate} of {res.accepted} events of this body were accepted "
                                   "before this; resend the same body with the same batch_id to add the rest)")
                raise
        self.metrics.imported.inc(stored)
        self.acceptor.reject(res.rejected.elements(), res.dead)
        return json_response({"accepted": stored, "duplicate": duplicate, "rejected": sum(res.rejected.values()),
                              "reasons": dict(res.rejected)}, status=202)

    def close(self) -> None:
        """Stop the encoding thread."""
        self._pool.shutdown(wait=True)
