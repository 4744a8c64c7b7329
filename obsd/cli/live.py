"""`obsd tail` (events as they arrive) and `obsd status` (the daemon's live health): views of a running daemon."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from obsd.cli.app import app
from obsd.cli.common import ConfigOpt, err, fail, load, out
from obsd.errors import DaemonError, ObsdError

_TYPE_STYLE = {"pageview": "bold blue", "click": "cyan", "scroll": "dim", "error": "bold red",
               "web_vital": "yellow", "custom": "magenta"}
_PROTOCOL_STYLE = {"plausible": "green", "sentry": "magenta"}
_RATING_STYLE = {"good": "green", "needs-improvement": "yellow", "poor": "red"}


def tail_line(row: dict[str, Any]) -> Text:
    """One compact, colour-coded line for a live event."""
    typ = str(row.get("type", "?"))
    ts = dt.datetime.fromtimestamp(float(row.get("ts", 0)), dt.UTC).strftime("%H:%M:%S.%f")[:-3]
    line = Text.assemble((ts, "dim"), " ", (f"{row.get('project_id', '')}", "dim"), " ")
    protocol = row.get("protocol") or "obsd"
    if protocol != "obsd":  # which wire it came by: plausible, sentry
        line.append(f"[{protocol}] ", _PROTOCOL_STYLE.get(str(protocol), "dim"))
    line.append_text(Text.assemble((f"{typ:<9}", _TYPE_STYLE.get(typ, "")), " ",
                                   (str(row.get("path") or "/"), "bold"), " "))
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
    elif typ == "session":
        errors = float(row.get("value", 0))
        line.append(f"{row.get('name', '')}" + (f" · {errors:.0f} errors" if errors else ""))
    release = row.get("release")
    if release:
        line.append(f"  @{release}" + (f" ({row['environment']})" if row.get("environment") else ""), "dim")
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
    release: Annotated[list[str] | None, typer.Option("--release", help="Only events of these releases.")] = None,
    environment: Annotated[list[str] | None, typer.Option("--environment", help="Only these environments.")]
    = None,
    protocol: Annotated[list[str] | None, typer.Option("--protocol", help="Only events that came by these "
                                                       "protocols: obsd, plausible, sentry.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Exit after N events (0: run until Ctrl-C).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="NDJSON rows on stdout, e.g. to pipe into jq.")] = False,
) -> None:
    """Show events as they arrive at the running daemon; reconnects when it restarts."""
    from obsd.cli.daemon_client import DaemonClient
    from obsd.cli.tail_client import TailEvent, follow
    from obsd.ops.tailfilter import TailFilter

    try:
        settings = load(config)
        flt = TailFilter(frozenset(project or ()), frozenset(type_ or ()), frozenset(name or ()), path,
                         where or "", sample, frozenset(release or ()), frozenset(environment or ()),
                         frozenset(protocol or ()))
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
        raise fail(exc) from exc


def current_visitors(daemon: Any, doc: dict[str, Any]) -> dict[str, int | None]:
    """Visitors with an event in the last 5 minutes, per project (None where the report could not run)."""
    out: dict[str, int | None] = {}
    for project in doc.get("projects", []):
        try:
            out[project] = int(daemon.stats("realtime", {"project": project})["summary"]["current_visitors"])
        except (ObsdError, KeyError, TypeError, ValueError):
            out[project] = None
    return out


@app.command()
def status(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit (1 when not ready).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: the raw status document.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.")] = 2.0,
) -> None:
    """A live view of the running daemon: rates, buffer and spool fill, rejects, store health, current visitors."""
    from obsd.cli.daemon_client import DaemonClient
    from obsd.cli.status_view import StatusView, unreachable

    try:
        daemon = DaemonClient(load(config), timeout=5.0)
        view = StatusView()
        if once:
            doc = daemon.status()
            if as_json:
                sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            else:
                view.update(doc, current_visitors(daemon, doc))
                out.print(view.render())
            raise typer.Exit(0 if doc.get("ready") else 1)
        with Live(view.render(), console=out, auto_refresh=False, screen=False) as live:
            while True:
                try:
                    doc = daemon.status()
                    view.update(doc, current_visitors(daemon, doc))
                    live.update(view.render(), refresh=True)
                except DaemonError as exc:
                    live.update(unreachable(daemon.base, str(exc)), refresh=True)
                time.sleep(max(0.2, interval))
    except KeyboardInterrupt:
        return
    except ObsdError as exc:
        raise fail(exc) from exc


