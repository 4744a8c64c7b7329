"""Admin API: POST /v1/admin/query (read-only SQL) and /v1/admin/purge (erasure), behind AdminAccess."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import msgspec
from aiohttp import web

from obsd.errors import ObsdError
from obsd.httperrors import HttpError, json_response
from obsd.privacy.access import AdminAccess
from obsd.query.purge import PurgeRequest, parse_day, purge
from obsd.query.running import bounded, limit_http_error
from obsd.settings import Settings
from obsd.store.client import QueryResult, Store
from obsd.store.guard import QueryRefused
from obsd.store.limits import QueryLimitError
from obsd.store.readonly import UserQueries, open_reader


class QueryRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /v1/admin/query."""

    sql: str
    max_rows: Annotated[int, msgspec.Meta(ge=1)] | None = None


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
    """Handlers for /v1/admin/query and /v1/admin/purge: queries on a limited read connection of their own,
    erasure on a write connection of its own, one at a time each."""

    def __init__(self, settings: Settings, access: AdminAccess) -> None:
        self.settings = settings
        self.access = access
        self._queries: UserQueries | None = None
        self._writer: Store | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="obsd-query")
        self._purge_pool = ThreadPoolExecutor(1, thread_name_prefix="obsd-purge")

    def apply(self, settings: Settings) -> None:
        """Take new query limits (reload): the next query opens a connection with them."""
        old, self.settings = self.settings, settings
        if old.clickhouse != settings.clickhouse and self._queries is not None:
            queries, self._queries = self._queries, None
            self._pool.submit(queries.store.close)

    def _query(self, sql: str, max_rows: int) -> QueryResult:
        if self._queries is None:
            self._queries = UserQueries(open_reader(self.settings))
        return self._queries.run(sql, max_rows=max_rows)

    async def query(self, request: web.Request) -> web.Response:
        """Run a read-only query and answer its rows."""
        self.access.check(request)
        settings = self.settings  # one snapshot for the whole request
        try:
            req = msgspec.json.decode(await request.read(), type=QueryRequest)
        except msgspec.DecodeError as exc:
            raise HttpError(400, "invalid_query_request", f"expected {{\"sql\": \"SELECT …\", \"max_rows\": N ≥ 1}}: "
                            f"{exc}") from exc
        cap = settings.clickhouse.query_max_rows
        max_rows = min(req.max_rows or cap, cap)
        loop = asyncio.get_running_loop()
        try:
            res = await bounded(loop.run_in_executor(self._pool, self._query, req.sql, max_rows),
                                settings.clickhouse.query_timeout_s, "query")
        except QueryLimitError as exc:
            raise limit_http_error(exc) from exc
        except QueryRefused as exc:
            raise HttpError(400, "query_refused", str(exc)) from exc
        except ObsdError as exc:
            raise HttpError(400, "query_failed", str(exc)) from exc
        return json_response(result_json(res))

    def _purge(self, req: PurgeRequest) -> dict[str, int]:
        if self._writer is None:
            self._writer = Store(self.settings.dsn, self.settings.clickhouse.database)
        return purge(self._writer, req)

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
            deleted = await asyncio.get_running_loop().run_in_executor(self._purge_pool, self._purge, req)
        except ObsdError as exc:
            raise HttpError(400, "purge_failed", str(exc)) from exc
        return json_response({"deleted": deleted})

    def close(self) -> None:
        """Close the connections."""
        self._pool.shutdown(wait=True)
        self._purge_pool.shutdown(wait=True)
        if self._queries is not None:
            self._queries.store.close()
        if self._writer is not None:
            self._writer.close()
