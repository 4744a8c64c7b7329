"""`obsd seed`: fill obsd with realistic sample traffic, with a progress bar."""

from __future__ import annotations

from typing import Annotated, Any

import typer
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

from obsd.cli.app import app
from obsd.cli.common import ConfigOpt, err, fail, load, out, through_daemon_or_store
from obsd.errors import ObsdError


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = task.speed or (task.completed / task.elapsed if task.elapsed else 0.0)
        return Text(f"{rate:,.0f} events/s", style="cyan")


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
    from obsd.cli.daemon_client import DaemonClient
    from obsd.cli.seed_load import SeedPlan, SeedReport, seed_store, seed_via_daemon
    from obsd.cli.seed_traffic import end_of_window
    from obsd.store.client import Store
    from obsd.store.migrations import ensure_schema

    if via not in ("auto", "daemon", "store"):
        err.print("[bold red]error:[/] --via must be auto, daemon or store")
        raise typer.Exit(2)
    if events < 1 or days <= 0:
        err.print("[bold red]error:[/] --events must be ≥ 1 and --days > 0")
        raise typer.Exit(2)
    try:
        settings = load(config)
        pid = project or (settings.projects[0].id if settings.projects else "demo")
        plan = SeedPlan(events, days, seed_, end_of_window(), pid)
        columns = (TextColumn("[bold]seeding"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                   _RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task("seed", total=events)

            def advance(n: int) -> None:
                progress.advance(task, n)

            def via_daemon(daemon: Any) -> SeedReport:
                return seed_via_daemon(daemon.base, daemon.token, plan, progress=advance, workers=workers)

            def via_store(store: Any) -> SeedReport:
                ensure_schema(store, settings, migrate=False)
                return seed_store(settings, store, plan, progress=advance, workers=workers)

            if via == "daemon":
                report = via_daemon(DaemonClient(settings))
            elif via == "store":
                store = Store(settings.dsn, settings.clickhouse.database)
                try:
                    report = via_store(store)
                finally:
                    store.close()
            else:
                report = through_daemon_or_store(settings, via_daemon, via_store)
    except ObsdError as exc:
        raise fail(exc) from exc
    where = "through the daemon" if report.mode == "daemon" else f"into {settings.dsn}"
    out.print(f"seeded {report.events:,} events ({report.sessions:,} sessions) for project {pid!r} {where} "
              f"in {report.seconds:.1f} s ({report.events / max(report.seconds, 1e-9):,.0f} events/s)"
              + (f"; {report.rejected:,} rejected" if report.rejected else ""), highlight=False, soft_wrap=True)
