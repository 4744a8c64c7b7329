"""POST /v1/admin/import: admin-only bulk ingestion of historical envelopes (used by `obsd seed`).

The body is NDJSON, one wire-format envelope per line, each optionally carrying the visitor's
request context in a `client` object (`ip`, `user_agent`, `country`) that a browser would have sent
as headers. Events go through the same validation, scrubbing and enrichment as POST /v1/events,
with one difference: `limits.max_event_age_s` is not applied, so history can be loaded. Rows are
encoded off the event loop and made durable through the same pipeline before the 202.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec
from aiohttp import web

from obsd.enrich import Client, RowEncoder
from obsd.httperrors import HttpError, json_response
from obsd.ingest import gunzip_capped
from obsd.metrics import Metrics
from obsd.pipeline import Overloaded, Pipeline
from obsd.settings import Settings
from obsd.tail import TailHub
from obsd.wire import WireError
from obsd.writer import DeadLetter

MAX_IMPORT_BYTES = 64 * 1024 * 1024
HISTORY_S = 20 * 366 * 86_400  # how far back an import may reach
_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class ImportClient(msgspec.Struct, frozen=True):
    """The request context of the visitor who sent an imported envelope."""

    ip: str = "127.0.0.1"
    user_agent: str = ""
    country: str = ""


class _ClientOnly(msgspec.Struct, frozen=True):
    client: ImportClient = ImportClient()


_client = msgspec.json.Decoder(_ClientOnly)


def historic(settings: Settings) -> Settings:
    """The settings an import validates with: the live limits, without the maximum event age."""
    limits = msgspec.structs.replace(settings.limits, max_event_age_s=HISTORY_S)
    return msgspec.structs.replace(settings, limits=limits)


@dataclass(slots=True)
class ImportResult:
    """The rows of one import body and what was refused, by reason."""

    data: bytes
    accepted: int
    rejected: Counter[str]
    dead: list[DeadLetter]


def encode_lines(encoder: RowEncoder, project: str, body: bytes, now: float) -> ImportResult:
    """Validate and enrich every envelope line of an import body into NDJSON rows."""
    parts: list[bytes] = []
    accepted = 0
    rejected: Counter[str] = Counter()
    dead: list[DeadLetter] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            decoded = encoder.decoder.decode(line)
            c = _client.decode(line).client
            enc = encoder.encode(project, decoded, Client(c.ip, c.user_agent[:512], c.country[:2].upper()), now)
        except (WireError, msgspec.ValidationError) as exc:
            rejected[getattr(exc, "code", "invalid_envelope")] += 1
            dead.append(DeadLetter(now, project, "import", str(exc)[:500], line[:65536].decode("utf-8", "replace")))
            continue
        if enc.accepted:
            parts.append(enc.data)
            accepted += enc.accepted
        for r in enc.rejected:
            rejected[r.code] += 1
            dead.append(DeadLetter(now, project, "import", r.reason, r.raw.decode("utf-8", "replace")[:65536]))
    return ImportResult(b"".join(parts), accepted, rejected, dead)


class Importer:
    """The handler for POST /v1/admin/import?project=P."""

    def __init__(self, settings: Settings, pipeline: Pipeline, metrics: Metrics, hub: TailHub,
                 check: Callable[[web.Request], None], salt_dir: Path | None) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.hub = hub
        self.check = check
        self.salt_dir = salt_dir
        self.apply(settings)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="obsd-import")

    def apply(self, settings: Settings) -> None:
        """Take new limits (on start and on reload)."""
        self.encoder = RowEncoder(historic(settings), self.salt_dir)

    async def post(self, request: web.Request) -> web.Response:
        """Accept a body of envelopes for one project; 202 once the rows are durable."""
        self.check(request)
        project = request.query.get("project", "")
        if not _PROJECT.fullmatch(project):
            raise HttpError(400, "invalid_project", "give ?project=<id>: 1-64 lowercase letters, digits, - or _")
        body = await self._read(request)
        now = time.time()
        encoder = self.encoder
        res = await asyncio.get_running_loop().run_in_executor(
            self._pool, encode_lines, encoder, project, body, now)
        if res.accepted:
            try:
                await self.pipeline.submit(res.data, res.accepted)
            except Overloaded as exc:
                self.metrics.refused_events.inc(res.accepted)
                raise HttpError(503, exc.reason, str(exc), retry_after=exc.retry_after) from exc
            self.metrics.accepted.inc(res.accepted)
            self.metrics.accepted_bytes.inc(len(res.data))
            self.metrics.imported.inc(res.accepted)
            self.hub.publish(res.data)
        for code, n in res.rejected.items():
            self.metrics.rejected.labels(reason=code).inc(n)
        if res.dead:
            self.pipeline.reject(res.dead)
        return json_response({"accepted": res.accepted, "rejected": sum(res.rejected.values()),
                              "reasons": dict(res.rejected)}, status=202)

    async def _read(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > MAX_IMPORT_BYTES:
            raise HttpError(413, "body_too_large", f"an import body is at most {MAX_IMPORT_BYTES} bytes; "
                            "send smaller chunks")
        buf = bytearray()
        async for chunk in request.content.iter_chunked(1 << 20):
            buf += chunk
            if len(buf) > MAX_IMPORT_BYTES:
                raise HttpError(413, "body_too_large", f"an import body is at most {MAX_IMPORT_BYTES} bytes")
        body = bytes(buf)
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gunzip_capped(body, MAX_IMPORT_BYTES * 4)
        return body

    def close(self) -> None:
        """Stop the encoding thread."""
        self._pool.shutdown(wait=True)
