"""Safe by default: what `obsd serve` refuses to start (or reload) with, and what `obsd config check`
warns about on a server that faces the internet."""

from __future__ import annotations

import ipaddress

from obsd.errors import ConfigError
from obsd.settings import Settings, parse_listen

MIN_WRITE_KEY = 16
KEY_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(24))' makes one"


def refusals(s: Settings) -> list[str]:
    """Why these settings must not serve: the example's placeholder key, write keys too short to guess."""
    out: list[str] = []
    for i, p in enumerate(s.projects):
        # The write key obsd.toml.example ships with (change_me_…): a server that uses it accepts anyone's events.
        if p.write_key.startswith(("change_me", "change-me")):
            out.append(f"projects[{i}].write_key for {p.id!r} is the example's placeholder; set a random key of "
                       f"at least {MIN_WRITE_KEY} characters ({KEY_HINT})")
        elif len(p.write_key) < MIN_WRITE_KEY:
            out.append(f"projects[{i}].write_key for {p.id!r} has {len(p.write_key)} characters; use at least "
                       f"{MIN_WRITE_KEY} ({KEY_HINT})")
    return out


def refuse_unsafe(s: Settings) -> None:
    """Raise ConfigError naming every refusal (start and reload)."""
    problems = refusals(s)
    if problems:
        raise ConfigError("; ".join(problems))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def risks(s: Settings) -> list[str]:
    """What is risky if this server faces the internet (directly or behind a proxy), with the fix."""
    out: list[str] = []
    rl = s.rate_limit
    if rl.per_ip_rps <= 0 and rl.per_project_rps <= 0:
        out.append("rate limits are off (rate_limit.per_ip_rps and per_project_rps are 0): one client can fill "
                   "the store; obsd.toml.example has values the SDK never reaches")
    elif rl.per_ip_rps <= 0:
        out.append("there is no per-client rate limit (rate_limit.per_ip_rps = 0): one client can use up the "
                   "whole project's budget")
    if s.clickhouse.retention_days <= 0:
        out.append("events are kept forever (clickhouse.retention_days = 0); set a retention that matches "
                   "your privacy notice")
    host, _ = parse_listen(s.server.listen)
    if s.server.admin_allow_remote and not s.server.tls_cert:
        out.append("admin endpoints answer remote clients over plain HTTP (server.admin_allow_remote = true, "
                   "no server.tls_cert): the admin token travels in clear unless a TLS proxy is in front")
    if s.server.admin_allow_remote and not s.server.metrics_token:
        out.append("/metrics answers remote clients without a token (server.admin_allow_remote = true); set "
                   "server.metrics_token")
    if not _loopback(host) and not s.server.tls_cert:
        out.append(f"obsd listens on {s.server.listen} without TLS; serve it behind a TLS reverse proxy "
                   "(docs/security.md) or set server.tls_cert and tls_key")
    for p in s.projects:
        if "*" in (o.strip() for o in p.allowed_origins):
            out.append(f"project {p.id!r} allows every origin (\"*\"): any site can send events with its key")
    return out
