"""Event reports over `events`: goals (conversions), funnels (windowFunnel within one visit), a custom
event's properties, and who is on the site right now."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from obsd.query.filters import Goal, ReportError, Sql, prop_sql
from obsd.query.scope import Scope
from obsd.query.visits import Query, totals
from obsd.store.client import QueryResult

# A funnel's steps must happen in order within one visit; a visit ends after 30 minutes idle, so a day's
# window is "the whole visit".
FUNNEL_WINDOW_S = 86_400
CURRENT_MINUTES = 5
_NUMERIC = "('Int64', 'UInt64', 'Double')"


def _rate(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def goals(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    """Each goal of the project: visitors who converted, conversions, visits, conversion rate (% of visitors)."""
    gs = list(s.goals.values())
    cols = ("goal", "visitors", "conversions", "conversion_rate")
    base = totals(q, s)
    if not gs:
        return {**base, "goals": 0, "note": "no goals configured: add [[projects.goals]] to obsd.toml"}, \
            QueryResult(list(cols), ["String", "UInt64", "UInt64", "Float64"], [])
    counts: dict[str, tuple[int, int]] = {}
    if not s.p.filters:
        # Unfiltered, a page goal and an event goal without a property match read the pages and events
        # rollups: the same uniq states the events would give, a row per day and page instead of every event
        # (at 10M events over 30 days, 0.2 s instead of 0.6 s).
        counts |= _rollup_goals(q, s, [g for g in gs if g.page], "pages", "",
                                lambda g: s.sql.page_match("path", g.page), "pageviews")
        counts |= _rollup_goals(q, s, [g for g in gs if g.event and not g.props], "events", "type = 'custom'",
                                lambda g: f"name = {s.sql.bind(g.event)}", "events")
    raw = [g for g in gs if g.name not in counts]
    if raw:
        conds = [s.sql.goal(g) for g in raw]
        # One pass: per goal a uniqIf/countIf over only the events that meet some goal. Visitor ids rotate
        # daily, so uniq(visitor_id) counts visitor-days like the visit reports (two-argument uniq cost 1.6x).
        parts = ", ".join(f"uniqIf(visitor_id, {c}), countIf({c})" for c in conds)
        res = q(f"SELECT {parts} FROM {s.events_range} AND type IN ('pageview', 'custom') AND "
                f"({' OR '.join(conds)}){s.event_where()}", s.params(), ())
        counts |= _pairs(raw, res)
    rows: list[list[Any]] = [[g.name, *counts[g.name], _rate(counts[g.name][0], base["visitors"])] for g in gs]
    rows.sort(key=lambda r: (-int(r[1]), str(r[0])))
    summary = {**base, "goals": len(gs), "conversions": sum(r[2] for r in rows)}
    return summary, QueryResult(list(cols), ["String", "UInt64", "UInt64", "Float64"], rows)


def _rollup_goals(q: Query, s: Scope, gs: list[Goal], rollup: str, extra: str, cond: Callable[[Goal], str],
                  count: str) -> dict[str, tuple[int, int]]:
    """Visitors and conversions of goals from a rollup's uniq states and counts (one scan for all of them)."""
    if not gs:
        return {}
    table, where = s.tier(rollup, extra)
    conds = [cond(g) for g in gs]
    parts = ", ".join(f"uniqMergeIf(visitors, {c}), sumIf({count}, {c})" for c in conds)
    return _pairs(gs, q(f"SELECT {parts} FROM {table} WHERE {where}", s.params(), ()))


def _pairs(gs: list[Goal], res: QueryResult) -> dict[str, tuple[int, int]]:
    values = [int(x or 0) for x in res.rows[0]] if res.rows else [0] * (2 * len(gs))
    return {g.name: (values[2 * i], values[2 * i + 1]) for i, g in enumerate(gs)}


def funnel_steps(s: Scope) -> list[tuple[str, str]]:
    """(label, SQL condition) of each step: the ad-hoc steps, or the goals of a configured funnel."""
    p = s.p
    if p.steps:
        return [(st, _step(s, st)) for st in p.steps]
    funnels = s.funnels
    if not p.funnel:
        if not funnels:
            return []  # nothing to draw: the report says how to ask for one
        return [(name, _goal(s, name)) for name in next(iter(funnels.values()))]
    if p.funnel not in funnels:
        raise ReportError(f"funnel={p.funnel!r} is not configured for project {p.project!r}; funnels: "
                          f"{', '.join(funnels) or '(none)'}")
    return [(name, _goal(s, name)) for name in funnels[p.funnel]]


def _goal(s: Scope, name: str) -> str:
    g = s.goals.get(name)
    if g is None:
        raise ReportError(f"goal {name!r} is not configured for project {s.p.project!r}; goals: "
                          f"{', '.join(s.goals) or '(none)'}")
    return s.sql.goal(g)


def _step(s: Scope, step: str) -> str:
    kind, _, value = step.partition("=")
    if kind == "goal":
        return _goal(s, value)
    if kind == "page":
        return s.sql.goal(Goal(step, page=value))
    return s.sql.goal(Goal(step, event=value))


def funnel(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    """Per step, the visits that reached it in order within the visit, and how many dropped off before it."""
    steps = funnel_steps(s)
    cols = ["step", "name", "visits", "dropoff", "of_first_step", "of_all_visits"]
    types = ["UInt8", "String", "UInt64", "UInt64", "Float64", "Float64"]
    if not steps:
        return {"visits": 0, "entered": 0, "completed": 0, "conversion_rate": 0.0,
                "note": "no funnel: give its steps (step=page=/pricing&step=event=Signup) or configure "
                        "[[projects.funnels]] in obsd.toml"}, QueryResult(cols, types, [])
    conds = [c for _, c in steps]
    # Default windowFunnel mode skips events that match no step, so only matching events are read.
    res = q(f"SELECT level, count() AS n FROM (SELECT windowFunnel({FUNNEL_WINDOW_S})(toDateTime(ts), "
            f"{', '.join(conds)}) AS level FROM {s.events_range} AND type IN ('pageview', 'custom') "
            f"AND ({' OR '.join(conds)}){s.event_where(whole_visits=True)} GROUP BY sid) WHERE level > 0 "
            "GROUP BY level", s.params(), ("level", "n"))
    at_level = {int(level): int(n) for level, n in res.rows}
    reached = [sum(n for level, n in at_level.items() if level >= k) for k in range(1, len(steps) + 1)]
    base = totals(q, s, visitors=False)
    rows: list[list[Any]] = []
    for k, ((label, _), n) in enumerate(zip(steps, reached, strict=True)):
        previous = reached[k - 1] if k else base["visits"]
        rows.append([k + 1, label, n, max(0, previous - n), _rate(n, reached[0]), _rate(n, base["visits"])])
    summary = {"visits": base["visits"], "entered": reached[0], "completed": reached[-1],
               "conversion_rate": _rate(reached[-1], base["visits"])}
    return summary, QueryResult(cols, types, rows)


def _label(key: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", key.lower())[:40] or "prop"


def props(q: Query, s: Scope) -> tuple[dict[str, Any], QueryResult]:
    """A custom event's property values (event=NAME, prop=KEY): events, visitors and visits per value, and the
    sum of each numeric property (revenue, price…)."""
    where = f"{s.events_range} AND type = 'custom'"
    event = s.p.event
    if not event:
        top = q(f"SELECT name FROM {where} GROUP BY name ORDER BY count() DESC, name LIMIT 1", s.params(), ())
        if not top.rows:
            return {"events": 0}, QueryResult(["value", "events", "visitors", "visits"], ["String"] * 4, [])
        event = str(top.rows[0][0])
    name = s.sql.bind(event)
    filters = s.event_where()
    # Which keys the event uses and which hold numbers, from 10,000 of its occurrences (enough to tell).
    keys = q(f"SELECT k, count() AS n, countIf(JSONType(props, k) IN {_NUMERIC}) AS numeric FROM (SELECT props, "
             f"arrayJoin(JSONExtractKeys(props)) AS k FROM (SELECT props FROM {where} AND name = {name}{filters} "
             "LIMIT 10000)) GROUP BY k ORDER BY n DESC, k LIMIT 50", s.params(), ("k", "n", "numeric")).rows
    numeric = [str(k) for k, n, num in keys if int(num) * 2 >= int(n)][:3]
    key = s.p.prop or next((str(k) for k, n, num in keys if int(num) * 2 < int(n)), None)
    if key is None:
        key = str(keys[0][0]) if keys else ""
    value = prop_sql(s.sql.bind(key))
    sums = "".join(f", round(sum(toFloat64OrZero({prop_sql(s.sql.bind(k))})), 2) AS s{i}"
                   for i, k in enumerate(numeric))
    res = q(f"SELECT {value} AS value, count() AS events, uniq(toDate(ts), visitor_id) AS visitors, "
            f"uniq(sid) AS visits{sums} FROM {where} AND name = {name}{filters} GROUP BY value "
            "ORDER BY events DESC, value LIMIT {limit:UInt32}", s.params(), ())
    columns = ["value", "events", "visitors", "visits", *(f"sum_{_label(k)}" for k in numeric)]
    rows = [list(r) for r in res.rows]
    summary = {"event": event, "prop": key, "events": sum(int(r[1]) for r in rows),
               "keys": [str(k) for k, *_ in keys], **{c: round(sum(float(r[4 + i]) for r in rows), 2)
                                                      for i, c in enumerate(columns[4:])}}
    return summary, QueryResult(columns, res.types or ["String"] * len(columns), rows)


def realtime(q: Query, events: str, project: str, limit: int) -> tuple[dict[str, Any], QueryResult]:
    """Visitors with an event in the last 5 minutes (Plausible's "current visitors"; no filters apply), and the
    top `limit` pages they are on."""
    where = (f"{events} WHERE project_id = {{project:String}} AND toDate(ts) >= yesterday() "
             f"AND ts >= now() - INTERVAL {CURRENT_MINUTES} MINUTE AND NOT is_bot")
    params = {"project": project, "limit": limit}
    total = q(f"SELECT uniq(visitor_id) FROM {where}", params, ())
    pages = q(f"SELECT path, uniq(visitor_id) AS visitors FROM {where} AND type = 'pageview' GROUP BY path "
              "ORDER BY visitors DESC, path LIMIT {limit:UInt32}", params, ("path", "visitors"))
    current = int(total.rows[0][0]) if total.rows else 0
    return {"current_visitors": current}, pages


__all__ = ["Sql", "funnel", "goals", "props", "realtime"]
