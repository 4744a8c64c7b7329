"""What every command shares: the consoles, the --config option, settings loading, error exits, and
the one rule for reaching data: through the running daemon when it answers, else the store itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from obsd.errors import ObsdError, StoreLockedError
from obsd.settings import Settings, load_settings

T = TypeVar("T")
out = Console()
err = Console(stderr=True)
FORMATS = ("table", "json", "csv")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: ./obsd.toml, then /etc/obsd/obsd.toml; "
                 "or OBSD_CONFIG).", show_default=False),
]


def load(config: Path | None, overrides: dict[str, Any] | None = None) -> Settings:
    """The settings for a command: the config file, then OBSD_* environment, then flags."""
    return load_settings(config, overrides)


def fail(exc: ObsdError) -> typer.Exit:
    """Print a domain error and give the exit code that goes with it."""
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(exc.exit_code)


def check_format(fmt: str) -> None:
    """Exit 2 unless --format is one of table, json, csv."""
    if fmt not in FORMATS:
        err.print("[bold red]error:[/] --format must be table, json or csv")
        raise typer.Exit(2)


def through_daemon_or_store(settings: Settings, via_daemon: Callable[[Any], T], via_store: Callable[[Any], T], *,
                            timeout: float = 30.0) -> T:
    """Run `via_daemon(DaemonClient)` when a daemon answers, else `via_store(Store)` on a store opened here.

    The embedded store can be held by one process only, so while `obsd serve` runs every command that
    reads or erases data goes through its admin API; when no daemon answers and the store is still
    held, the error says both.
    """
    from obsd.cli.daemon_client import DaemonClient
    from obsd.store.client import Store

    daemon = DaemonClient(settings, timeout=timeout)
    if daemon.alive():
        return via_daemon(daemon)
    try:
        store = Store(settings.dsn, settings.clickhouse.database)
    except StoreLockedError as exc:
        raise StoreLockedError(f"{exc}; no daemon answered at {daemon.base} (is server.listen right?)") from exc
    try:
        return via_store(store)
    finally:
        store.close()
