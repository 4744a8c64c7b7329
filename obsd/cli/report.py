"""`obsd report <name>`: every report of the query API, rendered as tables, JSON or CSV."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from obsd.cli.app import report_app
from obsd.cli.common import ConfigOpt, check_format, fail, load, out, through_daemon_or_store
from obsd.errors import ObsdError


def _report_command(name: str, summary: str) -> None:
    def command(
        config: ConfigOpt = None,
        project: Annotated[str | None, typer.Option("--project", "-p", help="Project id (default: the only "
                                                    "configured project).")] = None,
        since: Annotated[str, typer.Option(help="Start: 24h, 7d (whole hours/days up to now), YYYY-MM-DD or "
                                           "YYYY-MM-DDTHH:MM (UTC, rounded down to the hour).")] = "24h",
        until: Annotated[str, typer.Option(help="End: now, YYYY-MM-DD (that whole day) or YYYY-MM-DDTHH:MM "
                                           "(rounded up to the hour).")] = "now",
        fmt: Annotated[str, typer.Option("--format", "-f", help="table, json (the API document) or csv.")]
        = "table",
        limit: Annotated[int, typer.Option(help="Rows to show (1-1000).")] = 20,
        bucket: Annotated[str | None, typer.Option(help="Series bucket: hour or day (default: hour up to "
                                                   "72 hours, else day).")] = None,
        path: Annotated[str | None, typer.Option(help="Only this page (pages, vitals).")] = None,
        type_: Annotated[str | None, typer.Option("--type", help="Only this event type (events, recent).")]
        = None,
        by: Annotated[str | None, typer.Option(help="vitals: group by metric, path or device.")] = None,
        release: Annotated[str | None, typer.Option(help="Only this release (errors, releases).")] = None,
        environment: Annotated[str | None, typer.Option(help="Only this environment (errors, releases).")] = None,
    ) -> None:
        from obsd.cli.report_view import render, to_csv

        check_format(fmt)
        raw = {"project": project, "since": since, "until": until, "limit": str(limit), "bucket": bucket,
               "path": path, "type": type_, "by": by, "release": release, "environment": environment}
        try:
            doc = run_report(config, name, {k: v for k, v in raw.items() if v})
        except ObsdError as exc:
            raise fail(exc) from exc
        if fmt == "json":
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        elif fmt == "csv":
            sys.stdout.write(to_csv(doc))
        else:
            out.print(render(doc))

    command.__doc__ = summary
    report_app.command(name)(command)


def run_report(config: Path | None, name: str, raw: dict[str, str]) -> dict[str, Any]:
    """A report document: from the running daemon when there is one, else from the store directly."""
    from obsd.query.params import ReportError, parse_params
    from obsd.query.reports import Reports
    from obsd.store.readonly import limit_reads

    settings = load(config)
    projects = [p.id for p in settings.projects]
    params = parse_params(raw, default_project=projects[0] if len(projects) == 1 else None)
    if params.project not in projects:
        raise ReportError(f"project {params.project!r} is not configured; projects: {', '.join(projects) or '(none)'}")

    def from_store(store: Any) -> dict[str, Any]:
        reports = Reports(limit_reads(store, settings), settings.clickhouse.database,
                          cluster=bool(settings.clickhouse.cluster), timeout_s=settings.clickhouse.query_timeout_s)
        return reports.run(name, params).to_json()

    return through_daemon_or_store(settings, lambda daemon: daemon.stats(name, raw), from_store,
                                   timeout=settings.clickhouse.query_timeout_s + 5)


for _name, _summary in (
    ("overview", "Visitors, pageviews, sessions, events and errors, with a trend per hour or day."),
    ("pages", "Top pages by pageviews, with visitors, sessions and share."),
    ("referrers", "Referring sites ('(direct)' when none); navigation within the site is left out."),
    ("devices", "Pageviews and visitors by device type, browser and operating system."),
    ("vitals", "Web Vitals p50/p75/p95 with good / needs-improvement / poor shares (Google's thresholds)."),
    ("errors", "Error groups by fingerprint: count, sessions, first/last seen, top frame, protocols, releases."),
    ("events", "Event counts by type and name, with visitors."),
    ("recent", "The latest events in the range, newest first."),
    ("releases", "Sessions per release (Sentry release health): crash-free and unhandled-free shares, errors."),
):
    _report_command(_name, _summary)


