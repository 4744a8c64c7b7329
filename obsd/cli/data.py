"""`obsd query` (read-only SQL) and `obsd purge` (erasure): data, through the daemon or the store."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from obsd.cli.app import app
from obsd.cli.common import ConfigOpt, check_format, err, fail, load, out, through_daemon_or_store
from obsd.errors import ObsdError
from obsd.store.client import QueryResult
from obsd.store.readonly import UserQueries, limit_reads


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
    check_format(fmt)
    try:
        settings = load(config)
        cap = min(max_rows or settings.clickhouse.query_max_rows, settings.clickhouse.query_max_rows)
        res = through_daemon_or_store(
            settings, lambda daemon: daemon.query(sql, cap),
            lambda store: UserQueries(limit_reads(store, settings)).run(sql, max_rows=cap),
            timeout=settings.clickhouse.query_timeout_s + 5)
    except ObsdError as exc:
        raise fail(exc) from exc
    render_result(res, fmt)


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
    from obsd.query.purge import PurgeRequest, parse_day
    from obsd.query.purge import purge as purge_rows

    try:
        settings = load(config)
        req = PurgeRequest(project, parse_day(before) if before else None, session)
        req.validate()
        what = f"project {project!r}" + (f", before {before}" if before else "") + (
            f", session {session!r}" if session else "")
        if not yes and not typer.confirm(f"Permanently delete the rows of {what}?"):
            raise typer.Exit(1)
        deleted = through_daemon_or_store(settings, lambda daemon: daemon.purge(project, before, session),
                                          lambda store: purge_rows(store, req))
    except ObsdError as exc:
        raise fail(exc) from exc
    table = Table(title=f"Purged: {what}")
    table.add_column("table")
    table.add_column("rows deleted", justify="right")
    for name, n in deleted.items():
        table.add_row(name, f"{n:,}")
    table.add_row("[bold]total[/]", f"[bold]{sum(deleted.values()):,}[/]")
    out.print(table)
