"""POST /v1/events: size-capped read → gunzip → decode → key → origin → rate limit → rows → pipeline."""

from __future__ import annotations

import re
import time

from aiohttp import web

from obsd.httperrors import HttpError, json_response
from obsd.ingest.accept import Acceptor
from obsd.ingest.body import decode_content, read_capped
from obsd.ingest.cors import cors_headers
from obsd.ingest.enrich import Client, RowEncoder
from obsd.ingest.projects import Project, Projects
from obsd.ingest.rejects import rejected_letter
from obsd.ingest.wire import WireError
from obsd.ops.metrics import Metrics
from obsd.privacy.clientip import ClientIpResolver
from obsd.privacy.ratelimit import TokenBucketLimiter
from obsd.settings import Settings

_ALLOWED_TYPES = frozenset({"", "text/plain", "application/json"})
_COUNTRY = re.compile(r"[A-Z]{2}")


class EventsEndpoint:
    """The ingestion endpoint and its per-request checks."""

    def __init__(self, settings: Settings, acceptor: Acceptor, metrics: Metrics, encoder: RowEncoder) -> None:
        self.acceptor = acceptor
        self.metrics = metrics
        self.encoder = encoder
        self.apply(settings)

    def apply(self, settings: Settings) -> None:
        """Take new projects, keys and limits (on start and on reload)."""
        self.settings = settings
        self.projects = Projects(settings.projects)
        self.ips = ClientIpResolver(settings.server.trusted_proxies)
        self.encoder.apply_limits(settings.limits)
        rl = settings.rate_limit
        self.project_limit = _bucket(rl.per_project_rps, rl.per_project_burst)
        self.ip_limit = _bucket(rl.per_ip_rps, rl.per_ip_burst)

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
        ip = self.ips.resolve(request.remote, request.headers.get("X-Forwarded-For"))
        self._rate_limit(project.id, ip)
        server = self.settings.server
        body = await read_capped(request, server.max_body_bytes, "server.max_body_bytes")
        body = decode_content(request, body, server.max_decompressed_bytes)
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
        client = Client(ip, request.headers.get("User-Agent", "")[:512], self._country(request))
        now = time.time()
        try:
            enc = self.encoder.encode(project.id, decoded, client, now)
        except WireError as exc:
            raise HttpError(400, exc.code, str(exc)) from exc
        if enc.accepted:
            await self.acceptor.accept(enc.data, enc.accepted)
        if enc.rejected:
            sid = decoded.envelope.session_id or ""
            self.acceptor.reject((r.code for r in enc.rejected), [
                rejected_letter(now, project.id, "ingest", r.reason, r.raw, self.encoder.urls, sid)
                for r in enc.rejected])
        self.metrics.requests.labels(route="/v1/events", status="202").inc()
        return json_response({"accepted": enc.accepted,
                              "rejected": [{"index": r.index, "reason": r.reason} for r in enc.rejected]},
                             status=202, headers=headers)

    def _rate_limit(self, project_id: str, ip: str) -> None:
        for limiter, key, what in ((self.project_limit, project_id, "project"), (self.ip_limit, ip, "client")):
            if limiter is None:
                continue
            wait = limiter.take(key)
            if wait > 0:
                raise HttpError(429, "rate_limited", f"too many requests for this {what}; retry after "
                                f"{max(1, round(wait))} s", retry_after=max(1, round(wait + 0.499)))

    def _country(self, request: web.Request) -> str:
        header = self.settings.privacy.country_header
        if not header:
            return ""
        value = request.headers.get(header, "").upper()
        return value if _COUNTRY.fullmatch(value) else ""


def _bucket(rps: float, burst: float) -> TokenBucketLimiter | None:
    """A token bucket, or None when its rate is 0 (off); a burst below one request is raised to one."""
    return TokenBucketLimiter(rps, max(1.0, burst or rps)) if rps > 0 else None
