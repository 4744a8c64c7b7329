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
        by: Annotated[str | None, typer.Option(help="vitals: metric, path or device; sources: source or channel; "
                                               "utm: one utm_* key; locations: country, region or city.")] = None,
        release: Annotated[str | None, typer.Option(help="Only this release (the filter release=…).")] = None,
        environment: Annotated[str | None, typer.Option(help="Only this environment (the filter "
                                                        "environment=…).")] = None,
        filter_: Annotated[list[str] | None, typer.Option(
            "--filter", help="KEY=VALUE, KEY!=VALUE or KEY~VALUE (contains); repeat to AND them. Keys: page, "
            "entry_page, exit_page, hostname, source, referrer, channel, utm_*, country, region, city, device, "
            "browser, os, event, goal, release, environment, prop:<key>.")] = None,
        compare: Annotated[str | None, typer.Option(help="previous (the same length just before) or "
                                                    "YYYY-MM-DD..YYYY-MM-DD: earlier values and changes.")] = None,
        step: Annotated[list[str] | None, typer.Option(help="funnel: a step, in order: page=/path (* for any "
                                                       "characters), event=Name or goal=Name.")] = None,
        funnel: Annotated[str | None, typer.Option(help="funnel: a funnel of [[projects.funnels]].")] = None,
        event: Annotated[str | None, typer.Option(help="props: the custom event (default: the most frequent).")]
        = None,
        prop: Annotated[str | None, typer.Option(help="props: the property to group by.")] = None,
    ) -> None:
        from obsd.cli.report_view import render, to_csv

        check_format(fmt)
        raw: dict[str, Any] = {"project": project, "since": since, "until": until, "limit": str(limit),
                               "bucket": bucket, "path": path, "type": type_, "by": by, "release": release,
                               "environment": environment, "filter": filter_, "compare": compare, "step": step,
                               "funnel": funnel, "event": event, "prop": prop}
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


def run_report(config: Path | None, name: str, raw: dict[str, Any]) -> dict[str, Any]:
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
        reports = Reports.for_settings(limit_reads(store, settings), settings)
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
    ("entry-pages", "Pages visits began on: visits, visitors, bounce rate, visit duration."),
    ("exit-pages", "Pages visits ended on: visits, visitors, bounce rate, visit duration."),
    ("sources", "Where visits came from: source and channel (direct, search, social, email, paid, referral)."),
    ("utm", "Campaigns: utm_source, utm_medium, utm_campaign, utm_content and utm_term of landing pages."),
    ("locations", "Visits by country; --by region or city where GeoIP knows them."),
    ("props", "A custom event's property values: counts, visitors and sums of numeric properties."),
    ("goals", "Conversions and conversion rate of the project's goals ([[projects.goals]])."),
    ("funnel", "Visits reaching each step in order within one visit, and the drop-off (--funnel or --step)."),
    ("realtime", "Current visitors: anyone with an event in the last 5 minutes, and their pages."),
):
    _report_command(_name, _summary)


