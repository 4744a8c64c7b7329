"""Who may use the admin API (queries, purge, import, tail, status) and the stats API: a token, and
loopback peers only unless server.admin_allow_remote."""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from aiohttp import web

from obsd.httperrors import HttpError

TOKEN_FILE = "admin.token"


def admin_token(configured: str, data_dir: str | Path, *, create: bool) -> str | None:
    """The admin token: `configured` (server.admin_token) if set, else the data directory's admin.token,
    made there with a random token on first start."""
    if configured:
        return configured
    path = Path(data_dir) / TOKEN_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class AdminAccess:
    """The token check and the loopback rule, the same for every admin and stats route."""

    def __init__(self, token: str, *, allow_remote: bool) -> None:
        self.token = token
        self.allow_remote = allow_remote

    def check(self, request: web.Request) -> None:
        """Refuse requests without the admin token, or from afar unless allowed."""
        if not self.allow_remote and not is_loopback(request.remote):
            raise HttpError(403, "admin_remote", "admin endpoints answer loopback clients only "
                            "(server.admin_allow_remote = false)")
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HttpError(401, "admin_unauthorized", "missing or wrong admin token: send "
                            "Authorization: Bearer <server.admin_token or the data_dir/admin.token file>")


def is_loopback(peer: str | None) -> bool:
    """True for a loopback peer address."""
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        return peer == "unix"
