"""Admin API: POST /v1/admin/query (read-only SQL) and /v1/admin/purge (erasure), behind AdminAccess."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from aiohttp import web

from obsd.errors import ObsdError
from obsd.httperrors import HttpError, json_response
from obsd.privacy.access import AdminAccess
from obsd.query.purge import PurgeRequest, parse_day, purge
from obsd.settings import Settings
from obsd.store.client import QueryResult, Store


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


class AdminApi:
    """Handlers for /v1/admin/query and /v1/admin/purge, on one read connection of their own."""

    def __init__(self, settings: Settings, access: AdminAccess) -> None:
        self.settings = settings
        self.access = access
        self._store: Store | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="obsd-query")

    def _query(self, sql: str, max_rows: int) -> QueryResult:
        if self._store is None:
            self._store = Store(self.settings.dsn, self.settings.clickhouse.database)
        return self._store.query_readonly(sql, max_rows=max_rows, timeout_s=self.settings.clickhouse.query_timeout_s)

    async def query(self, request: web.Request) -> web.Response:
        """Run a read-only query and answer its rows."""
        self.access.check(request)
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
        self.access.check(request)
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
