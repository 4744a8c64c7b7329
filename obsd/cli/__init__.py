"""The obsd command line: parses flags into settings, calls the core, renders with rich.

The only package that imports typer; the daemon's packages never import it.
"""

from obsd.cli import config, data, live, migrate, report, seed, serve  # noqa: F401 - they register commands
from obsd.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
