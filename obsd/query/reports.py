"""Reports: one SQL query set per report over the rollups (hourly traffic, visits) or, under filters, events.

A new report is a method here (its name with '-' as '_') and its name in REPORTS; the visit reports live
in obsd/query/visits.py, goals, funnels, props and realtime in obsd/query/conversions.py, the filtered
forms of the traffic reports in obsd/query/filtered.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from obsd.errors import QueryError
from obsd.query import conversions, filtered, visits
from obsd.query.document import Report
from obsd.query.filters import Goal, Sql
from obsd.query.params import DAY, HOUR, ReportError, ReportParams, floor_day
from obsd.query.releases import GROUP_PROTOCOLS, GROUP_RELEASES, release_health
from obsd.query.scope import Scope
from obsd.settings import ProjectSettings, Settings
from obsd.store.client import QueryResult
from obsd.vocabulary import METRIC_ORDER, THRESHOLDS

REPORTS = ("overview", "pages", "referrers", "devices", "vitals", "errors", "events", "recent", "releases",
           "entry-pages", "exit-pages", "sources", "utm", "locations", "props", "goals", "funnel", "realtime")


class Source(Protocol):
    """Something that runs a query: a Store."""

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> QueryResult: ...


class Reports:
    """Runs reports against the rollups of one store (the `_all` tables in cluster mode)."""

    def __init__(self, source: Source, database: str, *, cluster: bool = False, timeout_s: float = 30.0,
                 projects: Sequence[ProjectSettings] = ()) -> None:
        self.source = source
        self.db = database
        self.suffix = "_all" if cluster else ""
        # FINAL over day partitions merges only the days that still have several parts (limited read
        # connections set this for their whole session; these are dropped there).
        self.settings = {"readonly": "1", "max_execution_time": str(max(1, int(timeout_s))),
                         "do_not_merge_across_partitions_select_final": "1"}
        self.project_goals = {p.id: {g.name: Goal(g.name, g.page, g.event, tuple(sorted(g.props.items())))
                             for g in p.goals} for p in projects}
        self.project_funnels = {p.id: {f.name: tuple(f.steps) for f in p.funnels} for p in projects}

    @classmethod
    def for_settings(cls, source: Source, settings: Settings) -> Reports:
        """Reports over `source` as the settings configure them (database, cluster, timeout, goals)."""
        ch = settings.clickhouse
        return cls(source, ch.database, cluster=bool(ch.cluster), timeout_s=ch.query_timeout_s,
                   projects=settings.projects)

    def scope(self, p: ReportParams) -> Scope:
        """The tables, range and filters of a report run."""
        return Scope(p, self.table("events"), self.table("visits"), self.project_goals.get(p.project, {}),
                     lambda rollup, extra: self._tier(p, rollup, extra), self.project_funnels.get(p.project, {}))

    def _run_sql(self, sql: str, params: dict[str, Any], columns: tuple[str, ...] = ()) -> QueryResult:
        res = self.source.query(sql, parameters=params, settings=self.settings)
        if not res.columns and columns:  # chDB names no columns for an empty result
            return QueryResult(list(columns), ["String"] * len(columns), [])
        return res

    def table(self, name: str) -> str:
        """The qualified name to read a table from."""
        return f"{self.db}.{name}{self.suffix}"

    def _q(self, sql: str, p: ReportParams, columns: tuple[str, ...] = (), *,
           params: dict[str, Any] | None = None) -> QueryResult:
        return self._run_sql(sql, {**p.sql_params(), **(params or {})}, columns)

    @staticmethod
    def _label_filters(p: ReportParams) -> tuple[str | None, dict[str, Any]]:
        """Release and environment filters as conditions on the rollups keyed by them; None when another
        filter is given (the report must then read events)."""
        if any(f.key not in ("release", "environment") for f in p.filters):
            return None, {}
        sql = Sql("l")
        return " AND ".join(sql.compare(f.key, f.op, f.value) for f in p.filters), sql.params

    def _where(self, extra: str = "") -> str:
        return ("project_id = {project:String} AND hour >= toDateTime({since:UInt32}, 'UTC') "
                "AND hour < toDateTime({until:UInt32}, 'UTC')" + (f" AND {extra}" if extra else ""))

    def _tier(self, p: ReportParams, rollup: str, extra: str) -> tuple[str, str]:
        """The daily tier of a rollup when the range is whole days (today counts whole while the range runs to
        now), else the hourly one: the table and its WHERE."""
        if p.since == floor_day(p.since) and (p.open_end or p.until == floor_day(p.until)):
            return self.table(f"{rollup}_daily"), (
                "project_id = {project:String} AND day >= toDate(toDateTime({since:UInt32}, 'UTC')) "
                "AND day < toDate(toDateTime({until:UInt32} - 1, 'UTC')) + 1" + (f" AND {extra}" if extra else ""))
        return self.table(f"{rollup}_hourly"), self._where(extra)

    def _bucket(self, p: ReportParams) -> str:
        return "hour" if p.bucket == "hour" else "toStartOfDay(hour, 'UTC')"

    def run(self, name: str, p: ReportParams) -> Report:
        """Run the named report (and, with a comparison, the same report over the earlier range)."""
        fn: Callable[[ReportParams], Report] | None = (getattr(self, name.replace("-", "_"), None)
                                                       if name in REPORTS else None)
        if fn is None:
            raise ReportError(f"unknown report {name!r}; reports: {', '.join(REPORTS)}")
        report = fn(p)
        if p.compare is not None and name not in ("recent", "realtime"):
            before = fn(p.shifted(*p.compare))
            report = replace(report, compare=before)
        return report

    def _scoped(self, name: str, p: ReportParams,
                fn: Callable[[visits.Query, Scope], tuple[dict[str, Any], QueryResult]]) -> Report:
        """A report computed from the events or visits under the report's scope (its range and filters)."""
        summary, table = fn(self._run_sql, self.scope(p))
        note = summary.pop("note", None)
        return Report(name, p, summary, table, notes=[note] if note else [])

    def entry_pages(self, p: ReportParams) -> Report:
        """The pages visits began on: visits, visitors, bounce rate and visit duration per page."""
        return self._scoped("entry-pages", p, visits.entry_pages)

    def exit_pages(self, p: ReportParams) -> Report:
        """The pages visits ended on."""
        return self._scoped("exit-pages", p, visits.exit_pages)

    def sources(self, p: ReportParams) -> Report:
        """Where visits came from: source and channel (by=channel: the six channels)."""
        return self._scoped("sources", p, visits.sources)

    def utm(self, p: ReportParams) -> Report:
        """Campaigns: the UTM tags of the visits' landing pages."""
        return self._scoped("utm", p, visits.utm)

    def locations(self, p: ReportParams) -> Report:
        """Visits by country (by=region, by=city for finer levels)."""
        return self._scoped("locations", p, visits.locations)

    def goals(self, p: ReportParams) -> Report:
        """Each configured goal: visitors who converted, conversions and the conversion rate."""
        return self._scoped("goals", p, conversions.goals)

    def funnel(self, p: ReportParams) -> Report:
        """Visits reaching each step of a funnel in order within the visit, and the drop-off."""
        return self._scoped("funnel", p, conversions.funnel)

    def props(self, p: ReportParams) -> Report:
        """A custom event's property values with counts, visitors and sums of numeric properties."""
        return self._scoped("props", p, conversions.props)

    def realtime(self, p: ReportParams) -> Report:
        """Current visitors: anyone with an event in the last 5 minutes, and the pages they are on."""
        summary, table = conversions.realtime(self._run_sql, self.table("events"), p.project, p.limit)
        return Report("realtime", p, summary, table)

    def overview(self, p: ReportParams) -> Report:
        """Visitors, visits, pageviews, bounce rate, visit duration, events and errors: totals and a series.

        Visitors and sessions are those of the visits that began in the range (Plausible's sessions: a session
        with a pageview or a custom event); pageviews, events and errors those that happened in it."""
        bucket = "toStartOfHour(start)" if p.bucket == "hour" else "toStartOfDay(start, 'UTC')"
        vsum, by_bucket = visits.visit_series(self._run_sql, self.scope(p), bucket)
        vbuckets = {_as_utc(b): v for b, v in by_bucket.items()}
        keys = ("visits", "views_per_visit", "bounce_rate", "visit_duration")
        if p.filters:
            # Filters select visits: every number is of the matching visits (sessions are visits then).
            summary: dict[str, Any] = {k: vsum[k] for k in ("visitors", "visits", "pageviews", "views_per_visit",
                                                             "bounce_rate", "visit_duration", "events", "errors")}
            summary["sessions"] = summary["visits"]
            summary["views_per_session"] = summary["views_per_visit"]
            rows = []
            for b in p.buckets():
                v = vbuckets.get(b, {})
                rows.append([b, v.get("pageviews", 0), v.get("visitors", 0), v.get("visits", 0), v.get("events", 0),
                             v.get("errors", 0), *(v.get(k, 0) for k in keys)])
        else:
            # Pageviews, events and errors as they happened in each bucket (the hourly rollup: sums only);
            # visitors and sessions are those of the visits that began in it, from the same visit rows as the
            # visit metrics (merging a month of hourly uniq states cost as much as the whole visit scan).
            counts = self._q(f"SELECT {self._bucket(p)} AS bucket, sumIf(r.events, r.type = 'pageview') AS pv, "
                             "sumIf(r.events, r.type != 'session') AS events, sumIf(r.events, r.type = 'error') "
                             f"AS errors FROM {self.table('events_hourly')} AS r WHERE {self._where()} "
                             "GROUP BY bucket", p)
            per_bucket = {_as_utc(b): (int(pv), int(ev), int(err)) for b, pv, ev, err in counts.rows}
            rows = []
            for b in p.buckets():
                pv, ev, err = per_bucket.get(b, (0, 0, 0))
                v = vbuckets.get(b, {})
                rows.append([b, pv, v.get("visitors", 0), v.get("visits", 0), ev, err, *(v.get(k, 0) for k in keys)])
            pageviews = sum(r[1] for r in rows)
            summary = {"pageviews": pageviews, "visitors": vsum["visitors"], "sessions": vsum["visits"],
                       "events": sum(r[4] for r in rows), "errors": sum(r[5] for r in rows),
                       "views_per_session": round(pageviews / vsum["visits"], 2) if vsum["visits"] else 0.0}
            summary.update({k: vsum[k] for k in keys})
        series = QueryResult(["bucket", "pageviews", "visitors", "sessions", "events", "errors", *keys],
                             ["DateTime", "UInt64", "UInt64", "UInt64", "UInt64", "UInt64", "UInt64", "Float64",
                              "Float64", "UInt64"], rows)
        return Report("overview", p, summary, series, series)

    def _top(self, t: str, key: str, where: str) -> str:
        """A filter to the top `limit` keys by pageviews: uniq states are then merged for those rows only."""
        return (f"{where} AND {key} IN (SELECT {key} FROM {t} WHERE {where} GROUP BY {key} "
                f"ORDER BY sum(pageviews) DESC, {key} LIMIT {{limit:UInt32}})")

    def pages(self, p: ReportParams) -> Report:
        """Top pages by pageviews, with visitors, sessions and share of all pageviews."""
        if p.filters:
            return self._scoped("pages", p, filtered.pages)
        t, where = self._tier(p, "pages", "path = {path:String}" if p.path else "")
        total = self._q(f"SELECT sum(pageviews), uniqExact(path) FROM {t} WHERE {where}", p)
        pv, pages = (int(x or 0) for x in total.rows[0])
        res = self._q(
            f"SELECT path, sum(pageviews) AS pageviews, uniqMerge(visitors) AS visitors, "
            f"uniqMerge(sessions) AS sessions, round(pageviews / {max(pv, 1)}, 4) AS share FROM {t} "
            f"WHERE {self._top(t, 'path', where)} GROUP BY path ORDER BY pageviews DESC, path", p,
            ("path", "pageviews", "visitors", "sessions", "share"))
        return Report("pages", p, {"pageviews": pv, "pages": pages}, res)

    def referrers(self, p: ReportParams) -> Report:
        """Where visitors come from: referring hosts ('(direct)' when none), internal navigation left out."""
        if p.filters:
            return self._scoped("referrers", p, filtered.referrers)
        t = self.table("referrers_hourly")
        where = self._where("internal = 0")
        total = self._q(f"SELECT sum(pageviews), sumIf(pageviews, referrer_host = ''), uniqExact(referrer_host) "
                        f"FROM {t} WHERE {where}", p)
        pv, direct, sources = (int(x or 0) for x in total.rows[0])
        res = self._q(
            f"SELECT if(referrer_host = '', '(direct)', toString(referrer_host)) AS referrer, "
            f"sum(pageviews) AS pageviews, uniqMerge(visitors) AS visitors, "
            f"round(pageviews / {max(pv, 1)}, 4) AS share "
            f"FROM {t} WHERE {self._top(t, 'referrer_host', where)} GROUP BY referrer "
            "ORDER BY pageviews DESC, referrer", p, ("referrer", "pageviews", "visitors", "share"))
        return Report("referrers", p, {"pageviews": pv, "direct": direct, "sources": sources}, res)

    def devices(self, p: ReportParams) -> Report:
        """Pageviews and visitors by device type, browser and OS, each with its share."""
        if p.filters:
            return self._scoped("devices", p, filtered.devices)
        t = self.table("devices_hourly")
        # One pass over the states for all three splits; grouping() tells which split a row belongs to.
        res = self._q(
            "SELECT dimension, value, pageviews, visitors, "
            "round(pageviews / sum(pageviews) OVER (PARTITION BY dimension), 4) AS share FROM ("
            "SELECT ['device', 'browser', 'os'][indexOf([3, 5, 6], grouping(device_type, browser, os))] AS dimension, "
            "multiIf(dimension = 'device', device_type, dimension = 'browser', browser, os) AS raw_value, "
            "if(raw_value = '', '(unknown)', toString(raw_value)) AS value, "
            f"sum(pageviews) AS pageviews, uniqMerge(visitors) AS visitors FROM {t} WHERE {self._where()} "
            "GROUP BY GROUPING SETS ((device_type), (browser), (os))) "
            "ORDER BY indexOf(['device', 'browser', 'os'], dimension), pageviews DESC, value "
            "LIMIT {limit:UInt32} BY dimension", p, ("dimension", "value", "pageviews", "visitors", "share"))
        pv = sum(int(r[2]) for r in res.rows if r[0] == "device")
        return Report("devices", p, {"pageviews": pv}, res)

    def vitals(self, p: ReportParams) -> Report:
        """Web Vitals p50/p75/p95 and good / needs-improvement / poor shares per metric."""
        by = p.by or "metric"
        if by not in ("metric", "path", "device"):
            raise ReportError(f"vitals: by={by!r}; use metric, path or device")
        dim = {"metric": "", "path": "toString(path) AS path, ", "device": "device_type AS device, "}[by]
        group = {"metric": "metric", "path": "path, metric", "device": "device, metric"}[by]
        if p.filters:
            res = filtered.vitals_rows(self._run_sql, self.scope(p), dim, group)
        else:
            # Per-page detail only when asked for: the per-metric table is a few rows per hour.
            t = self.table("vitals_hourly" if p.path or by == "path" else "vitals_metric_hourly")
            where = self._where("path = {path:String}" if p.path else "")
            order = 'indexOf(' + repr(list(METRIC_ORDER)) + ', metric)' if by == 'metric' else 'samples DESC'
            res = self._q(
                f"SELECT {dim}metric, sum(samples) AS samples, quantilesMerge(0.5, 0.75, 0.95)(quantiles) AS q, "
                f"sum(good) AS good, sum(poor) AS poor FROM {t} WHERE {where} GROUP BY {group} "
                f"ORDER BY {order}, metric LIMIT {{limit:UInt32}}", p)
        keys = {"metric": [], "path": ["path"], "device": ["device"]}[by]
        rows: list[list[Any]] = []
        for r in res.rows:
            d = dict(zip(res.columns, r, strict=True))
            metric, n, q = d["metric"], int(d["samples"]), d["q"]
            p75 = float(q[1])
            rated = metric in THRESHOLDS and n > 0
            good, poor = int(d["good"]), int(d["poor"])
            rows.append([*(d[k] for k in keys), metric, n, float(q[0]), p75, float(q[2]),
                         rating(metric, p75) if rated else "",
                         round(good / n, 4) if rated else None, round((n - good - poor) / n, 4) if rated else None,
                         round(poor / n, 4) if rated else None])
        if by == "metric":
            rows.sort(key=lambda r: (METRIC_ORDER.index(r[0]) if r[0] in METRIC_ORDER else 99, r[0]))
        cols = [*keys, "metric", "samples", "p50", "p75", "p95", "rating", "good", "needs_improvement", "poor"]
        types = [*(["String"] * len(keys)), "String", "UInt64", "Float64", "Float64", "Float64", "String",
                 "Float64", "Float64", "Float64"]
        return Report("vitals", p, {"samples": sum(r[len(keys) + 1] for r in rows)}, QueryResult(cols, types, rows))

    def errors(self, p: ReportParams) -> Report:
        """Error groups by fingerprint: count, affected sessions, first/last seen, a sample message and stack."""
        labels, params = self._label_filters(p)
        if labels is None:
            return self._scoped("errors", p, filtered.errors)
        t = self.table("errors_hourly")
        where = self._where(labels)
        total = self._q(f"SELECT sum(events), uniqExact(fingerprint) FROM {t} WHERE {where}", p, params=params)
        n, groups = (int(x or 0) for x in total.rows[0])
        # Messages and stacks are only read for the top groups.
        top = (f"{where} AND e.fingerprint IN (SELECT fingerprint FROM {t} WHERE {where} GROUP BY fingerprint "
               "ORDER BY sum(events) DESC, max(last_seen) DESC LIMIT {limit:UInt32})")
        res = self._q(
            "SELECT lower(hex(e.fingerprint)) AS fingerprint, argMaxMerge(e.message) AS message, "
            "sum(e.events) AS events, uniqMerge(e.sessions) AS sessions, min(e.first_seen) AS first_seen, "
            "max(e.last_seen) AS last_seen, argMaxMerge(e.path) AS path, argMaxMerge(e.source) AS source, "
            f"argMaxMerge(e.stack) AS stack, {GROUP_PROTOCOLS} AS protocols, {GROUP_RELEASES} AS releases "
            f"FROM {t} AS e WHERE {top} GROUP BY e.fingerprint ORDER BY events DESC, last_seen DESC", p,
            ("fingerprint", "message", "events", "sessions", "first_seen", "last_seen", "path", "source", "stack",
             "protocols", "releases"), params=params)
        return Report("errors", p, {"errors": n, "groups": groups}, res)

    def events(self, p: ReportParams) -> Report:
        """Event counts by type and name (custom events by their name), with visitors."""
        if p.filters:
            return self._scoped("events", p, filtered.events)
        t, where = self._tier(p, "events", "type = {type:String}" if p.type else "")
        res = self._q(
            "SELECT type, name, sum(events) AS events, uniqMerge(visitors) AS visitors "
            f"FROM {t} WHERE {where} GROUP BY type, name "
            "ORDER BY events DESC, type, name LIMIT {limit:UInt32}", p, ("type", "name", "events", "visitors"))
        return Report("events", p, {"events": sum(int(r[2]) for r in res.rows)}, res)

    def releases(self, p: ReportParams) -> Report:
        """Sessions per release and environment (Sentry release health): crash-free and unhandled-free shares."""
        labels, params = self._label_filters(p)
        if labels is None:
            raise ReportError("releases: only the release and environment filters apply (sessions are counted per "
                              "release and environment)")
        where = self._where(labels)
        summary, table = release_health(lambda sql, p_, cols: self._q(sql, p_, cols, params=params),
                                        self.table("release_sessions_hourly"), self.table("errors_hourly"), where, p)
        return Report("releases", p, summary, table)

    def recent(self, p: ReportParams) -> Report:
        """The latest events in the range (raw table, newest first), for a live strip."""
        # Look at the range's last hour first, then its last day, then all of it: a live strip asks for
        # a handful of rows, and the newest hour usually has them without scanning weeks of events.
        res = None
        for start in sorted({max(p.since, p.until - HOUR), max(p.since, p.until - DAY), p.since}, reverse=True):
            res = self._recent(p, start)
            if len(res.rows) >= p.limit:
                break
        assert res is not None
        return Report("recent", p, {"events": len(res.rows)}, res)

    def _recent(self, p: ReportParams, since: datetime) -> QueryResult:
        t = self.table("events")
        params = {**p.sql_params(), "since": int(since.timestamp())}
        scope = self.scope(p)
        filters = scope.event_where()
        params = {**params, **scope.sql.params}
        where = ("project_id = {project:String} AND toDate(ts) >= toDate(toDateTime({since:UInt32}, 'UTC')) "
                 "AND toDate(ts) <= toDate(toDateTime({until:UInt32}, 'UTC')) "
                 "AND ts >= toDateTime({since:UInt32}, 'UTC') AND ts < toDateTime({until:UInt32}, 'UTC') "
                 "AND NOT is_bot" + (" AND type = {type:String}" if p.type else "") + filters)
        res = self.source.query(
            "SELECT ts, type, name, path, device_type, browser, country, "
            "multiIf(type = 'web_vital', concat(name, ' ', toString(round(value, 3))), "
            "type = 'error', substring(error_message, 1, 160), type = 'click', substring(selector, 1, 160), "
            "type = 'scroll', concat(toString(value), '%'), type = 'custom', name, "
            "substring(title, 1, 160)) AS detail "
            f"FROM {t} WHERE {where} ORDER BY ts DESC, event_id LIMIT {{limit:UInt32}}",
            parameters=params, settings=self.settings)
        if not res.columns:
            return QueryResult(["ts", "type", "name", "path", "device_type", "browser", "country", "detail"],
                               ["String"] * 8, [])
        return res


def rating(metric: str, value: float) -> str:
    """Google's rating of a Web Vitals value: good, needs-improvement or poor ('' if unrated)."""
    if metric not in THRESHOLDS:
        return ""
    good, poor = THRESHOLDS[metric]
    if value <= good:
        return "good"
    return "poor" if value > poor else "needs-improvement"


def _as_utc(t: Any) -> datetime:
    if isinstance(t, str):
        t = datetime.fromisoformat(t.replace("Z", "+00:00"))
    if not isinstance(t, datetime):
        raise QueryError(f"expected a time bucket, got {t!r}")
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
