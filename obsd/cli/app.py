"""The Typer application and its command groups; each command lives in the module of its group."""

from __future__ import annotations

from typing import Annotated

import typer

from obsd import __version__
from obsd.cli.common import out

app = typer.Typer(help="obsd: self-hosted web observability collector.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
migrate_app = typer.Typer(help="Apply, revert, inspect and create schema migrations.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
report_app = typer.Typer(help="Reports over the rollups: overview, pages, referrers, devices, vitals, errors, "
                         "events, recent.", no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")
app.add_typer(config_app, name="config")
app.add_typer(report_app, name="report")


def version_callback(value: bool) -> None:
    """Print the version for --version."""
    if value:
        out.print(f"obsd {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """obsd: self-hosted web observability collector."""
