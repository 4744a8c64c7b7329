"""Who may use the admin API (queries, purge, import, tail, status), the stats API and /metrics: a token,
and loopback clients only unless server.admin_allow_remote.

"Loopback" means the client, not the TCP peer: behind a reverse proxy on the same host every request
comes from 127.0.0.1, so a request that carries a forwarding header (X-Forwarded-For, X-Real-IP,
Forwarded) naming any address that is not loopback is remote. Believing such a header to refuse is
safe even from an untrusted peer: it can only take access away.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
from pathlib import Path

from aiohttp import web

from obsd.httperrors import HttpError

TOKEN_FILE = "admin.token"
_FORWARDED_FOR = re.compile(r"""for\s*=\s*"?\[?([^\]";,\s]+)""", re.I)


class TokenFileError(ValueError):
    """The admin token file exists but cannot be used; the message says how to fix it."""


def admin_token(configured: str, data_dir: str | Path, *, create: bool) -> str | None:
    """The admin token: `configured` (server.admin_token) if set, else the data directory's admin.token,
    made there with a random token on first start."""
    if configured:
        return configured
    path = Path(data_dir) / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return None
    else:
        if not token:
            raise TokenFileError(f"{path} is empty; delete it to have obsd make a new token on start, or write "
                                 "a token into it (or set server.admin_token)")
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def forwarded_clients(request: web.Request) -> list[str]:
    """Every client address the forwarding headers name (X-Forwarded-For, X-Real-IP, Forwarded)."""
    out: list[str] = []
    for value in request.headers.getall("X-Forwarded-For", []):
        out += [hop.strip() for hop in value.split(",") if hop.strip()]
    out += [v.strip() for v in request.headers.getall("X-Real-IP", []) if v.strip()]
    for value in request.headers.getall("Forwarded", []):
        out += _FORWARDED_FOR.findall(value)
    return out


def is_local_client(request: web.Request) -> bool:
    """True when the peer is loopback and no forwarding header names anyone who is not."""
    return is_loopback(request.remote) and all(is_loopback(_host(c)) for c in forwarded_clients(request))


def _host(address: str) -> str:
    """An address without its port ("203.0.113.7:443", "[2001:db8::1]:443" → the IP)."""
    a = address.strip().strip('"')
    if a.startswith("["):
        return a[1:].split("]", 1)[0]
    return a.rsplit(":", 1)[0] if a.count(":") == 1 else a


def _bearer(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:] if auth.startswith("Bearer ") else ""


def _same(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


class AdminAccess:
    """The token check and the loopback rule, the same for every admin and stats route (and /metrics)."""

    def __init__(self, token: str, *, allow_remote: bool, metrics_token: str = "") -> None:
        self.apply(token, allow_remote=allow_remote, metrics_token=metrics_token)

    def apply(self, token: str, *, allow_remote: bool, metrics_token: str = "") -> None:
        """Take new rules (start and reload); replaced in one assignment, so a check sees old or new."""
        self._rules = (token, allow_remote, metrics_token)

    def check(self, request: web.Request) -> None:
        """Refuse requests without the admin token, or from afar (directly or through a proxy) unless allowed."""
        token, allow_remote, _ = self._rules
        if not allow_remote and not is_local_client(request):
            raise HttpError(403, "admin_remote", "admin endpoints answer loopback clients only "
                            "(server.admin_allow_remote = false); a request relayed by a proxy for a remote "
                            "client is remote")
        if not _same(_bearer(request), token):
            raise HttpError(401, "admin_unauthorized", "missing or wrong admin token: send "
                            "Authorization: Bearer <server.admin_token or the data_dir/admin.token file>")

    def check_metrics(self, request: web.Request) -> None:
        """/metrics: with server.metrics_token set, that token from anywhere; else loopback clients only."""
        _, allow_remote, metrics_token = self._rules
        if metrics_token:
            if not _same(_bearer(request), metrics_token):
                raise HttpError(401, "metrics_unauthorized", "/metrics needs Authorization: Bearer "
                                "<server.metrics_token>")
            return
        if not allow_remote and not is_local_client(request):
            raise HttpError(403, "metrics_remote", "/metrics answers loopback clients only; set "
                            "server.metrics_token to scrape it from elsewhere")


def is_loopback(peer: str | None) -> bool:
    """True for a loopback peer address."""
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        return peer == "unix"
