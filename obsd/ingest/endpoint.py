"""POST /v1/events: size-capped read → gunzip → decode → key → origin → rate limit → rows → pipeline."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from aiohttp import web

from obsd.httperrors import HttpError, json_response
from obsd.ingest.accept import Acceptor
from obsd.ingest.body import inflate, read_capped
from obsd.ingest.cors import cors_headers
from obsd.ingest.enrich import Client, RowEncoder
from obsd.ingest.projects import Project, Projects
from obsd.ingest.rejects import rejected_letter
from obsd.ingest.wire import WireError
from obsd.ops.metrics import Metrics
from obsd.pipeline.batch_ids import fingerprint
from obsd.privacy.clientip import ClientIpResolver
from obsd.privacy.ratelimit import TokenBucketLimiter, client_key
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import RateLimitSettings, Settings

_ALLOWED_TYPES = frozenset({"", "text/plain", "application/json"})
_COUNTRY = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Everything a request needs from the configuration, built once per (re)load and swapped whole:
    a request takes the snapshot in force when it starts and uses only that one to its end."""

    settings: Settings
    projects: Projects
    ips: ClientIpResolver
    encoder: RowEncoder
    project_limit: TokenBucketLimiter | None
    ip_limit: TokenBucketLimiter | None


class EventsEndpoint:
    """The ingestion endpoint and its per-request checks."""

    def __init__(self, settings: Settings, acceptor: Acceptor, metrics: Metrics, visitors: VisitorHasher) -> None:
        self.acceptor = acceptor
        self.metrics = metrics
        self.visitors = visitors
        self.config: IngestConfig | None = None
        self.apply(settings)

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        assert self.config is not None
        return self.config.settings

    @property
    def encoder(self) -> RowEncoder:
        """The row encoder in force (the one owner of the salts hashes for every encoder)."""
        assert self.config is not None
        return self.config.encoder

    def apply(self, settings: Settings) -> None:
        """Take new projects, keys, origins, proxies, limits, privacy rules and rate limits (start and
        reload). A rate-limit bucket whose rate, burst and key rule did not change keeps its state."""
        old = self.config
        rl = settings.rate_limit
        self.config = IngestConfig(
            settings=settings, projects=Projects(settings.projects),
            ips=ClientIpResolver(settings.server.trusted_proxies), encoder=RowEncoder(settings, self.visitors),
            project_limit=_keep_or_new(old.project_limit if old else None, old.settings.rate_limit if old else None,
                                       rl, "project"),
            ip_limit=_keep_or_new(old.ip_limit if old else None, old.settings.rate_limit if old else None, rl, "ip"),
        )

    async def preflight(self, request: web.Request) -> web.Response:
        """Answer CORS preflight for origins that some project allows."""
        cfg = self.config
        assert cfg is not None
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
        assert cfg is not None
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
        ip = cfg.ips.resolve(request.remote, request.headers.get("X-Forwarded-For"))
        self._rate_limit(cfg, project.id, ip)
        server = cfg.settings.server
        body = await read_capped(request, server.max_body_bytes, "server.max_body_bytes")
        body = await inflate(request, body, server.max_decompressed_bytes)
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
        client = Client(ip, request.headers.get("User-Agent", "")[:512], _country(request, cfg.settings))
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

    @staticmethod
    def _rate_limit(cfg: IngestConfig, project_id: str, ip: str) -> None:
        ip_key = client_key(ip, cfg.settings.rate_limit.ipv6_prefix)
        for limiter, key, what in ((cfg.project_limit, project_id, "project"), (cfg.ip_limit, ip_key, "client")):
            if limiter is None:
                continue
            wait = limiter.take(key)
            if wait > 0:
                raise HttpError(429, "rate_limited", f"too many requests for this {what}; retry after "
                                f"{max(1, round(wait))} s", retry_after=max(1, round(wait + 0.499)))


def _country(request: web.Request, settings: Settings) -> str:
    header = settings.privacy.country_header
    if not header:
        return ""
    value = request.headers.get(header, "").upper()
    return value if _COUNTRY.fullmatch(value) else ""


def _rule(rl: RateLimitSettings, which: str) -> tuple[float, float, int]:
    if which == "project":
        return rl.per_project_rps, rl.per_project_burst, 0
    return rl.per_ip_rps, rl.per_ip_burst, rl.ipv6_prefix


def _keep_or_new(old: TokenBucketLimiter | None, old_rl: RateLimitSettings | None, rl: RateLimitSettings,
                 which: str) -> TokenBucketLimiter | None:
    """The old bucket set when its rule is unchanged (a reload keeps who owes what), else a new one."""
    if old_rl is not None and _rule(old_rl, which) == _rule(rl, which):
        return old
    rps, burst, _ = _rule(rl, which)
    return _bucket(rps, burst)


def _bucket(rps: float, burst: float) -> TokenBucketLimiter | None:
    """A token bucket, or None when its rate is 0 (off); a burst below one request is raised to one."""
    return TokenBucketLimiter(rps, max(1.0, burst or rps)) if rps > 0 else None


