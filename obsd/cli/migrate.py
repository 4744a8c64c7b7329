"""`obsd migrate up|down|status|create`: the store's schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from obsd.cli.app import migrate_app
from obsd.cli.common import ConfigOpt, fail, load, out
from obsd.errors import ObsdError


def _with_migrator(config: Path | None, action: Callable[[Any], Any]) -> Any:
    """Open the store named by the config, run `action` on a Migrator, close the store."""
    from obsd.store.client import Store
    from obsd.store.migrations import Migrator

    try:
        settings = load(config)
        store = Store(settings.dsn, settings.clickhouse.database)
        try:
            return action(Migrator(store, cluster=settings.clickhouse.cluster))
        finally:
            store.close()
    except ObsdError as exc:
        raise fail(exc) from exc
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
    from obsd.store.migrations import create, default_dir

    try:
        up, down = create(directory or default_dir(), name)
    except ObsdError as exc:
        raise fail(exc) from exc
    out.print(f"created {up}\ncreated {down}")


