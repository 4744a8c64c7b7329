"""What a report reads: one project's events or visits in [since, until), narrowed by its filters, as SQL.

Every value is a query parameter (`Sql.bind`): the range and project are the report's shared ones
(`{project:String}`, `{since:UInt32}`, `{until:UInt32}`), each filter value gets its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from obsd.query.filters import Goal, Sql, event_conditions, visit_conditions
from obsd.query.params import ReportParams

# A visit is a session with a pageview or a custom event (Plausible's definition): sessions of only
# Web Vitals or errors are not visits.
IS_VISIT = "(pageviews > 0 OR customs > 0)"
DURATION = "(toUnixTimestamp64Milli(end) - toUnixTimestamp64Milli(start)) / 1000"
BOUNCE = "pageviews = 1 AND customs = 0"
# Visitor ids rotate every UTC day, so a visitor over a range is a visitor-day (Plausible counts the same
# way); (day, id) also keeps imported history, whose ids do not rotate, from merging days.
VISITORS = "uniq(day, visitor_id)"


@dataclass
class Scope:
    """The tables and conditions of one report run; `params()` are the bind parameters they need."""

    p: ReportParams
    events: str  # qualified table names
    visits: str
    goals: dict[str, Goal]
    # (rollup, extra condition) -> the daily or hourly tier of that rollup over the range, and its WHERE
    tier: Callable[[str, str], tuple[str, str]]
    funnels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sql: Sql = field(default_factory=Sql)

    @property
    def events_range(self) -> str:
        """`events WHERE` the project, the range (its key prefix first, so granules are pruned) and no bots."""
        return (f"{self.events} WHERE project_id = {{project:String}} "
                "AND toDate(ts) >= toDate(toDateTime({since:UInt32}, 'UTC')) "
                "AND toDate(ts) <= toDate(toDateTime({until:UInt32} - 1, 'UTC')) "
                "AND ts >= toDateTime({since:UInt32}, 'UTC') AND ts < toDateTime({until:UInt32}, 'UTC') "
                "AND NOT is_bot")

    @property
    def visits_range(self) -> str:
        """`visits FINAL WHERE` the project and the visits that began in the range. A visit is keyed by the
        day its session began, which may be the day before its first event here."""
        return (f"{self.visits} FINAL WHERE project_id = {{project:String}} "
                "AND day >= toDate(toDateTime({since:UInt32}, 'UTC')) - 1 "
                "AND day <= toDate(toDateTime({until:UInt32} - 1, 'UTC')) "
                "AND start >= toDateTime({since:UInt32}, 'UTC') AND start < toDateTime({until:UInt32}, 'UTC') "
                f"AND {IS_VISIT}")

    @property
    def path_where(self) -> str:
        """' AND path = …' when the report asks about one page (`path=`, pages and vitals), else ''."""
        return " AND path = {path:String}" if self.p.path else ""

    def visit_where(self) -> str:
        """The filters as ' AND …' conditions on visit rows."""
        return visit_conditions(self.sql, self.p.filters, self.goals, self.events_range)

    def event_where(self, *, whole_visits: bool = False) -> str:
        """The filters as ' AND …' conditions on event rows."""
        return event_conditions(self.sql, self.p.filters, self.goals, self.visits_range, self.events_range,
                                whole_visits=whole_visits)

    def metrics(self) -> str:
        """Plausible's visit metrics over visit rows. With a page filter the bounce rate counts only the visits
        that entered on that page, as Plausible does."""
        page = next((f.value for f in self.p.filters if f.key == "page" and f.op == "="), None)
        if page is None:
            bounce = f"round(100 * countIf({BOUNCE}) / greatest(count(), 1), 1)"
        else:
            v = self.sql.bind(page)
            bounce = (f"round(100 * countIf({BOUNCE} AND entry_page = {v}) / greatest(countIf(entry_page = {v}), 1), "
                      "1)")
        return (f"count() AS visits, {VISITORS} AS visitors, {bounce} AS bounce_rate, "
                f"round(avg({DURATION})) AS visit_duration")

    def params(self) -> dict[str, Any]:
        """The report's parameters and every filter value."""
        return {**self.p.sql_params(), **self.sql.params}
