"""`obsd serve` (run the daemon) and `obsd systemd-unit` (run it as a service)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from obsd.cli.app import app
from obsd.cli.common import ConfigOpt, fail, load
from obsd.errors import ObsdError


@app.command()
def serve(
    config: ConfigOpt = None,
    listen: Annotated[str | None, typer.Option(help="host:port to listen on (server.listen).")] = None,
    dsn: Annotated[str | None, typer.Option(help="ClickHouse DSN (clickhouse.dsn).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data directory (data_dir).")] = None,
    migrate: Annotated[bool, typer.Option("--migrate", help="Apply pending migrations before serving.")] = False,
) -> None:
    """Run the ingestion server until SIGTERM/SIGINT, then drain and exit 0."""
    from obsd import server
    from obsd.ops import logs

    try:
        overrides: dict[str, Any] = {"data_dir": data_dir}
        if listen:
            overrides["server"] = {"listen": listen}
        if dsn:
            overrides["clickhouse"] = {"dsn": dsn}
        settings = load(config, overrides)
        logs.configure(settings.log_level, settings.log_format)
        server.run(settings, migrate=migrate, reload=lambda: load(config, overrides))
    except ObsdError as exc:
        raise fail(exc) from exc


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
    from obsd.ops.systemd import unit_file

    exe = exec_start or shutil.which("obsd") or str(Path(sys.argv[0]).resolve())
    sys.stdout.write(unit_file(exec_start=exe, config=config_path, data_dir=data_dir, user=user,
                               watchdog_s=watchdog))
