"""The traffic reports (pages, referrers, devices, vitals, errors, events, recent) under filters.

Unfiltered they read the hourly rollups (obsd/query/reports.py); a filter on a page, a source, a country
or a property is not a dimension of those, so a filtered report asks the events table, restricted by
Scope.event_where(): event attributes filter the events, visit attributes keep the events of the
matching visits.
"""

from __future__ import annotations

from typing import Any

from obsd.query.scope import Scope
from obsd.query.visits import Query
from obsd.store.client import QueryResult
from obsd.vocabulary import THRESHOLDS

# The error fingerprint of errors_hourly_mv (migrations 0002/0007), for errors read from events.
FINGERPRINT = """cityHash64(
    trim(replaceRegexpAll(replaceRegexpAll(substring(error_message, 1, 500), '\\\\[(email|card|jwt|token)\\\\]', '0'),
        '[0-9A-Za-z_-]*[0-9][0-9A-Za-z_-]*', '<n>')),
    arrayStringConcat(arraySlice(arrayFilter(f -> f != '', arrayMap(l -> if(match(l, '^\\\\s*at\\\\s|@'),
        replaceRegexpAll(replaceRegexpAll(replaceRegexpAll(trim(l), '(:\\\\d+)+\\\\)?$', ''), '\\\\?[^\\\\s)]*', ''),
                         '[.-][0-9a-f]{8,}\\\\b', ''), ''),
        splitByChar('\\n', error_stack))), 1, 3), '\\n'),
    replaceRegexpAll(replaceRegexpAll(error_source, '\\\\?.*$', ''), '[.-][0-9a-f]{8,}\\\\b', ''))"""


def pages(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    where = f"{s.events_range} AND type = 'pageview'{s.path_where}{s.event_where()}"
    params = s.params()
    total = q(f"SELECT count(), uniqExact(path) FROM {where}", params, ())
    pv, n = (int(x or 0) for x in total.rows[0])
    res = q(f"SELECT toString(path) AS p, count() AS pageviews, uniq(toDate(ts), visitor_id) AS visitors, "
            f"uniq(sid) AS sessions, round(pageviews / {max(pv, 1)}, 4) AS share FROM {where} GROUP BY p "
            "ORDER BY pageviews DESC, p LIMIT {limit:UInt32}", params, ())
    return {"pageviews": pv, "pages": n}, _named(res, ["path", "pageviews", "visitors", "sessions", "share"])


def referrers(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    where = f"{s.events_range} AND type = 'pageview' AND NOT (referrer_host != '' AND referrer_host = hostname)" \
        f"{s.event_where()}"
    params = s.params()
    total = q(f"SELECT count(), countIf(referrer_host = ''), uniqExact(referrer_host) FROM {where}", params, ())
    pv, direct, n = (int(x or 0) for x in total.rows[0])
    res = q(f"SELECT if(referrer_host = '', '(direct)', toString(referrer_host)) AS r, count() AS pageviews, "
            f"uniq(toDate(ts), visitor_id) AS visitors, round(pageviews / {max(pv, 1)}, 4) AS share FROM {where} "
            "GROUP BY r ORDER BY pageviews DESC, r LIMIT {limit:UInt32}", params, ())
    return {"pageviews": pv, "direct": direct, "sources": n}, _named(res, ["referrer", "pageviews", "visitors",
                                                                           "share"])


def devices(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    res = q("SELECT dimension, value, pageviews, visitors, "
            "round(pageviews / sum(pageviews) OVER (PARTITION BY dimension), 4) AS share FROM ("
            "SELECT ['device', 'browser', 'os'][indexOf([3, 5, 6], grouping(device_type, browser, os))] AS dimension, "
            "multiIf(dimension = 'device', device_type, dimension = 'browser', browser, os) AS raw_value, "
            "if(raw_value = '', '(unknown)', toString(raw_value)) AS value, count() AS pageviews, "
            f"uniq(toDate(ts), visitor_id) AS visitors FROM {s.events_range} AND type = 'pageview'{s.event_where()} "
            "GROUP BY GROUPING SETS ((device_type), (browser), (os))) "
            "ORDER BY indexOf(['device', 'browser', 'os'], dimension), pageviews DESC, value "
            "LIMIT {limit:UInt32} BY dimension", s.params(), ("dimension", "value", "pageviews", "visitors", "share"))
    return {"pageviews": sum(int(r[2]) for r in res.rows if r[0] == "device")}, res


def _threshold(i: int, otherwise: str) -> str:
    """The metric's good (0) or poor (1) threshold as SQL over `name`, from the one table of them."""
    return "multiIf(" + "".join(f"name = '{m}', {t[i]:g}, " for m, t in THRESHOLDS.items()) + f"{otherwise})"


def vitals_rows(q: Query, s: Scope, dim: str, group: str) -> QueryResult:
    """Per metric (and path or device), from the raw samples: the same columns the rollup query gives."""
    return q(f"SELECT {dim}name AS metric, count() AS samples, quantiles(0.5, 0.75, 0.95)(value) AS q, "
             f"countIf(value <= {_threshold(0, '-inf')}) AS good, countIf(value > {_threshold(1, 'inf')}) AS poor "
             f"FROM {s.events_range} AND type = 'web_vital'{s.path_where}{s.event_where()} GROUP BY {group} "
             "ORDER BY samples DESC, metric LIMIT {limit:UInt32}", s.params(), ())


def errors(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    where = f"{s.events_range} AND type = 'error'{s.event_where()}"
    params = s.params()
    cols = ("fingerprint", "message", "events", "sessions", "first_seen", "last_seen", "path", "source", "stack",
            "protocols", "releases")
    # Output names x_…: an alias equal to a column (path, source) would shadow it in the filters.
    res = q(f"SELECT lower(hex({FINGERPRINT})) AS x_fp, argMax(error_message, ts) AS x_message, count() AS x_events, "
            "uniq(session_id) AS x_sessions, min(ts) AS x_first, max(ts) AS x_last, "
            "argMax(toString(path), ts) AS x_path, argMax(error_source, ts) AS x_source, "
            "argMax(error_stack, ts) AS x_stack, "
            "arraySort(groupUniqArray(if(protocol = '', 'obsd', toString(protocol)))) AS x_protocols, "
            "arraySort(groupUniqArrayIf(10)(toString(release), release != '')) AS x_releases "
            f"FROM {where} GROUP BY x_fp ORDER BY x_events DESC, x_last DESC LIMIT {{limit:UInt32}}", params, cols)
    total = q(f"SELECT count(), uniqExact({FINGERPRINT}) FROM {where}", params, ())
    n, groups = (int(x or 0) for x in total.rows[0])
    return {"errors": n, "groups": groups}, _named(res, list(cols))


def events(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    type_ = " AND type = {type:String}" if s.p.type else " AND type != 'session'"
    res = q(f"SELECT type, name, count() AS events, uniq(toDate(ts), visitor_id) AS visitors FROM {s.events_range}"
            f"{type_}{s.event_where()} GROUP BY type, name ORDER BY events DESC, type, name LIMIT {{limit:UInt32}}",
            s.params(), ("type", "name", "events", "visitors"))
    return {"events": sum(int(r[2]) for r in res.rows)}, res


def _named(res: QueryResult, columns: list[str]) -> QueryResult:
    return QueryResult(columns, res.types or ["String"] * len(columns), res.rows, res.truncated)
