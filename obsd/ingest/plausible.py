"""POST /api/event: Plausible's Events API, so Plausible's tracker (script tag or npm) can send to obsd.

The project is found by the event's domain (`[[projects]] domains`), or by obsd's write key when
the endpoint URL carries one (`?key=`). From there the event takes the same path as `/v1/events`:
origin policy, rate limits, scrubbing, visitor hash, bot rules, `Acceptor`. Plausible answers
`202 ok`; so does obsd.
"""

from __future__ import annotations

import time

import msgspec
from aiohttp import web

from obsd.httperrors import HttpError
from obsd.ingest.accept import Acceptor
from obsd.ingest.config import IngestConfig, IngestRoute
from obsd.ingest.cors import cors_headers
from obsd.ingest.enrich import Client
from obsd.ingest.plausible_wire import PlausibleEvent, parse_event
from obsd.ingest.projects import Project
from obsd.ingest.rejects import rejected_letter
from obsd.ingest.visits import Visits
from obsd.ingest.wire import Context, Decoded, Envelope, Sdk, WireError
from obsd.ops.metrics import Metrics

PROTOCOL = "plausible"
ROUTE = "/api/event"
# The tracker sends text/plain; Plausible's server reads any body as JSON, so curl's default form type is
# taken too. Types that cannot be a JSON body (multipart, images, …) are refused with the reason.
_ALLOWED_TYPES = frozenset({"", "text/plain", "application/json", "application/x-www-form-urlencoded"})


class PlausibleEndpoint(IngestRoute):
    """The Plausible Events API handler."""

    def __init__(self, config: IngestConfig, acceptor: Acceptor, metrics: Metrics) -> None:
        super().__init__(config, acceptor, metrics)
        self.visits = Visits()

    def routes(self, app: web.Application) -> None:
        """Register POST and OPTIONS /api/event."""
        app.router.add_post(ROUTE, self.post)
        app.router.add_route("OPTIONS", ROUTE, self.preflight)

    async def preflight(self, request: web.Request) -> web.Response:
        """CORS preflight (the tracker itself sends a simple request and never asks)."""
        origin = request.headers.get("Origin")
        key = request.query.get("key")
        projects = self.config.projects
        project = projects.by_key.get(key) if key else None
        policy = project.origins if project else projects.any_origin
        if not origin or not policy.allows(origin):
            exc = HttpError(403, "origin_not_allowed", f"origin {origin!r} is not in allowed_origins")
            self.acceptor.refused(exc, PROTOCOL)
            raise exc
        return web.Response(status=204, headers=cors_headers(origin, preflight=True))

    async def post(self, request: web.Request) -> web.Response:
        """Take one tracker event; 202 `ok` once it is durable, else the reason."""
        headers: dict[str, str] = {}
        try:
            return await self._post(request, self.config, headers)
        except HttpError as exc:
            self.acceptor.refused(exc, PROTOCOL)
            exc.extra_headers.update(headers)  # CORS only once a project allowed the origin
            raise

    async def _post(self, request: web.Request, cfg: IngestConfig, headers: dict[str, str]) -> web.Response:
        ctype = request.content_type if request.headers.get("Content-Type") else ""
        if ctype not in _ALLOWED_TYPES:
            raise HttpError(415, "unsupported_media_type",
                            f"Content-Type {ctype[:100]!r} is not accepted; send text/plain or application/json")
        gate = cfg.gate
        body = await gate.body(request)
        now = time.time()
        try:
            event = parse_event(body, now, reject_duplicate_keys=cfg.settings.limits.reject_duplicate_keys)
        except WireError as exc:
            raise HttpError(400, exc.code, str(exc)) from exc
        origin = request.headers.get("Origin")
        projects = self._projects(request, cfg, event)
        allowed = [p for p in projects if p.origins.allows(origin)]
        if not allowed:
            raise HttpError(403, "origin_not_allowed", f"origin {(origin or '')[:200]!r} is not in allowed_origins "
                            f"of project {projects[0].id!r}")
        if origin:
            headers.update(cors_headers(origin))
        ip = gate.client_ip(request)
        for i, p in enumerate(allowed):  # each site's bucket; the client's once per request
            gate.rate_limit(p.id, ip, client=i == 0)
        client = gate.client(request, ip)
        rows, dropped = self._encode(cfg, allowed, event, client, now)
        if rows:
            await self.acceptor.accept(b"".join(rows), len(rows), protocol=PROTOCOL)
        self.metrics.requests.labels(route=ROUTE, status="202").inc()
        if dropped:
            # Plausible's own answer for events it does not record (bots, here): still 202 ok.
            headers["X-Plausible-Dropped"] = str(dropped)
        return web.Response(status=202, text="ok", headers=headers)

    @staticmethod
    def _projects(request: web.Request, cfg: IngestConfig, event: PlausibleEvent) -> list[Project]:
        key = request.headers.get("X-Obsd-Key") or request.query.get("key", "")
        if key:
            project = cfg.projects.by_key.get(key)
            if project is None:
                raise HttpError(401, "invalid_key", "the write key is not known to this obsd; check the project's "
                                "write_key in obsd.toml")
            return [project]
        by_domain = cfg.projects.by_domain
        found = [by_domain[d] for d in event.domains if d in by_domain]
        if not found:
            names = ", ".join(event.domains) or "(none)"
            raise HttpError(400, "unknown_domain", f"no project has the domain {names[:200]}; add it to domains of a "
                            "[[projects]] table in obsd.toml, or put ?key=<write_key> on the endpoint URL")
        return list(dict.fromkeys(found))  # several domains may name one project: record it once

    def _encode(self, cfg: IngestConfig, projects: list[Project], event: PlausibleEvent, client: Client,
                now: float) -> tuple[list[bytes], int]:
        """One row per project (a multi-site `d` feeds each site, as in Plausible); bots dropped are counted."""
        rows: list[bytes] = []
        dropped = 0
        for p in projects:
            encoder = cfg.encoder
            visitor = encoder.visitors.visitor_id(p.id, client.ip, client.user_agent)
            sid, start, entry = self.visits.visit(p.id, visitor, now, pageview=event.event.type == "pageview")
            # The server-side visit knows when it began and which pageview entered it, as obsd's SDK does.
            envelope = Envelope(events=[msgspec.structs.replace(event.event, entry=entry)],
                                sdk=Sdk("plausible-tracker", event.version or None), session_id=sid,
                                session_start=start * 1000, context=Context(referrer=event.referrer))
            try:
                enc = encoder.encode(p.id, Decoded(envelope, None, []), client, now, protocol=PROTOCOL,
                                          keep_fragment=event.hash_mode)
            except WireError as exc:
                raise HttpError(400, exc.code, str(exc)) from exc
            if enc.accepted:
                rows.append(enc.data)
            for r in enc.rejected:
                self.acceptor.reject([r.code], [rejected_letter(now, p.id, PROTOCOL, r.reason, r.raw, encoder.urls,
                                                                envelope.session_id)], PROTOCOL)
                if r.code != "bot":
                    raise HttpError(400, r.code, r.reason.removeprefix("event 0: "))
                dropped += 1
        return rows, dropped
