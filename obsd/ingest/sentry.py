"""Sentry ingestion: POST /api/<sentry_id>/envelope/ and /store/, so a Sentry DSN can point at obsd unchanged.

A DSN `https://<write_key>@obsd.example/<sentry_id>` names the project twice: by its write key
(the DSN's public key) and by `[[projects]] sentry_id`. Errors become obsd error rows, session
updates become session rows for the release-health rollup, client reports are counted, and every
other item type (transactions, replays, attachments, logs, …) is counted and skipped. Rows take
the same path as `/v1/events`: origin policy, rate limits, scrubbing, bot rules, `Acceptor`.
Answers are Sentry's: `200 {"id": …}`; `429` with `Retry-After` and `X-Sentry-Rate-Limits` when
rate limited or under backpressure (Sentry SDKs back off on them); `413` when too large.
"""

from __future__ import annotations

import base64
import binascii
import time

from aiohttp import web

from obsd.httperrors import HttpError, json_response
from obsd.ingest.body import inflate_capped
from obsd.ingest.config import IngestConfig, IngestRoute
from obsd.ingest.cors import cors_headers
from obsd.ingest.enrich import Client
from obsd.ingest.gate import RateLimited
from obsd.ingest.projects import Project
from obsd.ingest.rejects import rejected_letter
from obsd.ingest.sentry_envelope import Envelope as SentryEnvelope
from obsd.ingest.sentry_envelope import Item, SentryAuth, parse_envelope, request_auth
from obsd.ingest.sentry_event import read_event, seconds
from obsd.ingest.sentry_items import read_client_report, read_session, read_sessions
from obsd.ingest.wire import Decoded, Envelope, Sdk, WireError
from obsd.settings import Settings

PROTOCOL = "sentry"
MAX_EVENT_ITEM_BYTES = 1024 * 1024  # Relay's limit for one event
EXPOSE = "X-Sentry-Rate-Limits, X-Sentry-Error, Retry-After"
ALLOW_HEADERS = ("X-Sentry-Auth, X-Requested-With, Origin, Referer, Accept, Content-Type, Authentication, "
                 "Authorization, Content-Encoding")
# What SDKs send, and what Relay also takes (curl's default form type, whose body is still the envelope).
_TYPES = frozenset({"", "text/plain", "application/x-sentry-envelope", "application/octet-stream", "application/json",
                    "application/x-www-form-urlencoded"})
# Item types Sentry defines; others are counted as "other" so a sender cannot grow the metric's labels.
KNOWN_ITEMS = frozenset({"event", "transaction", "security", "attachment", "form_data", "raw_security", "nel",
                         "unreal_report", "user_report", "feedback", "session", "sessions", "statsd", "metric_buckets",
                         "client_report", "profile", "replay_event", "replay_recording", "replay_video", "check_in",
                         "log", "trace_metric", "span", "profile_chunk", "integration"})


class SentryEndpoint(IngestRoute):
    """The Sentry envelope and store handlers."""

    def routes(self, app: web.Application) -> None:
        """POST and OPTIONS on /api/<sentry_id>/envelope/ and /store/ (with or without the final slash)."""
        for kind, handler in (("envelope", self.envelope), ("store", self.store)):
            for path in (f"/api/{{sentry_id:\\d+}}/{kind}/", f"/api/{{sentry_id:\\d+}}/{kind}"):
                app.router.add_post(path, handler)
                app.router.add_route("OPTIONS", path, self.preflight)

    async def preflight(self, request: web.Request) -> web.Response:
        """CORS preflight for origins the DSN's project allows (browsers send a simple request; tunnels may ask)."""
        origin = request.headers.get("Origin")
        project = self.config.projects.by_sentry_id.get(int(request.match_info["sentry_id"]))
        if not origin or project is None or not project.origins.allows(origin):
            exc = HttpError(403, "origin_not_allowed", f"origin {origin!r} is not in allowed_origins")
            self.acceptor.refused(exc, PROTOCOL)
            raise exc
        return web.Response(status=204, headers=cors_headers(origin, preflight=True, expose=EXPOSE,
                                                             allow_headers=ALLOW_HEADERS))

    async def envelope(self, request: web.Request) -> web.Response:
        """An envelope of items (what every current Sentry SDK sends)."""
        return await self._answer(request, store=False)

    async def store(self, request: web.Request) -> web.Response:
        """The legacy store endpoint: one event as JSON (or an envelope, when it says so)."""
        return await self._answer(request, store=True)

    async def _answer(self, request: web.Request, *, store: bool) -> web.Response:
        headers: dict[str, str] = {}
        try:
            return await self._handle(request, self.config, store, headers)
        except HttpError as exc:
            answer = _as_sentry(exc, headers)
            self.acceptor.refused(answer, PROTOCOL)  # counted as answered: backpressure is a 429 here
            if answer is exc:
                raise
            raise answer from exc

    @staticmethod
    def _project(cfg: IngestConfig, auth: SentryAuth, sentry_id: int) -> Project:
        project = cfg.projects.by_key.get(auth.key)
        if project is None:
            raise HttpError(401, "invalid_key", "the DSN's key is not a write key of this obsd; use "
                            "https://<write_key>@<host>/<sentry_id> with a project's write_key")
        if not project.sentry_id:
            raise HttpError(403, "sentry_disabled", f"project {project.id!r} takes no Sentry events; set sentry_id = "
                            f"{sentry_id} in its [[projects]] table")
        if project.sentry_id != sentry_id or (auth.dsn_project and auth.dsn_project != str(sentry_id)):
            raise HttpError(403, "wrong_project", f"the DSN's project id {sentry_id} is not that of the key's project "
                            f"{project.id!r}; use the DSN https://<write_key>@<host>/{project.sentry_id}")
        return project

    def _admit(self, request: web.Request, cfg: IngestConfig, auth: SentryAuth, ip: str,
               headers: dict[str, str]) -> Project:
        """The project, once its origin policy allows the request and the rate limits have room."""
        project = self._project(cfg, auth, int(request.match_info["sentry_id"]))
        origin = request.headers.get("Origin")
        if origin is not None:
            if not project.origins.allows(origin):
                raise HttpError(403, "origin_not_allowed",
                                f"origin {origin[:200]!r} is not in allowed_origins of project {project.id!r}")
            headers.update(cors_headers(origin, expose=EXPOSE))
        cfg.gate.rate_limit(project.id, ip)
        return project

    async def _handle(self, request: web.Request, cfg: IngestConfig, store: bool,
                      headers: dict[str, str]) -> web.Response:
        ctype = request.content_type if request.headers.get("Content-Type") else ""
        if ctype not in _TYPES:
            raise HttpError(415, "unsupported_media_type", f"Content-Type {ctype[:100]!r} is not accepted; send "
                            "application/x-sentry-envelope, text/plain or none")
        ip = cfg.gate.client_ip(request)
        try:
            auth = request_auth(request.headers, request.query)
        except WireError as exc:
            raise HttpError(400, exc.code, str(exc)) from exc
        project = self._admit(request, cfg, auth, ip, headers) if auth else None
        body = await cfg.gate.body(request)
        try:
            if store and ctype != "application/x-sentry-envelope":
                envelope = SentryEnvelope({}, [Item({"type": "event"}, _store_body(body, cfg.settings))])
            else:
                envelope = parse_envelope(body)
            if project is None or "dsn" in envelope.headers:
                dsn_auth = request_auth(request.headers, request.query, envelope.headers.get("dsn"))
                if dsn_auth is None:
                    raise HttpError(401, "missing_auth", "no Sentry credentials: send the DSN's key as sentry_key "
                                    "(query string or X-Sentry-Auth) or a dsn in the envelope header")
                if project is None:
                    project = self._admit(request, cfg, dsn_auth, ip, headers)
                else:  # the envelope's dsn must name the same project as the request's credentials
                    self._project(cfg, dsn_auth, int(request.match_info["sentry_id"]))
                auth = auth or dsn_auth
        except WireError as exc:
            raise HttpError(400, exc.code, str(exc)) from exc
        event_id = await self._items(request, cfg, project, envelope, ip, auth.client if auth else "")
        self.metrics.requests.labels(route="/api/sentry", status="200").inc()
        return json_response({"id": event_id} if event_id else {}, headers=headers)

    async def _items(self, request: web.Request, cfg: IngestConfig, project: Project, envelope: SentryEnvelope,
                     ip: str, sentry_client: str) -> str:
        """Store what each item holds; the event id to answer with ('' when none)."""
        now = time.time()
        sent_at = seconds(envelope.headers.get("sent_at"))
        header_sdk = envelope.headers.get("sdk")
        if isinstance(header_sdk, dict):
            sdk = Sdk(str(header_sdk.get("name") or "") or None, str(header_sdk.get("version") or "") or None)
        else:  # e.g. sentry.python/2.75.0 from X-Sentry-Auth's sentry_client
            name, _, version = sentry_client.partition("/")
            sdk = Sdk(name or None, version or None)
        request_ua = request.headers.get("User-Agent", "")[:512]
        browser = cfg.gate.client(request, ip)
        # A Sentry SDK on a server sends as itself (sentry.python/…): no browser to describe.
        client_for = cfg.gate.client(request, ip, "", server_side=True) if request_ua.startswith("sentry") \
            else browser
        parts: list[bytes] = []
        accepted = refused = 0
        first_problem: HttpError | None = None
        event_id = str(envelope.headers.get("event_id") or "").replace("-", "")
        for item in envelope.items:
            kind = item.type if item.type in KNOWN_ITEMS else "other"
            if kind in ("event", "transaction", "session", "sessions", "client_report") \
                    and len(item.payload) > MAX_EVENT_ITEM_BYTES:
                self.metrics.sentry_items.labels(type=kind, outcome="refused").inc()
                raise HttpError(413, "item_too_large", f"an envelope item of type {kind!r} is {len(item.payload)} "
                                f"bytes; obsd takes at most {MAX_EVENT_ITEM_BYTES} bytes per item")
            try:
                decoded, client = self._read(cfg, item, kind, now, sent_at, request_ua, sdk, browser, client_for)
            except WireError as exc:
                refused += 1
                self.metrics.sentry_items.labels(type=kind, outcome="refused").inc()
                # A Sentry item may hold user fields, headers and IPs anywhere: its dead letter keeps only
                # what it was, never its content.
                summary = f'{{"item": "{kind}", "bytes": {len(item.payload)}}}'.encode()
                self.acceptor.reject([exc.code], [rejected_letter(now, project.id, PROTOCOL, str(exc), summary,
                                                                  cfg.encoder.urls)], PROTOCOL)
                first_problem = first_problem or HttpError(400, exc.code, str(exc))
                continue
            if decoded is None:
                continue
            if kind == "event" and not event_id:
                event_id = decoded.envelope.events[0].id.replace("-", "")
            enc = cfg.encoder.encode(project.id, decoded, client, now, protocol=PROTOCOL)
            self.metrics.sentry_items.labels(type=kind, outcome="stored" if enc.accepted else "refused").inc()
            if enc.rejected:
                refused += len(enc.rejected)
                self.acceptor.reject((r.code for r in enc.rejected), [
                    rejected_letter(now, project.id, PROTOCOL, r.reason, r.raw, cfg.encoder.urls,
                                    decoded.envelope.session_id) for r in enc.rejected], PROTOCOL)
                first_problem = first_problem or HttpError(400, enc.rejected[0].code, enc.rejected[0].reason)
            if enc.accepted:
                parts.append(enc.data)
                accepted += enc.accepted
            limit = cfg.settings.server.max_events_per_batch
            if accepted > limit:
                raise HttpError(413, "too_many_events", f"the envelope makes more than {limit} rows "
                                "(server.max_events_per_batch)")
        if accepted:
            await self.acceptor.accept(b"".join(parts), accepted, protocol=PROTOCOL)
        elif refused and first_problem is not None:
            raise first_problem  # nothing stored and something refused: say why
        return event_id

    def _read(self, cfg: IngestConfig, item: Item, kind: str, now: float, sent_at: float | None, request_ua: str,
              sdk: Sdk, browser: Client, client_for: Client) -> tuple[Decoded | None, Client]:
        """One item as a batch of obsd events and the client to enrich it with; None for items not stored."""
        if kind == "event":
            err = read_event(item.payload, now=now, sent_at=sent_at, request_ua=request_ua,
                             limits=cfg.settings.limits, header_sdk={"name": sdk.name, "version": sdk.version})
            env = Envelope(events=[err.event], sdk=err.sdk, session_id=err.session_id, release=err.release,
                           environment=err.environment)
            if err.server_side:
                return Decoded(env, None, []), Client(browser.ip, (err.user_agent or "")[:512], browser.country,
                                                      server_side=True)
            return Decoded(env, None, []), _seen_by(browser, err.user_agent)
        if kind in ("session", "sessions"):
            env, ua = (read_session if kind == "session" else read_sessions)(item.payload, now, sdk)
            client = client_for if client_for.server_side else _seen_by(browser, ua)
            return (Decoded(env, None, []) if env.events else None), client
        if kind == "client_report":
            for reason, category, n in read_client_report(item.payload):
                self.metrics.sentry_discarded.labels(reason=reason, category=category).inc(n)
            self.metrics.sentry_items.labels(type=kind, outcome="counted").inc()
            return None, client_for
        self.metrics.sentry_items.labels(type=kind, outcome="skipped").inc()
        return None, client_for


def _seen_by(browser: Client, user_agent: str | None) -> Client:
    """The browser as the SDK itself saw it: behind a Sentry `tunnel` the request's User-Agent is the
    tunnel server's, while the event (request.headers) and the session (attrs) carry the browser's."""
    if not user_agent or user_agent == browser.user_agent:
        return browser
    return Client(browser.ip, user_agent[:512], browser.country)


def _store_body(body: bytes, settings: Settings) -> bytes:
    """A store body: JSON, or (very old SDKs) base64 of zlib of JSON."""
    if body.lstrip()[:1] in (b"{", b""):
        return body
    try:
        packed = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise WireError("invalid_event", "the store body is neither JSON nor base64 of zlib-compressed JSON") from None
    try:
        return inflate_capped(packed, settings.server.max_decompressed_bytes)
    except HttpError as exc:
        raise WireError("invalid_event", exc.reason) from exc


def _as_sentry(exc: HttpError, cors: dict[str, str]) -> HttpError:
    """The error as Sentry SDKs read it: backpressure is a 429, limits say how long in X-Sentry-Rate-Limits."""
    if exc.status == 503 and "Retry-After" in exc.extra_headers:
        wait = exc.extra_headers["Retry-After"]
        exc = HttpError(429, exc.code, exc.reason, headers={**exc.extra_headers})
        exc.extra_headers["X-Sentry-Rate-Limits"] = f"{wait}::organization:{exc.code}"
    elif isinstance(exc, RateLimited):
        scope = "project" if exc.scope == "project" else "key"
        exc.extra_headers["X-Sentry-Rate-Limits"] = f"{exc.wait_s}::{scope}:{exc.code}"
    exc.extra_headers.update(cors)
    # SDKs log this header; it must stay within the header character set.
    exc.extra_headers["X-Sentry-Error"] = exc.reason.encode("ascii", "replace").decode()[:500].replace("\n", " ")
    return exc
