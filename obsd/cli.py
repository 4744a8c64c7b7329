"""The obsd command line: parses flags into settings, calls the core, renders with rich."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from obsd import __version__
from obsd.errors import ObsdError, StoreLockedError
from obsd.settings import Settings, effective, load_settings
from obsd.store import QueryResult

app = typer.Typer(help="obsd: self-hosted web observability collector.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
migrate_app = typer.Typer(help="Apply, revert, inspect and create schema migrations.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")
app.add_typer(config_app, name="config")

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: ./obsd.toml, then /etc/obsd/obsd.toml; "
                 "or OBSD_CONFIG).", show_default=False),
]


def _settings(config: Path | None, overrides: dict[str, Any] | None = None) -> Settings:
    return load_settings(config, overrides)


def _fail(exc: ObsdError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(exc.exit_code)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"obsd {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """obsd: self-hosted web observability collector."""


@app.command()
def serve(
    config: ConfigOpt = None,
    listen: Annotated[str | None, typer.Option(help="host:port to listen on (server.listen).")] = None,
    dsn: Annotated[str | None, typer.Option(help="ClickHouse DSN (clickhouse.dsn).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data directory (data_dir).")] = None,
    migrate: Annotated[bool, typer.Option("--migrate", help="Apply pending migrations before serving.")] = False,
) -> None:
    """Run the ingestion server until SIGTERM/SIGINT, then drain and exit 0."""
    from obsd import logs, server

    try:
        overrides: dict[str, Any] = {"data_dir": data_dir}
        if listen:
            overrides["server"] = {"listen": listen}
        if dsn:
            overrides["clickhouse"] = {"dsn": dsn}
        settings = _settings(config, overrides)
        logs.configure(settings.log_level, settings.log_format)
        server.run(settings, migrate=migrate, reload=lambda: _settings(config, overrides))
    except ObsdError as exc:
        raise _fail(exc) from exc


def _with_migrator(config: Path | None, action: Callable[[Any], Any]) -> Any:
    """Open the store named by the config, run `action` on a Migrator, close the store."""
    from obsd.migrations import Migrator
    from obsd.store import Store

    try:
        settings = _settings(config)
        store = Store(settings.dsn, settings.clickhouse.database)
        try:
            return action(Migrator(store, cluster=settings.clickhouse.cluster))
        finally:
            store.close()
    except ObsdError as exc:
        raise _fail(exc) from exc


@migrate_app.command("up")
def migrate_up(
    config: ConfigOpt = None,
    to: Annotated[int | None, typer.Option("--to", help="Stop after this version.")] = None,
) -> None:
    """Apply pending migrations in order (a no-op when there are none)."""
    done = _with_migrator(config, lambda m: m.up(to=to))
    if not done:
        out.print("Nothing to apply: the store is up to date.")
    for mig in done:
        out.print(f"[green]applied[/] {mig.label}")


@migrate_app.command("down")
def migrate_down(
    config: ConfigOpt = None,
    steps: Annotated[int, typer.Option("--steps", help="How many migrations to revert.")] = 1,
) -> None:
    """Revert the most recent migrations."""
    done = _with_migrator(config, lambda m: m.down(steps=steps))
    if not done:
        out.print("Nothing to revert.")
    for mig in done:
        out.print(f"[yellow]reverted[/] {mig.label}")


@migrate_app.command("status")
def migrate_status(config: ConfigOpt = None) -> None:
    """Show every migration and whether it is applied."""
    rows = _with_migrator(config, lambda m: m.status())
    table = Table(title="Migrations")
    table.add_column("version", justify="right")
    table.add_column("name")
    table.add_column("state")
    table.add_column("applied at (UTC)")
    for st in rows:
        state = "[green]applied[/]" if st.applied_at else "[yellow]pending[/]"
        at = st.applied_at.strftime("%Y-%m-%d %H:%M:%S") if st.applied_at else ""
        table.add_row(f"{st.migration.version:04d}", st.migration.name, state, at)
    out.print(table)


@migrate_app.command("create")
def migrate_create(
    name: Annotated[str, typer.Argument(help="What the migration does, e.g. add_country_column.")],
    directory: Annotated[Path | None, typer.Option("--dir", help="Migrations folder.")] = None,
) -> None:
    """Create the next numbered, empty up/down migration pair."""
    from obsd.migrations import create, default_dir

    try:
        up, down = create(directory or default_dir(), name)
    except ObsdError as exc:
        raise _fail(exc) from exc
    out.print(f"created {up}\ncreated {down}")


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration and print the effective settings (secrets masked)."""
    try:
        settings = _settings(config)
    except ObsdError as exc:
        raise _fail(exc) from exc
    out.print(f"[green]ok[/]: configuration from {settings.source} is valid")
    out.print_json(json.dumps(effective(settings), default=str))


def render_result(res: QueryResult, fmt: str, title: str | None = None) -> None:
    """Print a query result as a rich table, JSON lines of objects, or CSV."""
    if fmt == "json":
        for row in res.rows:
            sys.stdout.write(json.dumps(dict(zip(res.columns, row, strict=True)), default=str) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(res.columns)
        w.writerows(res.rows)
        sys.stdout.write(buf.getvalue())
        return
    table = Table(title=title, show_lines=False)
    for name, typ in zip(res.columns, res.types, strict=True):
        numeric = any(t in typ for t in ("Int", "Float", "Decimal"))
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in res.rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)
    note = f"{len(res.rows)} row{'s' if len(res.rows) != 1 else ''}"
    if res.truncated:
        note += " (truncated at the row cap: clickhouse.query_max_rows or --max-rows)"
    err.print(note, style="dim")


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="A read-only statement: SELECT, WITH, SHOW, DESCRIBE, EXPLAIN.")],
    config: ConfigOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json (one object per line) or csv.")] = "table",
    max_rows: Annotated[int | None, typer.Option("--max-rows", help="Row cap (default clickhouse.query_max_rows).")]
    = None,
) -> None:
    """Run a read-only query; goes through the running daemon when there is one."""
    from obsd.client import DaemonClient
    from obsd.store import Store

    if fmt not in ("table", "json", "csv"):
        err.print("[bold red]error:[/] --format must be table, json or csv")
        raise typer.Exit(2)
    try:
        settings = _settings(config)
        cap = min(max_rows or settings.clickhouse.query_max_rows, settings.clickhouse.query_max_rows)
        daemon = DaemonClient(settings, timeout=settings.clickhouse.query_timeout_s + 5)
        if daemon.alive():
            res = daemon.query(sql, cap)
        else:
            try:
                store = Store(settings.dsn, settings.clickhouse.database)
            except StoreLockedError as exc:
                raise StoreLockedError(
                    f"{exc}; no daemon answered at {daemon.base} (is server.listen right?)") from exc
            try:
                res = store.query_readonly(sql, max_rows=cap, timeout_s=settings.clickhouse.query_timeout_s)
            finally:
                store.close()
    except ObsdError as exc:
        raise _fail(exc) from exc
    render_result(res, fmt)


report_app = typer.Typer(help="Reports over the rollups: overview, pages, referrers, devices, vitals, errors, "
                         "events, recent.", no_args_is_help=True)
app.add_typer(report_app, name="report")


def _report_command(name: str, summary: str) -> None:
    def command(
        config: ConfigOpt = None,
        project: Annotated[str | None, typer.Option("--project", "-p", help="Project id (default: the only "
                                                    "configured project).")] = None,
        since: Annotated[str, typer.Option(help="Start: 24h, 7d (whole hours/days up to now), YYYY-MM-DD or "
                                           "YYYY-MM-DDTHH:MM (UTC, rounded down to the hour).")] = "24h",
        until: Annotated[str, typer.Option(help="End: now, YYYY-MM-DD (that whole day) or YYYY-MM-DDTHH:MM "
                                           "(rounded up to the hour).")] = "now",
        fmt: Annotated[str, typer.Option("--format", "-f", help="table, json (the API document) or csv.")]
        = "table",
        limit: Annotated[int, typer.Option(help="Rows to show (1-1000).")] = 20,
        bucket: Annotated[str | None, typer.Option(help="Series bucket: hour or day (default: hour up to "
                                                   "72 hours, else day).")] = None,
        path: Annotated[str | None, typer.Option(help="Only this page (pages, vitals).")] = None,
        type_: Annotated[str | None, typer.Option("--type", help="Only this event type (events, recent).")]
        = None,
        by: Annotated[str | None, typer.Option(help="vitals: group by metric, path or device.")] = None,
    ) -> None:
        from obsd.report_view import render, to_csv

        if fmt not in ("table", "json", "csv"):
            err.print("[bold red]error:[/] --format must be table, json or csv")
            raise typer.Exit(2)
        raw = {"project": project, "since": since, "until": until, "limit": str(limit), "bucket": bucket,
               "path": path, "type": type_, "by": by}
        try:
            doc = _run_report(config, name, {k: v for k, v in raw.items() if v})
        except ObsdError as exc:
            raise _fail(exc) from exc
        if fmt == "json":
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        elif fmt == "csv":
            sys.stdout.write(to_csv(doc))
        else:
            out.print(render(doc))

    command.__doc__ = summary
    report_app.command(name)(command)


def _run_report(config: Path | None, name: str, raw: dict[str, str]) -> dict[str, Any]:
    """A report document: from the running daemon when there is one, else from the store directly."""
    from obsd.client import DaemonClient
    from obsd.reports import ReportError, Reports, parse_params
    from obsd.store import Store

    settings = _settings(config)
    projects = [p.id for p in settings.projects]
    params = parse_params(raw, default_project=projects[0] if len(projects) == 1 else None)
    if params.project not in projects:
        raise ReportError(f"project {params.project!r} is not configured; projects: {', '.join(projects) or '(none)'}")
    daemon = DaemonClient(settings, timeout=settings.clickhouse.query_timeout_s + 5)
    if daemon.alive():
        return daemon.stats(name, raw)
    try:
        store = Store(settings.dsn, settings.clickhouse.database)
    except StoreLockedError as exc:
        raise StoreLockedError(f"{exc}; no daemon answered at {daemon.base} (is server.listen right?)") from exc
    try:
        reports = Reports(store, settings.clickhouse.database, cluster=bool(settings.clickhouse.cluster),
                          timeout_s=settings.clickhouse.query_timeout_s)
        return reports.run(name, params).to_json()
    finally:
        store.close()


for _name, _summary in (
    ("overview", "Visitors, pageviews, sessions, events and errors, with a trend per hour or day."),
    ("pages", "Top pages by pageviews, with visitors, sessions and share."),
    ("referrers", "Referring sites ('(direct)' when none); navigation within the site is left out."),
    ("devices", "Pageviews and visitors by device type, browser and operating system."),
    ("vitals", "Web Vitals p50/p75/p95 with good / needs-improvement / poor shares (Google's thresholds)."),
    ("errors", "Error groups by fingerprint: count, affected sessions, first/last seen, top frame."),
    ("events", "Event counts by type and name, with visitors."),
    ("recent", "The latest events in the range, newest first."),
):
    _report_command(_name, _summary)


# Operations: tail, status, seed, systemd-unit (docs/operations.md, docs/deployment.md).

_TYPE_STYLE = {"pageview": "bold blue", "click": "cyan", "scroll": "dim", "error": "bold red",
               "web_vital": "yellow", "custom": "magenta"}
_RATING_STYLE = {"good": "green", "needs-improvement": "yellow", "poor": "red"}


def tail_line(row: dict[str, Any]) -> Any:
    """One compact, colour-coded line for a live event."""
    import datetime as dt

    from rich.text import Text

    typ = str(row.get("type", "?"))
    ts = dt.datetime.fromtimestamp(float(row.get("ts", 0)), dt.UTC).strftime("%H:%M:%S.%f")[:-3]
    line = Text.assemble((ts, "dim"), " ", (f"{row.get('project_id', '')}", "dim"), " ",
                         (f"{typ:<9}", _TYPE_STYLE.get(typ, "")), " ", (str(row.get("path") or "/"), "bold"), " ")
    if typ == "pageview":
        ref = row.get("referrer_host") or "direct"
        utm = row.get("utm_campaign")
        line.append(f"from {ref}{' (' + utm + ')' if utm else ''} · {row.get('browser', '?')}/{row.get('os', '?')}"
                    f" {row.get('device_type', '')} {row.get('country', '')}".rstrip())
    elif typ == "web_vital":
        name, value = row.get("name", ""), float(row.get("value", 0))
        shown = f"{value:.3f}" if name == "CLS" else f"{value:.0f} ms"
        rating = str(row.get("rating", ""))
        line.append(f"{name} {shown} ")
        line.append(rating, _RATING_STYLE.get(rating, ""))
    elif typ == "error":
        line.append(str(row.get("error_message", ""))[:160], "red")
    elif typ == "click":
        line.append(str(row.get("selector", "")))
    elif typ == "scroll":
        line.append(f"{float(row.get('value', 0)):.0f}%")
    elif typ == "custom":
        line.append(f"{row.get('name', '')} {row.get('props', '')}")
    return line


@app.command()
def tail(
    where: Annotated[str | None, typer.Argument(help="Filter expression on fields and props, e.g. "
                                                "'props.amount > 50' or 'type == error and path ~ /checkout'.")]
    = None,
    config: ConfigOpt = None,
    project: Annotated[list[str] | None, typer.Option("--project", "-p", help="Only these projects.")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", "-t", help="Only these event types.")] = None,
    name: Annotated[list[str] | None, typer.Option("--name", "-n", help="Only these event names.")] = None,
    path: Annotated[str, typer.Option("--path", help="Only paths matching this glob, e.g. '/checkout*'.")] = "",
    sample: Annotated[float, typer.Option("--sample", help="Show this share of events (0 < RATE ≤ 1).")] = 1.0,
    limit: Annotated[int, typer.Option("--limit", help="Exit after N events (0: run until Ctrl-C).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="NDJSON rows on stdout, e.g. to pipe into jq.")] = False,
) -> None:
    """Show events as they arrive at the running daemon; reconnects when it restarts."""
    from obsd.client import DaemonClient
    from obsd.tail import TailEvent, follow
    from obsd.tailfilter import TailFilter

    try:
        settings = _settings(config)
        flt = TailFilter(frozenset(project or ()), frozenset(type_ or ()), frozenset(name or ()), path,
                         where or "", sample)
        daemon = DaemonClient(settings)
        shown = 0
        for item in follow(daemon.base, daemon.token, flt):
            if isinstance(item, TailEvent):
                if as_json:
                    sys.stdout.write(item.line.decode() + "\n")
                    sys.stdout.flush()
                else:
                    out.print(tail_line(item.row), highlight=False, soft_wrap=True)
                shown += 1
                if limit and shown >= limit:
                    break
            elif item.kind == "missed":
                err.print(f"[yellow]… {item.detail.get('missed', 0):,} events missed: this viewer fell behind "
                          f"(total {item.detail.get('total', 0):,}); narrow the filter or use --sample[/]")
            elif item.kind == "connected":
                err.print(f"[dim]tailing {daemon.base} (Ctrl-C to stop)[/]")
            elif item.kind == "disconnected":
                err.print(f"[yellow]lost the daemon at {daemon.base}; reconnecting…[/]")
            elif item.kind == "waiting":
                err.print(f"[yellow]no daemon answers at {daemon.base}; waiting for it…[/]")
    except KeyboardInterrupt:
        return
    except ObsdError as exc:
        raise _fail(exc) from exc


@app.command()
def status(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit (1 when not ready).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: the raw status document.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.")] = 2.0,
) -> None:
    """A live view of the running daemon: rates, buffer and spool fill, rejects, store health."""
    import time

    from rich.live import Live

    from obsd.client import DaemonClient
    from obsd.errors import DaemonError
    from obsd.status_view import StatusView, unreachable

    try:
        daemon = DaemonClient(_settings(config), timeout=5.0)
        view = StatusView()
        if once:
            doc = daemon.status()
            if as_json:
                sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            else:
                view.update(doc)
                out.print(view.render())
            raise typer.Exit(0 if doc.get("ready") else 1)
        with Live(view.render(), console=out, auto_refresh=False, screen=False) as live:
            while True:
                try:
                    view.update(daemon.status())
                    live.update(view.render(), refresh=True)
                except DaemonError as exc:
                    live.update(unreachable(daemon.base, str(exc)), refresh=True)
                time.sleep(max(0.2, interval))
    except KeyboardInterrupt:
        return
    except ObsdError as exc:
        raise _fail(exc) from exc


@app.command()
def seed(
    config: ConfigOpt = None,
    events: Annotated[int, typer.Option("--events", "-n", help="How many events to make.")] = 100_000,
    days: Annotated[float, typer.Option("--days", help="Spread them over this many days, ending now.")] = 30.0,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Project id (default: the first "
                                                "configured project, else demo).")] = None,
    seed_: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same events.")] = 1,
    via: Annotated[str, typer.Option("--via", help="auto (the daemon when one runs, else the store), "
                                     "daemon or store.")] = "auto",
    workers: Annotated[int | None, typer.Option("--workers", help="Generator processes (default: one per CPU, "
                                                "one fewer when the daemon shares the machine).")] = None,
) -> None:
    """Fill obsd with realistic sample traffic: sessions, referrers, devices, Web Vitals, errors, purchases."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from obsd.client import DaemonClient
    from obsd.seed import SeedPlan, end_of_window, seed_store, seed_via_daemon
    from obsd.server import check_migrations

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            rate = task.speed or (task.completed / task.elapsed if task.elapsed else 0.0)
            return Text(f"{rate:,.0f} events/s", style="cyan")

    if via not in ("auto", "daemon", "store"):
        err.print("[bold red]error:[/] --via must be auto, daemon or store")
        raise typer.Exit(2)
    if events < 1 or days <= 0:
        err.print("[bold red]error:[/] --events must be ≥ 1 and --days > 0")
        raise typer.Exit(2)
    try:
        settings = _settings(config)
        pid = project or (settings.projects[0].id if settings.projects else "demo")
        plan = SeedPlan(events, days, seed_, end_of_window(), pid)
        daemon = DaemonClient(settings)
        use_daemon = via == "daemon" or (via == "auto" and daemon.alive())
        columns = (TextColumn("[bold]seeding"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                   RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task("seed", total=events)
            advance = lambda n: progress.advance(task, n)  # noqa: E731
            if use_daemon:
                report = seed_via_daemon(daemon.base, daemon.token, plan, progress=advance, workers=workers)
            else:
                check_migrations(settings, migrate=False)
                report = seed_store(settings, plan, progress=advance, workers=workers)
    except ObsdError as exc:
        raise _fail(exc) from exc
    where = f"through the daemon at {daemon.base}" if report.mode == "daemon" else f"into {settings.dsn}"
    out.print(f"seeded {report.events:,} events ({report.sessions:,} sessions) for project {pid!r} {where} "
              f"in {report.seconds:.1f} s ({report.events / max(report.seconds, 1e-9):,.0f} events/s)"
              + (f"; {report.rejected:,} rejected" if report.rejected else ""), highlight=False, soft_wrap=True)


@app.command("systemd-unit")
def systemd_unit(
    exec_start: Annotated[str | None, typer.Option("--exec", help="Path of the obsd executable "
                                                   "(default: this one).")] = None,
    config_path: Annotated[str, typer.Option("--config-path", help="Config file the unit passes to "
                                             "obsd serve.")] = "/etc/obsd/obsd.toml",
    data_dir: Annotated[str, typer.Option("--data-dir", help="The only directory obsd may write.")]
    = "/var/lib/obsd",
    user: Annotated[str, typer.Option("--user", help="The dedicated system user (and group).")] = "obsd",
    watchdog: Annotated[int, typer.Option("--watchdog", help="WatchdogSec in seconds.")] = 30,
) -> None:
    """Print a hardened systemd unit for `obsd serve` (Type=notify, watchdog, reload on SIGHUP)."""
    import shutil

    from obsd.systemd import unit_file

    exe = exec_start or shutil.which("obsd") or str(Path(sys.argv[0]).resolve())
    sys.stdout.write(unit_file(exec_start=exe, config=config_path, data_dir=data_dir, user=user,
                               watchdog_s=watchdog))


@app.command()
def purge(
    project: Annotated[str, typer.Option("--project", help="The project whose rows are erased.")],
    config: ConfigOpt = None,
    before: Annotated[str | None, typer.Option("--before", help="Only rows older than this day (YYYY-MM-DD).")]
    = None,
    session: Annotated[str | None, typer.Option("--session", help="Only the rows of this session id.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a project's data on request (GDPR erasure) and report how many rows went, per table."""
    from obsd.client import DaemonClient
    from obsd.retention import PurgeRequest, parse_day
    from obsd.retention import purge as purge_rows
    from obsd.store import Store

    try:
        settings = _settings(config)
        req = PurgeRequest(project, parse_day(before) if before else None, session)
        req.validate()
        what = f"project {project!r}" + (f", before {before}" if before else "") + (
            f", session {session!r}" if session else "")
        if not yes and not typer.confirm(f"Permanently delete the rows of {what}?"):
            raise typer.Exit(1)
        daemon = DaemonClient(settings)
        if daemon.alive():
            deleted = daemon.purge(project, before, session)
        else:
            store = Store(settings.dsn, settings.clickhouse.database)
            try:
                deleted = purge_rows(store, req)
            finally:
                store.close()
    except ObsdError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"Purged: {what}")
    table.add_column("table")
    table.add_column("rows deleted", justify="right")
    for name, n in deleted.items():
        table.add_row(name, f"{n:,}")
    table.add_row("[bold]total[/]", f"[bold]{sum(deleted.values()):,}[/]")
    out.print(table)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
