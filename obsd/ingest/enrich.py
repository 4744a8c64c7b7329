"""Enrichment: validated events plus request context become `events` rows, encoded once as NDJSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

import msgspec

from obsd.errors import ConfigError
from obsd.ingest.channels import classify
from obsd.ingest.entries import SessionEntries
from obsd.ingest.wire import Decoded, Envelope, Event, Rejected, Validator, WireDecoder
from obsd.privacy.geoip import NOWHERE, GeoIp, Place
from obsd.privacy.scrub import UrlScrubber, scrub_props, scrub_text
from obsd.privacy.useragent import UserAgentInfo, parse_user_agent
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import Settings
from obsd.store.rows import Common, EventPart


@dataclass(frozen=True, slots=True)
class Client:
    """What the request tells about the visitor: used for the visitor hash and device, never stored raw."""

    ip: str
    user_agent: str
    country: str = ""
    # A server-side SDK sent this for a visitor it does not identify: no visitor id, and no user agent
    # does not make it a bot (the UA, when there is one, is the visitor's, not the sender's).
    server_side: bool = False
    region: str = ""  # imports only: a location the exported data already had (no GeoIP database needed)
    city: str = ""


@dataclass(frozen=True, slots=True)
class Encoded:
    """The rows of one request, ready for the pipeline, and the events refused."""

    data: bytes
    accepted: int
    rejected: list[Rejected]


# Who a server-side SDK's error happened to when it does not say: no browser, no bot.
_UNKNOWN_SERVER = UserAgentInfo("", "", "", "", "other", False)
_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_NO_UTM = ("",) * len(_UTM)


@lru_cache(maxsize=8192)
def _utm(url: str) -> tuple[str, ...]:
    """The five UTM parameters of a (scrubbed) URL, each capped at 200 characters."""
    if "utm_" not in url:
        return _NO_UTM
    q = dict(parse_qsl(urlsplit(url).query))
    return tuple(q.get(k, "")[:200] for k in _UTM)


def _clamp16(v: int) -> int:
    return v if 0 <= v <= 65535 else 0


# A visit's start as the SDK tells it may lie at most this long before the envelope's first event.
MAX_VISIT_S = 86_400


def _open_geoip(path: str) -> GeoIp:
    try:
        return GeoIp(path)
    except (OSError, ValueError, RuntimeError) as exc:  # maxminddb's InvalidDatabaseError is a RuntimeError
        raise ConfigError(f"privacy.geoip_db = {path!r} cannot be read as a MaxMind database ({exc}); give a "
                          ".mmdb file such as GeoLite2-City.mmdb, or leave it empty") from exc


class RowEncoder:
    """Turns decoded batches into rows: validation, URL and PII scrubbing, visitor hash, device."""

    def __init__(self, settings: Settings, visitors: VisitorHasher, *, entries: SessionEntries | None = None,
                 geoip: GeoIp | None = None) -> None:
        """`entries` and `geoip` may be shared with the encoder of a previous configuration (a reload)."""
        self.settings = settings
        self.urls = UrlScrubber(settings.privacy.allowed_query_params)
        self.visitors = visitors
        self.entries = entries if entries is not None else SessionEntries()
        db = settings.privacy.geoip_db
        self.geoip = geoip if geoip is not None and geoip.path == db else (_open_geoip(db) if db else None)
        self.drop_bots = settings.privacy.drop_bots
        encoder = msgspec.json.Encoder()
        self._encode_lines = encoder.encode_lines
        self._encode = encoder.encode
        # The decoder checks some limits while parsing and the validator relies on that: one set of limits.
        self.decoder = WireDecoder(settings.limits)
        self.validator = Validator(settings.limits)
        self.max_stack = settings.limits.max_stack_length

    def encode(self, project_id: str, decoded: Decoded, client: Client, now: float, *, protocol: str = "",
               keep_fragment: bool = False) -> Encoded:
        """Validate and enrich every event of a batch and encode the good ones as NDJSON rows.

        `protocol` names the wire the events came by ('' is obsd's own); `keep_fragment` keeps a URL's
        #fragment in the path, for sites whose routes live there (Plausible's hash mode)."""
        env = decoded.envelope
        self.validator.check_envelope(env)
        rejected = list(decoded.rejected)
        ctx = env.context
        ua: UserAgentInfo = (_UNKNOWN_SERVER if client.server_side and not client.user_agent
                             else parse_user_agent(client.user_agent))
        if ua.is_bot and self.drop_bots:
            reason = "bot traffic is dropped (privacy.drop_bots = true)"
            rejected += [Rejected(decoded.index(i), "bot", reason) for i in range(len(env.events))]
            return Encoded(b"", 0, sorted(rejected, key=lambda r: r.index))
        # A beacon sent just before midnight UTC still counts toward that day's visitor (never the future).
        sent = min(now, env.sent_at / 1000) if env.sent_at and env.sent_at > 0 else None
        visitor = 0 if client.server_side else self.visitors.visitor_id(project_id, client.ip, client.user_agent,
                                                                         at=sent)
        split = self._split_keeping_fragment if keep_fragment else self.urls.split
        base_url, host, path = split(ctx.url) if ctx.url else ("", "", "")
        base_ref, ref_host, _ = self.urls.split(ctx.referrer) if ctx.referrer else ("", "", "")
        base_title = scrub_text(ctx.title) if ctx.title else ""
        start, entry_index = self._visit(project_id, env)
        country, region, city = self._place(client)
        screen = ctx.screen or (0, 0)
        viewport = ctx.viewport or (0, 0)
        sdk = f"{env.sdk.name}/{env.sdk.version or ''}" if env.sdk.name else ""
        common = Common(
            project_id=project_id, received_at=now, session_id=env.session_id or "", visitor_id=visitor,
            browser=ua.browser, browser_version=ua.browser_version, os=ua.os, os_version=ua.os_version,
            device_type=ua.device_type, is_bot=ua.is_bot, country=country, region=region, city=city,
            session_start=start, language=(ctx.language or "")[:35],
            timezone=(ctx.timezone or "")[:64], screen_width=_clamp16(screen[0]), screen_height=_clamp16(screen[1]),
            viewport_width=_clamp16(viewport[0]), viewport_height=_clamp16(viewport[1]),
            environment=(env.environment or "")[:64], release=(env.release or "")[:128], sdk=sdk[:64],
            protocol=protocol,
        )
        rows: list[EventPart] = []
        check = self.validator.check
        for i, e in enumerate(env.events):
            problem = check(e, now)
            if problem is not None:
                rejected.append(Rejected(decoded.index(i), problem[0], f"event {decoded.index(i)}: {problem[1]}",
                                         msgspec.json.encode(e)))
                continue
            row = self._part(e, base_url, host, path, base_ref, ref_host, base_title, split)
            if e.type == "pageview":
                row.is_entry = bool(e.entry) if entry_index is None else i == entry_index
                source, row.channel = classify(e.referrer or ctx.referrer or "", e.url or ctx.url or "", row.hostname)
                # Read from the raw URL (its click ids and `ref` are dropped when stored), so scrubbed like it.
                row.source = scrub_text(source) if source else ""
            rows.append(row)
        if decoded.indexes is not None:
            rejected.sort(key=lambda r: r.index)
        data = b""
        if rows:
            # JSON strings cannot hold a raw newline, so "}\n" only ever ends a line: one C-level replace
            # appends the shared columns to every row.
            tail = b"," + self._encode(common)[1:] + b"\n"
            data = self._encode_lines(rows).replace(b"}\n", tail)
        return Encoded(data, len(rows), rejected)

    def _visit(self, project_id: str, env: Envelope) -> tuple[int, int | None]:
        """When the envelope's visit began (Unix seconds), and which event is its entry pageview: None when
        the SDK flags entries itself, -1 when none of these events is."""
        if not env.events:
            return 0, -1
        first = min(e.ts for e in env.events) / 1000
        if env.session_start is not None:  # SDK 0.2+: its own start and `entry` flags, start clamped
            return int(max(first - MAX_VISIT_S, min(env.session_start / 1000, first))), None
        if not env.session_id:
            return int(first), -1
        pageview = next((i for i, e in enumerate(env.events) if e.type == "pageview"), -1)
        last = max(e.ts for e in env.events) / 1000
        start, entry = self.entries.visit(project_id, env.session_id, first, last, pageview >= 0)
        return int(start), pageview if entry else -1

    def _place(self, client: Client) -> Place:
        """Country from the CDN header, else from the GeoIP database, with region and city when it knows them.
        A server-side sender's address is its own, not the visitor's: no lookup then."""
        if self.geoip is None or client.server_side or not client.ip:
            return (client.country, client.region, client.city) if client.country else NOWHERE
        place = self.geoip.place(client.ip)
        if client.country and place[0] != client.country:
            return client.country, "", ""  # the header wins; the database's region is not of that country
        return place

    def _split_keeping_fragment(self, url: str) -> tuple[str, str, str]:
        scrubbed, host, path = self.urls.split(url)
        _, hash_, fragment = url.partition("#")
        if not hash_ or not host:
            return scrubbed, host, path
        fragment = scrub_text(fragment.split("?", 1)[0])  # a hash route's own query is not allowlisted
        return f"{scrubbed}#{fragment}", host, f"{path}#{fragment}"

    def _part(self, e: Event, url: str, host: str, path: str, referrer: str, ref_host: str,
              title: str, split: Callable[[str], tuple[str, str, str]]) -> EventPart:
        if e.url:
            url, host, path = split(e.url)
        if e.referrer:
            referrer, ref_host, _ = self.urls.split(e.referrer)
        utm = _utm(url)
        t = e.type
        row = EventPart(
            event_id=e.id, type=t, ts=e.ts / 1000, name=e.name or "", url=url, hostname=host, path=path,
            referrer=referrer, referrer_host=ref_host, title=scrub_text(e.title) if e.title else title,
            utm_source=utm[0], utm_medium=utm[1], utm_campaign=utm[2], utm_content=utm[3], utm_term=utm[4],
        )
        if t == "web_vital":
            row.value = e.value or 0.0
            row.rating = e.rating or ""
        elif t == "scroll":
            row.value = e.depth or 0.0
        elif t == "click":
            row.selector = scrub_text(e.selector) if e.selector else ""
            row.tag = (e.tag or "")[:32]
            row.href = self.urls.scrub(e.href) if e.href else ""
        elif t == "error":
            row.error_message = scrub_text(e.message or "")
            row.error_stack = scrub_text((e.stack or "")[: self.max_stack])
            row.error_source = self.urls.scrub(e.source) if e.source else ""
            row.error_line = e.line if e.line and 0 < e.line < 2**32 else 0
            row.error_col = e.col if e.col and 0 < e.col < 2**32 else 0
        elif e.value is not None:
            row.value = e.value
        if e.props:
            row.props = msgspec.json.encode(scrub_props(e.props)).decode()
        return row
