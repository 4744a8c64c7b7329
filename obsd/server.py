"""The daemon: startup → serve → shutdown, with the aiohttp app and its routes."""

from __future__ import annotations

import asyncio
import gc
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from obsd import __version__
from obsd.errors import ConfigError, ObsdError
from obsd.httperrors import error_middleware, json_response
from obsd.ingest.accept import Acceptor
from obsd.ingest.config import IngestConfig
from obsd.ingest.endpoint import EventsEndpoint
from obsd.ingest.importer import Importer
from obsd.ingest.plausible import PlausibleEndpoint
from obsd.ingest.sdk_routes import add_sdk_routes
from obsd.ingest.sentry import SentryEndpoint
from obsd.ops import logs
from obsd.ops.metrics import CONTENT_TYPE, Metrics
from obsd.ops.reload import in_force, split
from obsd.ops.safety import refuse_unsafe
from obsd.ops.systemd import Notifier, loop_lag_probe, watchdog
from obsd.ops.tail import TailEndpoint, TailHub
from obsd.pipeline.pipeline import Pipeline
from obsd.privacy.access import AdminAccess, TokenFileError, admin_token
from obsd.privacy.useragent import warm_up
from obsd.privacy.visitor import VisitorHasher, keep_rotated
from obsd.query.admin_api import AdminApi
from obsd.query.dashboard import Dashboard
from obsd.query.stats_api import StatsApi
from obsd.settings import Settings, load_settings, redact_dsn
from obsd.store.client import Store
from obsd.store.migrations import ensure_schema
from obsd.store.schema_watch import SchemaWatch

log = structlog.get_logger("obsd.server")


def check_migrations(settings: Settings, *, migrate: bool) -> list[str]:
    """Apply pending migrations when allowed, else refuse to start and say which are pending."""
    store = Store(settings.dsn, settings.clickhouse.database)
    try:
        return ensure_schema(store, settings, migrate=migrate)
    finally:
        store.close()


class Server:
    """One obsd process: HTTP ingestion, the pipeline and the admin API."""

    def __init__(self, settings: Settings, *, migrate: bool = False,
                 on_ready: Callable[[], None] | None = None,
                 reload: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        self.migrate = migrate
        self.metrics = Metrics()
        self.pipeline = Pipeline(settings, self.metrics)
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._on_ready = on_ready
        self.access: AdminAccess | None = None
        self.admin: AdminApi | None = None
        self.ingest: EventsEndpoint | None = None
        self.stats: StatsApi | None = None
        self.plausible: PlausibleEndpoint | None = None
        self.sentry: SentryEndpoint | None = None
        self.ingest_config: IngestConfig | None = None
        self.port = 0
        self.tail = TailHub(self.metrics)
        self.acceptor = Acceptor(self.pipeline, self.metrics, self.tail)
        # The one owner of this process's visitor salts: every encoder hashes with it.
        self.visitors = VisitorHasher(Path(settings.data_dir) / "salts")
        self.importer: Importer | None = None
        self.notifier = Notifier()
        self.schema = SchemaWatch(settings)
        self._ssl_ctx: ssl.SSLContext | None = None
        # How SIGHUP re-reads the configuration: the CLI passes one that keeps its flag overrides.
        self._load = reload or (lambda: load_settings(settings.source if settings.source != "(defaults)" else None))
        self._background: set[asyncio.Task[None]] = set()

    def build_app(self) -> web.Application:
        """The aiohttp application with every route."""
        s = self.settings
        token = self._admin_token(s)
        access = self.access = AdminAccess(token, allow_remote=s.server.admin_allow_remote,
                                           metrics_token=s.server.metrics_token)
        self.admin = AdminApi(s, access)
        # One snapshot for every protocol: the same projects, rate-limit buckets, proxy rules and encoder
        # whatever the wire; a reload swaps it whole.
        cfg = self.ingest_config = IngestConfig.build(s, self.visitors)
        self.ingest = EventsEndpoint(cfg, self.acceptor, self.metrics)
        self.importer = Importer(s, self.acceptor, self.metrics, access.check, self.visitors)
        self.plausible = PlausibleEndpoint(cfg, self.acceptor, self.metrics)
        self.sentry = SentryEndpoint(cfg, self.acceptor, self.metrics)
        app = web.Application(middlewares=[error_middleware], client_max_size=s.server.max_body_bytes)
        app.router.add_post("/v1/events", self.ingest.post)
        app.router.add_route("OPTIONS", "/v1/events", self.ingest.preflight)
        self.plausible.routes(app)
        self.sentry.routes(app)
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.ready)
        app.router.add_get("/metrics", self.metrics_endpoint)
        app.router.add_post("/v1/admin/query", self.admin.query)
        app.router.add_post("/v1/admin/purge", self.admin.purge)
        app.router.add_get("/v1/admin/status", self.status)
        app.router.add_get("/v1/admin/tail", TailEndpoint(self.tail, access.check).handle)
        app.router.add_post("/v1/admin/import", self.importer.post)
        self.stats = StatsApi(s, access)
        self.stats.routes(app)
        Dashboard().routes(app)
        add_sdk_routes(app, s)
        return app

    @staticmethod
    def _admin_token(s: Settings) -> str:
        try:
            token = admin_token(s.server.admin_token, s.data_dir, create=True)
        except TokenFileError as exc:
            raise ConfigError(str(exc)) from exc
        assert token is not None
        return token

    async def health(self, request: web.Request) -> web.Response:
        """The process is alive."""
        return json_response({"status": "ok", "version": __version__,
                              "uptime_s": round(time.time() - self.started_at, 1)})

    async def ready(self, request: web.Request) -> web.Response:
        """The store is reachable, every stage makes progress, migrations are current and there is room."""
        ok, checks = self.pipeline.ready()
        pending, error = self.schema.state() if self.schema.fresh() else \
            await asyncio.get_running_loop().run_in_executor(None, self.schema.check)
        checks["migrations"] = f"cannot read: {error}" if error else \
            f"pending: {', '.join(pending)}" if pending else "current"
        ok = ok and not pending and not error
        if ok:
            return json_response({"status": "ready", "checks": checks})
        return json_response({"status": 503, "error": "not_ready", "reason": "obsd cannot take events now",
                              "checks": checks}, status=503, headers={"Retry-After": "5"})

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        """Prometheus exposition (server.metrics_token, else loopback clients only unless admin_allow_remote)."""
        assert self.access is not None
        self.access.check_metrics(request)
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def status(self, request: web.Request) -> web.Response:
        """Counters, fill levels and store health for `obsd status`."""
        assert self.access is not None
        self.access.check(request)
        ok, checks = self.pipeline.ready()
        window = self.pipeline.batch_ids
        return json_response({
            "version": __version__, "ready": ok, "checks": checks, "uptime_s": round(time.time() - self.started_at, 1),
            "durability": self.settings.spool.durability, "metrics": self.metrics.snapshot(),
            "accounts": self.pipeline.accounts().to_json(),
            "freshness": self.metrics.quantiles("obsd_freshness_seconds", (0.5, 0.99)),
            "batch_ids": {"held": window.size, "evicted": window.evicted, "window_s": window.window_s},
            "limits": {"ring_max_events": self.settings.pipeline.ring_max_events,
                       "ring_max_bytes": self.settings.pipeline.ring_max_bytes,
                       "max_spool_bytes": self.settings.spool.max_spool_bytes},
            "projects": [p.id for p in self.settings.projects], "tail": self.tail.stats(),
        })

    def _ssl(self) -> ssl.SSLContext | None:
        s = self.settings.server
        if not s.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _load_certs(ctx, s.tls_cert, s.tls_key)
        self._ssl_ctx = ctx  # a reload loads renewed certificates into it (new connections use them)
        return ctx

    async def startup(self) -> None:
        """Check the store, recover the spool, start the writer, then open the listener."""
        refuse_unsafe(self.settings)
        self._admin_token(self.settings)  # an unusable token file stops us before anything starts
        loop = asyncio.get_running_loop()
        # The first connection starts the embedded engine: this one carries its memory cap.
        await loop.run_in_executor(None, self.schema.open)
        applied = await loop.run_in_executor(None, lambda: check_migrations(self.settings, migrate=self.migrate))
        if applied:
            log.info("migrations.applied", migrations=applied)
        await loop.run_in_executor(None, warm_up)  # the UA rules load once here, not on the first request
        await self.pipeline.start()
        app = self.build_app()
        self._spawn(keep_rotated(self.visitors))
        self._runner = web.AppRunner(app, auto_decompress=False, access_log=None,
                                     handle_signals=False)
        await self._runner.setup()
        host, port = self.settings.host_port
        site = web.TCPSite(self._runner, host, port, ssl_context=self._ssl(), backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.settings.server.listen}: {exc.strerror}; "
                              "change server.listen or stop what uses the port") from exc
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("obsd.started", listen=f"{host}:{self.port}", store=redact_dsn(self.settings.dsn),
                 durability=self.settings.spool.durability, projects=[p.id for p in self.settings.projects],
                 version=__version__)
        # Startup leaves many long-lived objects (UA rules, settings, modules); a full
        # collection walked them all (~80 ms pauses on the loop, the worst ingest latency seen).
        # Frozen, they are never scanned again; only what serving allocates is collected.
        gc.collect()
        gc.freeze()
        if self._on_ready:
            self._on_ready()
        self.notifier.ready(f"accepting events on {host}:{self.port}")
        lag = self.metrics.loop_lag_seconds.observe
        if self.notifier.watchdog_s:
            self._spawn(watchdog(self.notifier, self.notifier.watchdog_s, self._healthy, lag))
        else:
            self._spawn(loop_lag_probe(1.0, lag))

    def _healthy(self) -> bool:
        """Whether systemd's watchdog should be fed: running, and no pipeline stage is wedged."""
        if self._stop.is_set():
            return False
        wedged = self.pipeline.wedged()
        if wedged is not None:
            log.error("pipeline.wedged", reason=wedged, action="not feeding the watchdog: systemd restarts obsd")
            self.notifier.status(f"wedged: {wedged}"[:200])
            return False
        return True

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def request_reload(self) -> None:
        """Re-read the configuration (SIGHUP); applied on the event loop between requests."""
        self._spawn(self.reload())

    async def reload(self) -> bool:
        """Apply a changed configuration without dropping an event: every changed setting applies now or
        is named in the log as needing a restart; each request runs under one snapshot, old or new."""
        self.notifier.reloading()
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(None, self._load)
            refuse_unsafe(new)
            old = self.settings  # read after the load: what is in force now
            applied, restart = split(old, new, tls_reloadable=self._ssl_ctx is not None)
            new = in_force(old, new, restart)
            await self._apply(old, new, applied)
        except ObsdError as exc:
            self.metrics.reloads.labels(result="error").inc()
            log.error("config.reload_failed", error=str(exc), kept=self.settings.source)
            self.notifier.ready(f"reload failed, kept the previous configuration: {exc}"[:200])
            return False
        self.settings = new
        self.metrics.reloads.labels(result="ok").inc()
        log.info("config.reloaded", source=new.source, projects=[p.id for p in new.projects], applied=applied,
                 needs_restart=restart)
        if restart:
            log.warning("config.needs_restart", keys=restart, hint="these settings keep their running values "
                        "until obsd restarts")
        self.notifier.ready(f"accepting events on {self.settings.server.listen} (reloaded)")
        return True

    async def _apply(self, old: Settings, new: Settings, applied: list[str]) -> None:
        """Hand the new settings to every part that holds some (synchronously on the loop, between requests);
        what can fail (the token file, the certificates) is done first."""
        token = self._admin_token(new)
        if self._ssl_ctx is not None and any(k.startswith("server.tls_") for k in applied):
            _load_certs(self._ssl_ctx, new.server.tls_cert, new.server.tls_key)
        if any(k.startswith("clickhouse.") and "retention" in k for k in applied):
            changed = await asyncio.get_running_loop().run_in_executor(None, self.schema.apply_retention, new)
            log.info("retention.applied", tables=changed)
        if "log_level" in applied:
            logs.configure(new.log_level, old.log_format)
        if self.access is not None:
            self.access.apply(token, allow_remote=new.server.admin_allow_remote,
                              metrics_token=new.server.metrics_token)
        cfg = self.ingest_config = IngestConfig.build(new, self.visitors, self.ingest_config)
        for endpoint in (self.ingest, self.plausible, self.sentry):
            if endpoint is not None:
                endpoint.apply(cfg)
        for part in (self.importer, self.admin, self.stats):
            if part is not None:
                part.apply(new)

    def request_stop(self) -> None:
        """Ask the server to shut down (signal-safe)."""
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop accepting, drain the pipeline to the store or the spool, release everything."""
        log.info("obsd.stopping")
        self.notifier.stopping()
        for task in list(self._background):
            task.cancel()
        self.tail.close()
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()
        await self.pipeline.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.admin is not None:
            self.admin.close()
        if self.importer is not None:
            self.importer.close()
        self.schema.close()
        self.notifier.close()
        log.info("obsd.stopped", inserted=int(self.metrics.value("obsd_events_inserted_total")))

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        await self.startup()
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()


def run(settings: Settings, *, migrate: bool = False, reload: Callable[[], Settings] | None = None) -> None:
    """Run the daemon in this process until it is told to stop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(Server(settings, migrate=migrate, reload=reload).serve())
    else:
        uvloop.run(Server(settings, migrate=migrate, reload=reload).serve())


def _load_certs(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    """Load the certificate and key into `ctx` (at start, and on a reload into the running context)."""
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"server.tls_cert/tls_key cannot be loaded: {exc}") from exc
