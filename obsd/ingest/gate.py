"""The per-request steps every ingestion protocol shares: who the client is, rate limits, the body.

`/v1/events`, the Plausible Events API and the Sentry endpoints all call these, so a limit, a
trusted-proxy rule or a body cap is one rule whatever protocol a request speaks. A gate belongs to
one configuration (obsd.ingest.config) and never changes; a reload makes a new one, which keeps
each rate-limit bucket whose rule did not change.
"""

from __future__ import annotations

import re

from aiohttp import web

from obsd.httperrors import HttpError
from obsd.ingest.body import inflate, read_capped
from obsd.ingest.enrich import Client
from obsd.privacy.clientip import ClientIpResolver
from obsd.privacy.ratelimit import TokenBucketLimiter, client_key
from obsd.settings import RateLimitSettings, Settings

_COUNTRY = re.compile(r"[A-Z]{2}")


class RateLimited(HttpError):
    """429: a token bucket is empty; `scope` says whose (the project's or the client's)."""

    def __init__(self, scope: str, wait: float) -> None:
        super().__init__(429, "rate_limited", f"too many requests for this {scope}; retry after "
                         f"{max(1, round(wait))} s", retry_after=max(1, round(wait + 0.499)))
        self.scope = scope
        self.wait_s = max(1, round(wait + 0.499))


class RequestGate:
    """Client address (behind trusted proxies), country header, rate limits and the capped body."""

    def __init__(self, settings: Settings, previous: RequestGate | None = None) -> None:
        self.settings = settings
        self.ips = ClientIpResolver(settings.server.trusted_proxies)
        rl, old = settings.rate_limit, previous.settings.rate_limit if previous else None
        self.project_limit: TokenBucketLimiter | None = _keep_or_new(
            previous.project_limit if previous else None, old, rl, "project")
        self.ip_limit: TokenBucketLimiter | None = _keep_or_new(previous.ip_limit if previous else None, old, rl, "ip")

    def client_ip(self, request: web.Request) -> str:
        """The client's address: the peer, or behind trusted proxies the nearest untrusted X-Forwarded-For hop."""
        return self.ips.resolve(request.remote, request.headers.get("X-Forwarded-For"))

    def client(self, request: web.Request, ip: str, user_agent: str | None = None, *,
               server_side: bool = False) -> Client:
        """What the request tells about the visitor (the User-Agent header unless another is given)."""
        ua = request.headers.get("User-Agent", "") if user_agent is None else user_agent
        return Client(ip, ua[:512], self.country(request), server_side=server_side)

    def rate_limit(self, project_id: str, ip: str, *, client: bool = True) -> None:
        """Take one request from the project's and (unless `client` is false: a request already counted for
        another project) the client's bucket; raise RateLimited when one is empty."""
        if self.project_limit is not None and (wait := self.project_limit.take(project_id)) > 0:
            raise RateLimited("project", wait)
        # IPv6 clients by network (/64); the key is worked out only when a client limit applies.
        if client and self.ip_limit is not None and (
                wait := self.ip_limit.take(client_key(ip, self.settings.rate_limit.ipv6_prefix))) > 0:
            raise RateLimited("client", wait)

    def country(self, request: web.Request) -> str:
        """The visitor's country from the configured CDN header, when it is a two-letter code."""
        header = self.settings.privacy.country_header
        if not header:
            return ""
        value = request.headers.get(header, "").upper()
        return value if _COUNTRY.fullmatch(value) else ""

    async def body(self, request: web.Request) -> bytes:
        """The body: read up to server.max_body_bytes, then decompressed up to server.max_decompressed_bytes."""
        server = self.settings.server
        raw = await read_capped(request, server.max_body_bytes, "server.max_body_bytes")
        return await inflate(request, raw, server.max_decompressed_bytes)


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
