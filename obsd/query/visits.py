"""Visit reports over the `visits` rollup (one row per visit, read with FINAL): the overview's visit metrics,
entry and exit pages, sources and channels, campaigns (UTM) and locations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from obsd.query.params import UTM_KEYS, ReportError
from obsd.query.scope import VISITORS, Scope
from obsd.store.client import QueryResult

Query = Callable[[str, dict[str, Any], tuple[str, ...]], QueryResult]
VISIT_COLUMNS = ("visits", "visitors", "bounce_rate", "visit_duration")
LOCATION_LEVELS = {"country": ("country",), "region": ("country", "region"), "city": ("country", "region", "city")}


def visit_series(q: Query, s: Scope, bucket_sql: str) -> tuple[dict[str, Any], dict[datetime, dict[str, Any]]]:
    """Visit metrics per bucket and for the whole range, in one scan (GROUPING SETS)."""
    where = s.visit_where()
    metrics = s.metrics()
    res = q(f"SELECT grouping(bucket) = 1 AS total, {bucket_sql} AS bucket, {metrics}, sum(pageviews) AS pv, "
            f"sum(events) AS ev, sum(errors) AS er FROM {s.visits_range}{where} "
            "GROUP BY GROUPING SETS ((bucket), ()) ORDER BY total, bucket", s.params(), ())
    summary: dict[str, Any] = {}
    per_bucket: dict[datetime, dict[str, Any]] = {}
    for row in res.rows:
        d = _visit_values(dict(zip(res.columns, row, strict=True)))
        if row[0]:
            summary = d
        else:
            per_bucket[d.pop("bucket")] = d
    return summary or _visit_values({"visits": 0, "visitors": 0, "bounce_rate": 0, "visit_duration": 0, "pv": 0,
                                     "ev": 0, "er": 0}), per_bucket


def _visit_values(d: dict[str, Any]) -> dict[str, Any]:
    visits, pv = int(d["visits"]), int(d["pv"])
    out = {"visits": visits, "visitors": int(d["visitors"]), "pageviews": pv, "events": int(d["ev"]),
           "errors": int(d["er"]), "views_per_visit": round(pv / visits, 2) if visits else 0.0,
           "bounce_rate": _num(d["bounce_rate"]), "visit_duration": int(_num(d["visit_duration"]))}
    if "bucket" in d:
        out["bucket"] = d["bucket"]
    return out


def _num(v: Any) -> float:
    f = float(v or 0)
    return 0.0 if f != f else f


def breakdown(q: Query, s: Scope, dims: dict[str, str], extra: str = "") -> QueryResult:
    """Visits, visitors, bounce rate and mean duration per value of one or more visit columns."""
    # Output names k0, k1…: an alias equal to a column name would shadow the column inside the metrics.
    keys = ", ".join(f"{expr} AS k{i}" for i, expr in enumerate(dims.values()))
    group = ", ".join(f"k{i}" for i in range(len(dims)))
    res = q(f"SELECT {keys}, {s.metrics()} FROM {s.visits_range}{extra}{s.visit_where()} GROUP BY {group} "
            f"ORDER BY visits DESC, {group} LIMIT {{limit:UInt32}}", s.params(), ())
    return _clean(QueryResult([*dims, *VISIT_COLUMNS], res.types or ["String"] * (len(dims) + 4), res.rows,
                              res.truncated))


def _clean(res: QueryResult) -> QueryResult:
    """Durations as whole seconds and no NaN (an empty group)."""
    if "visit_duration" not in res.columns:
        return res
    i = res.columns.index("visit_duration")
    rows = [[*r[:i], int(_num(r[i])), *r[i + 1:]] for r in res.rows]
    return QueryResult(res.columns, res.types, rows, res.truncated)


def totals(q: Query, s: Scope, *, visitors: bool = True) -> dict[str, Any]:
    """The range's visits and visitors under the report's filters (the denominators of shares and rates)."""
    res = q(f"SELECT count(), {VISITORS if visitors else '0'} FROM {s.visits_range}{s.visit_where()}", s.params(), ())
    n_visits, n_visitors = (int(x or 0) for x in res.rows[0]) if res.rows else (0, 0)
    return {"visits": n_visits, "visitors": n_visitors}


def entry_pages(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    """The page each visit began on."""
    return totals(q, s), breakdown(q, s, {"path": "entry_page"}, " AND entry_page != ''")


def exit_pages(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    """The last page each visit saw."""
    return totals(q, s), breakdown(q, s, {"path": "exit.2"}, " AND exit.2 != ''")


def sources(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    """Visits by channel and source ('' source: direct); by=channel gives the channels alone."""
    channel = "if(channel = '', 'direct', toString(channel))"
    if s.p.by == "channel":
        return totals(q, s), breakdown(q, s, {"channel": channel})
    if s.p.by not in ("", "source"):
        raise ReportError(f"sources: by={s.p.by!r}; use source (the default) or channel")
    return totals(q, s), breakdown(q, s, {"source": "if(source = '', '(direct)', toString(source))",
                                          "channel": channel})


def utm(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    """Campaign tags of the visits' landing pages: one key (by=utm_campaign) or all five, the top of each."""
    keys = [s.p.by] if s.p.by else list(UTM_KEYS)
    if any(k not in UTM_KEYS for k in keys):
        raise ReportError(f"utm: by={s.p.by!r}; use one of {', '.join(UTM_KEYS)} (or none for all five)")
    sets = ", ".join(f"({k})" for k in keys)
    key = "multiIf(" + ", ".join(f"grouping({k}) = 0, '{k}'" for k in keys) + ", '')"
    value = "multiIf(" + ", ".join(f"key = '{k}', toString({k})" for k in keys) + ", '')"
    tagged = " OR ".join(f"{k} != ''" for k in keys)
    res = q(f"SELECT {key} AS key, {value} AS value, {s.metrics()} FROM {s.visits_range} AND ({tagged})"
            f"{s.visit_where()} GROUP BY GROUPING SETS ({sets}) HAVING value != '' "
            f"ORDER BY indexOf({list(UTM_KEYS)}, key), visits DESC, value LIMIT {{limit:UInt32}} BY key",
            s.params(), ("key", "value", *VISIT_COLUMNS))
    return totals(q, s), _clean(res)


def locations(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    """Visits by country; by=region or by=city adds the finer level where GeoIP knows it."""
    level = s.p.by or "country"
    if level not in LOCATION_LEVELS:
        raise ReportError(f"locations: by={level!r}; use country, region or city")
    cols = LOCATION_LEVELS[level]
    return totals(q, s), breakdown(q, s, {c: c for c in cols}, f" AND {level} != ''")
