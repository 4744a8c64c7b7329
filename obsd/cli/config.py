"""`obsd config check`: validate the configuration and show what obsd will use."""

from __future__ import annotations

import json

from obsd.cli.app import config_app
from obsd.cli.common import ConfigOpt, fail, load, out
from obsd.errors import ObsdError
from obsd.settings import effective


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration and print the effective settings (secrets masked)."""
    try:
        settings = load(config)
    except ObsdError as exc:
        raise fail(exc) from exc
    out.print(f"[green]ok[/]: configuration from {settings.source} is valid")
    out.print_json(json.dumps(effective(settings), default=str))


