"""POST /v1/events: size-capped read → gunzip → decode → key → origin → rate limit → rows → pipeline."""

from __future__ import annotations

import re
import time
import zlib
from dataclasses import dataclass

from aiohttp import web

from obsd.enrich import Client, RowEncoder
from obsd.httperrors import CORS_HEADERS, HttpError, json_response
from obsd.metrics import Metrics
from obsd.pipeline import Overloaded, Pipeline
from obsd.privacy.clientip import ClientIpResolver
from obsd.privacy.origins import OriginPolicy
from obsd.privacy.ratelimit import TokenBucketLimiter
from obsd.settings import ProjectSettings, Settings
from obsd.tail import TailHub
from obsd.wire import Rejected, WireError
from obsd.writer import DeadLetter

_ALLOWED_TYPES = frozenset({"", "text/plain", "application/json"})
_COUNTRY = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class Project:
    """A configured project with its compiled origin policy."""

    id: str
    write_key: str
    origins: OriginPolicy


class Projects:
    """Write keys → projects; replaced whole on reload."""

    def __init__(self, projects: tuple[ProjectSettings, ...]) -> None:
        self.by_key = {p.write_key: Project(p.id, p.write_key, OriginPolicy(p.allowed_origins)) for p in projects}
        self.any_origin = OriginPolicy(tuple(o for p in projects for o in p.allowed_origins))


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


class Ingest:
    """The ingestion endpoint and its per-request checks."""

    def __init__(self, settings: Settings, pipeline: Pipeline, metrics: Metrics, encoder: RowEncoder) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.encoder = encoder
        self.tail: TailHub | None = None  # set by the server: live fan-out to `obsd tail`
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

    def _refuse(self, status: int, code: str, reason: str, retry_after: int | None = None) -> HttpError:
        self.metrics.refused.labels(status=str(status), reason=code).inc()
        return HttpError(status, code, reason, retry_after=retry_after)

    def _project(self, request: web.Request) -> Project:
        key = request.headers.get("X-Obsd-Key") or request.query.get("key", "")
        if not key:
            raise self._refuse(401, "missing_key",
                               "no write key: send it in the X-Obsd-Key header or the key query parameter")
        project = self.projects.by_key.get(key)
        if project is None:
            raise self._refuse(401, "invalid_key", "the write key is not known to this obsd; check the "
                               "project's write_key in obsd.toml")
        return project

    async def preflight(self, request: web.Request) -> web.Response:
        """Answer CORS preflight for origins that some project allows."""
        origin = request.headers.get("Origin")
        key = request.query.get("key")
        project = self.projects.by_key.get(key) if key else None
        policy = project.origins if project else self.projects.any_origin
        if not origin or not policy.allows(origin):
            raise self._refuse(403, "origin_not_allowed", f"origin {origin!r} is not in allowed_origins")
        return web.Response(status=204, headers=cors_headers(origin, preflight=True))

    async def post(self, request: web.Request) -> web.Response:
        """Accept a batch of events; answer 202 with what was accepted and what was refused, and why."""
        started = time.perf_counter()
        try:
            return await self._post(request)
        finally:
            self.metrics.request_seconds.observe(time.perf_counter() - started)

    async def _post(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        headers = cors_headers(origin) if origin else {}
        try:
            project = self._project(request)
            if origin is not None and not project.origins.allows(origin):
                raise self._refuse(403, "origin_not_allowed",
                                   f"origin {origin[:200]!r} is not in allowed_origins of project {project.id!r}")
            ctype = request.content_type if request.headers.get("Content-Type") else ""
            if ctype not in _ALLOWED_TYPES:
                raise self._refuse(415, "unsupported_media_type",
                                   f"Content-Type {ctype[:100]!r} is not accepted; send text/plain or application/json")
            ip = self.ips.resolve(request.remote, request.headers.get("X-Forwarded-For"))
            self._rate_limit(project.id, ip)
            body = await self._body(request)
            if not body:
                raise self._refuse(400, "empty_body", "the body is empty; send a JSON envelope with events")
            try:
                decoded = self.encoder.decoder.decode(body)
            except WireError as exc:
                raise self._refuse(400, exc.code, str(exc)) from exc
            n = len(decoded.envelope.events) + len(decoded.rejected)
            if n == 0:
                raise self._refuse(400, "empty_batch", "the batch has no events")
            if n > self.settings.server.max_events_per_batch:
                raise self._refuse(413, "too_many_events", f"the batch has {n} events; the limit is "
                                   f"{self.settings.server.max_events_per_batch} (server.max_events_per_batch)")
            client = Client(ip, request.headers.get("User-Agent", "")[:512], self._country(request))
            now = time.time()
            try:
                enc = self.encoder.encode(project.id, decoded, client, now)
            except WireError as exc:
                raise self._refuse(400, exc.code, str(exc)) from exc
            if enc.accepted:
                try:
                    await self.pipeline.submit(enc.data, enc.accepted)
                except Overloaded as exc:
                    self.metrics.refused_events.inc(enc.accepted)
                    raise self._refuse(503, exc.reason, str(exc), retry_after=exc.retry_after) from exc
                self.metrics.accepted.inc(enc.accepted)
                self.metrics.accepted_bytes.inc(len(enc.data))
                if self.tail is not None:
                    self.tail.publish(enc.data)
            if enc.rejected:
                self._count_rejects(project.id, enc.rejected, now)
            body_out = {"accepted": enc.accepted,
                        "rejected": [{"index": r.index, "reason": r.reason} for r in enc.rejected]}
            self.metrics.requests.labels(route="/v1/events", status="202").inc()
            return json_response(body_out, status=202, headers=headers)
        except HttpError as exc:
            exc.extra_headers.update(headers)
            raise

    def _rate_limit(self, project_id: str, ip: str) -> None:
        for limiter, key, what in ((self.project_limit, project_id, "project"), (self.ip_limit, ip, "client")):
            if limiter is None:
                continue
            wait = limiter.take(key)
            if wait > 0:
                raise self._refuse(429, "rate_limited", f"too many requests for this {what}; retry after "
                                   f"{max(1, round(wait))} s", retry_after=max(1, round(wait + 0.499)))

    async def _body(self, request: web.Request) -> bytes:
        limit = self.settings.server.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise self._refuse(413, "body_too_large", f"the body is {request.content_length} bytes; the limit is "
                               f"{limit} (server.max_body_bytes)")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise self._refuse(413, "body_too_large", f"the body is larger than {limit} bytes "
                               "(server.max_body_bytes)") from exc
        encoding = request.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip" or request.query.get("gzip") == "1":
            try:
                return gunzip_capped(body, self.settings.server.max_decompressed_bytes)
            except HttpError as exc:
                self.metrics.refused.labels(status=str(exc.status), reason=exc.code).inc()
                raise
        if encoding not in ("", "identity"):
            raise self._refuse(415, "unsupported_encoding", f"Content-Encoding {encoding[:40]!r} is not "
                               "accepted; use gzip or none")
        return body

    def _country(self, request: web.Request) -> str:
        header = self.settings.privacy.country_header
        if not header:
            return ""
        value = request.headers.get(header, "").upper()
        return value if _COUNTRY.fullmatch(value) else ""

    def _count_rejects(self, project_id: str, rejected: list[Rejected], now: float) -> None:
        for r in rejected:
            self.metrics.rejected.labels(reason=r.code).inc()
        self.pipeline.reject([
            DeadLetter(now, project_id, "ingest", r.reason, r.raw.decode("utf-8", "replace")[:65536])
            for r in rejected
        ])


def _bucket(rps: float, burst: float) -> TokenBucketLimiter | None:
    """A token bucket, or None when its rate is 0 (off); a burst below one request is raised to one."""
    return TokenBucketLimiter(rps, max(1.0, burst or rps)) if rps > 0 else None


def cors_headers(origin: str | None, *, preflight: bool = False) -> dict[str, str]:
    """CORS headers that echo an allowed origin (never `*`) and let the SDK read Retry-After."""
    if not origin:
        return {}
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin", **CORS_HEADERS}
    if preflight:
        headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        headers["Access-Control-Allow-Headers"] = "Content-Type, Content-Encoding, X-Obsd-Key"
        headers["Access-Control-Max-Age"] = "86400"
    return headers

