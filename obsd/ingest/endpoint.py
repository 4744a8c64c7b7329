"""POST /v1/events: key → origin → rate limit → size-capped read → decode → rows → pipeline."""

from __future__ import annotations

import time

from aiohttp import web

from obsd.httperrors import HttpError, json_response
from obsd.ingest.accept import Acceptor
from obsd.ingest.cors import cors_headers
from obsd.ingest.enrich import RowEncoder
from obsd.ingest.gate import RequestGate
from obsd.ingest.projects import Project, Projects
from obsd.ingest.wire import WireError
from obsd.ops.metrics import Metrics
from obsd.settings import Settings
from obsd.store.rows import dead_letter

_ALLOWED_TYPES = frozenset({"", "text/plain", "application/json"})


class EventsEndpoint:
    """The ingestion endpoint and its per-request checks."""

    def __init__(self, settings: Settings, acceptor: Acceptor, metrics: Metrics, encoder: RowEncoder,
                 gate: RequestGate) -> None:
        self.acceptor = acceptor
        self.metrics = metrics
        self.encoder = encoder
        self.gate = gate
        self.apply(settings)

    def apply(self, settings: Settings) -> None:
        """Take new projects, keys and limits (on start and on reload; the gate is applied by its owner)."""
        self.settings = settings
        self.projects = Projects(settings.projects)
        self.encoder.apply_limits(settings.limits)

    def _project(self, request: web.Request) -> Project:
        key = request.headers.get("X-Obsd-Key") or request.query.get("key", "")
        if not key:
            raise HttpError(401, "missing_key", "no write key: send it in the X-Obsd-Key header or the key query "
                            "parameter")
        project = self.projects.by_key.get(key)
        if project is None:
            raise HttpError(401, "invalid_key", "the write key is not known to this obsd; check the project's "
                            "write_key in obsd.toml")
        return project

    async def preflight(self, request: web.Request) -> web.Response:
        """Answer CORS preflight for origins that some project allows."""
        origin = request.headers.get("Origin")
        key = request.query.get("key")
        project = self.projects.by_key.get(key) if key else None
        policy = project.origins if project else self.projects.any_origin
        if not origin or not policy.allows(origin):
            exc = HttpError(403, "origin_not_allowed", f"origin {origin!r} is not in allowed_origins")
            self.acceptor.refused(exc)
            raise exc
        return web.Response(status=204, headers=cors_headers(origin, preflight=True))

    async def post(self, request: web.Request) -> web.Response:
        """Accept a batch of events; answer 202 with what was accepted and what was refused, and why."""
        started = time.perf_counter()
        origin = request.headers.get("Origin")
        headers = cors_headers(origin) if origin else {}
        try:
            return await self._post(request, origin, headers)
        except HttpError as exc:
            self.acceptor.refused(exc)
            exc.extra_headers.update(headers)
            raise
        finally:
            self.metrics.request_seconds.observe(time.perf_counter() - started)

    async def _post(self, request: web.Request, origin: str | None, headers: dict[str, str]) -> web.Response:
        project = self._project(request)
        if origin is not None and not project.origins.allows(origin):
            raise HttpError(403, "origin_not_allowed",
                            f"origin {origin[:200]!r} is not in allowed_origins of project {project.id!r}")
        ctype = request.content_type if request.headers.get("Content-Type") else ""
        if ctype not in _ALLOWED_TYPES:
            raise HttpError(415, "unsupported_media_type",
                            f"Content-Type {ctype[:100]!r} is not accepted; send text/plain or application/json")
        ip = self.gate.client_ip(request)
        self.gate.rate_limit(project.id, ip)
        server = self.settings.server
        body = await self.gate.body(request)
        if not body:
            raise HttpError(400, "empty_body", "the body is empty; send a JSON envelope with events")
        try:
            decoded = self.encoder.decoder.decode(body)
        except WireError as exc:
            raise HttpError(400, exc.code, str(exc)) from exc
        n = len(decoded.envelope.events) + len(decoded.rejected)
        if n == 0:
            raise HttpError(400, "empty_batch", "the batch has no events")
        if n > server.max_events_per_batch:
            raise HttpError(413, "too_many_events", f"the batch has {n} events; the limit is "
                            f"{server.max_events_per_batch} (server.max_events_per_batch)")
        client = self.gate.client(request, ip)
        now = time.time()
        try:
            enc = self.encoder.encode(project.id, decoded, client, now)
        except WireError as exc:
            raise HttpError(400, exc.code, str(exc)) from exc
        if enc.accepted:
            await self.acceptor.accept(enc.data, enc.accepted)
        if enc.rejected:
            self.acceptor.reject((r.code for r in enc.rejected),
                                 [dead_letter(now, project.id, "ingest", r.reason, r.raw) for r in enc.rejected])
        self.metrics.requests.labels(route="/v1/events", status="202").inc()
        return json_response({"accepted": enc.accepted,
                              "rejected": [{"index": r.index, "reason": r.reason} for r in enc.rejected]},
                             status=202, headers=headers)
