"""`obsd config check`: validate the configuration, show what obsd will use, and say what is risky."""

from __future__ import annotations

import json

import typer

from obsd.cli.app import config_app
from obsd.cli.common import ConfigOpt, err, fail, load, out
from obsd.errors import ObsdError
from obsd.ops.safety import refusals, risks
from obsd.settings import effective


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration, print the effective settings (secrets masked) and warn about risks."""
    try:
        settings = load(config)
    except ObsdError as exc:
        raise fail(exc) from exc
    out.print_json(json.dumps(effective(settings), default=str))
    for warning in risks(settings):
        err.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    problems = refusals(settings)
    for problem in problems:
        err.print(f"[bold red]error:[/] {problem} (obsd serve refuses to start)", highlight=False)
    if problems:
        raise typer.Exit(2)
    out.print(f"[green]ok[/]: configuration from {settings.source} is valid")
