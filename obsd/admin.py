"""Admin API: token-protected, loopback-only by default; how CLI commands reach a running daemon."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from obsd.errors import ObsdError
from obsd.httperrors import HttpError, json_response
from obsd.retention import PurgeRequest, parse_day, purge
from obsd.settings import Settings
from obsd.store import QueryResult, Store

TOKEN_FILE = "admin.token"


def token_path(settings: Settings) -> Path:
    """Where the generated admin token is kept when the config sets none."""
    return Path(settings.data_dir) / TOKEN_FILE


def admin_token(settings: Settings, *, create: bool) -> str | None:
    """The admin token: from config, else from the data directory (made there on first start)."""
    if settings.server.admin_token:
        return settings.server.admin_token
    path = token_path(settings)
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


class QueryRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /v1/admin/query."""

    sql: str
    max_rows: int | None = None


class PurgeBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /v1/admin/purge."""

    project: str
    before: str | None = None
    session: str | None = None


def _jsonable(v: Any) -> Any:
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


def result_json(res: QueryResult) -> dict[str, Any]:
    """A query result as the admin API answers it."""
    return {"columns": res.columns, "types": res.types, "rows": [[_jsonable(v) for v in r] for r in res.rows],
            "truncated": res.truncated}


class Admin:
    """Handlers for /v1/admin/*: the same token check and loopback rule for each."""

    def __init__(self, settings: Settings, token: str) -> None:
        self.settings = settings
        self.token = token
        self._store: Store | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="obsd-query")

    def check(self, request: web.Request) -> None:
        """Refuse requests without the admin token, or from afar unless allowed."""
        if not self.settings.server.admin_allow_remote and not is_loopback(request.remote):
            raise HttpError(403, "admin_remote", "admin endpoints answer loopback clients only "
                            "(server.admin_allow_remote = false)")
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HttpError(401, "admin_unauthorized", "missing or wrong admin token: send "
                            "Authorization: Bearer <server.admin_token or the data_dir/admin.token file>")

    def _query(self, sql: str, max_rows: int) -> QueryResult:
        if self._store is None:
            self._store = Store(self.settings.dsn, self.settings.clickhouse.database)
        return self._store.query_readonly(sql, max_rows=max_rows, timeout_s=self.settings.clickhouse.query_timeout_s)

    async def query(self, request: web.Request) -> web.Response:
        """Run a read-only query and answer its rows."""
        self.check(request)
        try:
            req = msgspec.json.decode(await request.read(), type=QueryRequest)
        except msgspec.DecodeError as exc:
            raise HttpError(400, "invalid_query_request", f"expected {{\"sql\": \"SELECT …\"}}: {exc}") from exc
        cap = self.settings.clickhouse.query_max_rows
        max_rows = min(req.max_rows or cap, cap)
        try:
            res = await asyncio.get_running_loop().run_in_executor(self._pool, self._query, req.sql, max_rows)
        except ObsdError as exc:
            raise HttpError(400, "query_failed", str(exc)) from exc
        return json_response(result_json(res))

    def _purge(self, req: PurgeRequest) -> dict[str, int]:
        if self._store is None:
            self._store = Store(self.settings.dsn, self.settings.clickhouse.database)
        return purge(self._store, req)

    async def purge(self, request: web.Request) -> web.Response:
        """Erase a project's rows (optionally before a day, or of one session) and say how many went."""
        self.check(request)
        try:
            body = msgspec.json.decode(await request.read(), type=PurgeBody)
            req = PurgeRequest(body.project, parse_day(body.before) if body.before else None, body.session)
            req.validate()
        except (msgspec.DecodeError, ObsdError) as exc:
            raise HttpError(400, "invalid_purge_request", f"expected {{\"project\": …, \"before\": "
                            f"\"YYYY-MM-DD\", \"session\": …}}: {exc}") from exc
        try:
            deleted = await asyncio.get_running_loop().run_in_executor(self._pool, self._purge, req)
        except ObsdError as exc:
            raise HttpError(400, "purge_failed", str(exc)) from exc
        return json_response({"deleted": deleted})

    def close(self) -> None:
        """Close the query connection."""
        self._pool.shutdown(wait=True)
        if self._store is not None:
            self._store.close()


def is_loopback(peer: str | None) -> bool:
    """True for a loopback peer address."""
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        return peer == "unix"
