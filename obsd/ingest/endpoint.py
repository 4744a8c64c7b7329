"""POST /v1/events: key → origin → rate limit → size-capped read → inflate → decode → rows → pipeline."""

from __future__ import annotations

import time

from aiohttp import web

from obsd.httperrors import HttpError, json_response
from obsd.ingest.config import IngestConfig, IngestRoute
from obsd.ingest.cors import cors_headers
from obsd.ingest.projects import Project
from obsd.ingest.rejects import rejected_letter
from obsd.ingest.wire import WireError
from obsd.pipeline.batch_ids import fingerprint

_ALLOWED_TYPES = frozenset({"", "text/plain", "application/json"})


class EventsEndpoint(IngestRoute):
    """The ingestion endpoint and its per-request checks."""

    async def preflight(self, request: web.Request) -> web.Response:
        """Answer CORS preflight for origins that some project allows."""
        cfg = self.config
        origin = request.headers.get("Origin")
        key = request.query.get("key")
        project = cfg.projects.by_key.get(key) if key else None
        policy = project.origins if project else cfg.projects.any_origin
        if not origin or not policy.allows(origin):
            exc = HttpError(403, "origin_not_allowed", f"origin {(origin or '')[:200]!r} is not in allowed_origins")
            self.acceptor.refused(exc)
            raise exc
        return web.Response(status=204, headers=cors_headers(origin, preflight=True))

    async def post(self, request: web.Request) -> web.Response:
        """Accept a batch of events; answer 202 with what was accepted and what was refused, and why."""
        started = time.perf_counter()
        cfg = self.config
        # CORS headers are added only once the project is known and allows the origin: an error for a
        # foreign origin (a wrong key, a refused origin) must not be readable by that origin's pages.
        cors: dict[str, str] = {}
        try:
            return await self._post(request, cfg, cors)
        except HttpError as exc:
            self.acceptor.refused(exc)
            exc.extra_headers.update(cors)
            raise
        finally:
            self.metrics.request_seconds.observe(time.perf_counter() - started)

    @staticmethod
    def _project(request: web.Request, cfg: IngestConfig) -> Project:
        key = request.headers.get("X-Obsd-Key") or request.query.get("key", "")
        if not key:
            raise HttpError(401, "missing_key", "no write key: send it in the X-Obsd-Key header or the key query "
                            "parameter")
        project = cfg.projects.by_key.get(key)
        if project is None:
            raise HttpError(401, "invalid_key", "the write key is not known to this obsd; check the project's "
                            "write_key in obsd.toml")
        return project

    async def _post(self, request: web.Request, cfg: IngestConfig, cors: dict[str, str]) -> web.Response:
        project = self._project(request, cfg)
        origin = request.headers.get("Origin")
        if origin is not None:
            if not project.origins.allows(origin):
                raise HttpError(403, "origin_not_allowed",
                                f"origin {origin[:200]!r} is not in allowed_origins of project {project.id!r}")
            cors.update(cors_headers(origin))
        ctype = request.content_type if request.headers.get("Content-Type") else ""
        if ctype not in _ALLOWED_TYPES:
            raise HttpError(415, "unsupported_media_type",
                            f"Content-Type {ctype[:100]!r} is not accepted; send text/plain or application/json")
        gate = cfg.gate
        ip = gate.client_ip(request)
        gate.rate_limit(project.id, ip)
        server = cfg.settings.server
        body = await gate.body(request)
        if not body:
            raise HttpError(400, "empty_body", "the body is empty; send a JSON envelope with events")
        encoder = cfg.encoder
        try:
            decoded = encoder.decoder.decode(body)
        except WireError as exc:
            raise HttpError(400, exc.code, str(exc)) from exc
        n = len(decoded.envelope.events) + len(decoded.rejected)
        if n == 0:
            raise HttpError(400, "empty_batch", "the batch has no events")
        if n > server.max_events_per_batch:
            raise HttpError(413, "too_many_events", f"the batch has {n} events; the limit is "
                            f"{server.max_events_per_batch} (server.max_events_per_batch)")
        client = gate.client(request, ip)
        now = time.time()
        try:
            enc = encoder.encode(project.id, decoded, client, now)
        except WireError as exc:
            raise HttpError(400, exc.code, str(exc)) from exc
        env = decoded.envelope
        batch = fingerprint(project.id, env.batch_id) if env.batch_id else None
        if enc.accepted and not await self.acceptor.accept(enc.data, enc.accepted, batch=batch):
            # A resend of a batch already accepted (its answer was lost): nothing is stored again.
            self.metrics.requests.labels(route="/v1/events", status="202").inc()
            return json_response({"accepted": 0, "rejected": [], "duplicate": True}, status=202, headers=cors)
        if enc.rejected:
            self.acceptor.reject((r.code for r in enc.rejected), [
                rejected_letter(now, project.id, "ingest", r.reason, r.raw, encoder.urls, env.session_id or "")
                for r in enc.rejected])
        if env.dropped and env.dropped > 0:
            self.metrics.sdk_dropped.labels(project=project.id).inc(env.dropped)
        self.metrics.requests.labels(route="/v1/events", status="202").inc()
        return json_response({"accepted": enc.accepted,
                              "rejected": [{"index": r.index, "reason": r.reason} for r in enc.rejected]},
                             status=202, headers=cors)
