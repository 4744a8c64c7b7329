"""Query API: GET /v1/stats/<report> answers a report as JSON (admin token, read-only, validated)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from obsd.errors import ObsdError
from obsd.httperrors import HttpError, json_response
from obsd.privacy.access import AdminAccess
from obsd.query.params import ReportError, ReportParams, parse_params
from obsd.query.reports import REPORTS, Reports
from obsd.query.running import bounded, limit_http_error
from obsd.settings import Settings
from obsd.store.client import Store
from obsd.store.limits import QueryLimitError
from obsd.store.readonly import open_reader

NO_STORE = {"Cache-Control": "no-store"}


class StatsApi:
    """Handlers for /v1/stats and /v1/stats/<report>, guarded by the admin check."""

    def __init__(self, settings: Settings, access: AdminAccess) -> None:
        self.access = access
        self._store: Store | None = None
        self._reports: Reports | None = None
        # One thread owns this Store (Stores are not thread-safe); reports queue behind each other.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="obsd-stats")
        self.apply(settings)

    def apply(self, settings: Settings) -> None:
        """Take new projects and query limits (start and reload); a request keeps the snapshot it began with."""
        old = getattr(self, "settings", None)
        self.settings = settings
        self.projects = [p.id for p in settings.projects]
        if old is not None and old.clickhouse != settings.clickhouse and self._store is not None:
            store, self._store, self._reports = self._store, None, None
            self._pool.submit(store.close)  # after the reports already queued on it
        elif old is not None and self._store is not None and old.projects != settings.projects:
            store = self._store  # new goals or funnels: the same connection, new reports
            self._reports = Reports.for_settings(store, settings)

    def routes(self, app: web.Application) -> None:
        """Register the stats routes."""
        app.router.add_get("/v1/stats", self.index)
        app.router.add_get("/v1/stats/{report}", self.report)
        app.on_cleanup.append(self._cleanup)

    async def _cleanup(self, app: web.Application) -> None:
        self.close()

    async def index(self, request: web.Request) -> web.Response:
        """The reports and projects this daemon can answer for."""
        self.access.check(request)
        return json_response({"reports": list(REPORTS), "projects": list(self.projects)}, headers=NO_STORE)

    async def report(self, request: web.Request) -> web.Response:
        """One report over the rollups, with parameters from the query string."""
        self.access.check(request)
        settings, projects = self.settings, self.projects  # one snapshot for the whole request
        name = request.match_info["report"]
        if name not in REPORTS:
            raise HttpError(404, "unknown_report", f"no report {name!r}; reports: {', '.join(REPORTS)}")
        # Every value of every key: parse_params refuses a repeated one unless it may repeat (filter, step).
        raw = {key: request.query.getall(key) for key in request.query}
        default = projects[0] if len(projects) == 1 else None
        try:
            params = parse_params(raw, default_project=default)
        except ReportError as exc:
            raise HttpError(400, "invalid_parameter", str(exc)) from exc
        if params.project not in projects:
            raise HttpError(400, "unknown_project", f"project {params.project!r} is not configured; "
                            f"projects: {', '.join(projects) or '(none)'}")
        loop = asyncio.get_running_loop()
        try:
            report = await bounded(loop.run_in_executor(self._pool, self._run, name, params),
                                   settings.clickhouse.query_timeout_s, f"{name} report")
        except QueryLimitError as exc:
            raise limit_http_error(exc) from exc
        except ReportError as exc:  # a parameter this report cannot take (by=, a goal it does not know, …)
            raise HttpError(400, "invalid_parameter", str(exc)) from exc
        except ObsdError as exc:
            raise HttpError(503, "report_failed", f"the {name} report failed: {exc}",
                            retry_after=5) from exc
        return json_response(report, headers=NO_STORE)

    def _run(self, name: str, params: ReportParams) -> dict[str, object]:
        if self._reports is None:
            s = self.settings
            self._store = open_reader(s)
            self._reports = Reports.for_settings(self._store, s)
        return self._reports.run(name, params).to_json()

    def close(self) -> None:
        """Wait for running reports and close the store connection."""
        self._pool.shutdown(wait=True)
        if self._store is not None:
            self._store.close()
