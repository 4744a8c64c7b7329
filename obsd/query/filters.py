"""Report filters (`KEY=VALUE`, `KEY!=VALUE`, `KEY~VALUE`), goals and funnel steps, compiled to parameterised SQL.

Values are never written into SQL: each becomes a query parameter (`{f0:String}`). Where a key lives
decides how it filters:

* visit attributes (entry page, source, UTM, country, device…) are columns of `visits`: on visit
  reports a WHERE on the visit row, so a filter selects whole visits; on event reports the events of
  the matching visits (a semi-join on `sid`), except the attributes every event carries itself
  (country, device, browser, os, release, environment), which filter events directly;
* event attributes (page, event, goal, prop:<key>) keep, on visit reports, the visits that have such an
  event (`sid IN (SELECT sid FROM events …)`, NOT IN for `!=`), as Plausible does; on event reports
  they filter the events themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from obsd.errors import QueryError

# Filter key → column of `visits`.
VISIT_COLUMNS = {
    "entry_page": "entry_page", "exit_page": "exit.2", "hostname": "hostname", "source": "source",
    "channel": "channel", "referrer": "referrer", "utm_source": "utm_source", "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign", "utm_content": "utm_content", "utm_term": "utm_term", "country": "country",
    "region": "region", "city": "city", "device": "device_type", "browser": "browser", "os": "os",
    "release": "release", "environment": "environment"}
# Of those, the ones every event of a visit carries (request context): event reports filter them directly.
EVENT_COLUMNS = {k: VISIT_COLUMNS[k] for k in (
    "country", "region", "city", "device", "browser", "os", "release", "environment", "hostname")}
EVENT_KEYS = ("page", "event", "goal")
FILTER_KEYS = (*EVENT_KEYS[:1], *VISIT_COLUMNS, *EVENT_KEYS[1:], "prop:<key>")
OPERATORS = ("!=", "=", "~")  # '!=' is tried before '='
MAX_FILTERS = 10
_PROP_KEY = re.compile(r"[^\x00-\x1f]{1,200}")


class ReportError(QueryError):
    """A report parameter is wrong; the message names it and the accepted values."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition: key, operator ('=', '!=' or '~' for contains, case-insensitive) and value."""

    key: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def parse_filter(text: str) -> Filter:
    """`KEY=VALUE`, `KEY!=VALUE` or `KEY~VALUE`; ReportError naming the accepted keys otherwise."""
    m = re.match(r"^([a-z_]+(?::[^=!~]+)?)(!=|=|~)(.*)$", text, re.S)
    if not m:
        raise ReportError(f"filter {text[:100]!r}: write KEY=VALUE, KEY!=VALUE or KEY~VALUE (contains), "
                          f"with KEY one of {', '.join(FILTER_KEYS)}")
    key, op, value = m.group(1), m.group(2), m.group(3)
    if key.startswith("prop:"):
        if not _PROP_KEY.fullmatch(key[5:]):
            raise ReportError(f"filter {text[:100]!r}: a prop key is 1-200 printable characters")
    elif key not in VISIT_COLUMNS and key not in EVENT_KEYS:
        raise ReportError(f"filter key {key!r} is not known; keys: {', '.join(FILTER_KEYS)}")
    if len(value) > 2048 or any(ord(c) < 32 for c in value):
        raise ReportError(f"filter {key}: the value is at most 2048 characters without control characters")
    return Filter(key, op, value)


@dataclass(frozen=True, slots=True)
class Goal:
    """A conversion: a pageview of a path (`*` matches any run of characters) or a custom event, optionally
    with property values."""

    name: str
    page: str = ""
    event: str = ""
    props: tuple[tuple[str, str], ...] = ()


def page_regex(pattern: str) -> str:
    """A page pattern (`/blog/*`) as an anchored RE2 regular expression."""
    return "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"


def prop_sql(key_param: str) -> str:
    """A prop's value as text: strings as they are, numbers and booleans as written in the JSON."""
    return (f"if(JSONType(props, {key_param}) = 'String', JSONExtractString(props, {key_param}), "
            f"JSONExtractRaw(props, {key_param}))")


class Sql:
    """Collects the parameters a compiled condition needs; each value gets its own name."""

    def __init__(self, prefix: str = "f") -> None:
        self.prefix = prefix
        self.params: dict[str, Any] = {}

    def bind(self, value: Any, kind: str = "String") -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{kind}}}"

    def compare(self, column: str, op: str, value: str) -> str:
        v = self.bind(value)
        if op == "~":
            return f"positionCaseInsensitive({column}, {v}) > 0"
        return f"{column} {'!=' if op == '!=' else '='} {v}"

    def page_match(self, column: str, pattern: str) -> str:
        """`column` holds a path that matches a goal's page pattern (`*` for any characters)."""
        if "*" in pattern:
            return f"match({column}, {self.bind(page_regex(pattern))})"
        return f"{column} = {self.bind(pattern)}"

    def goal(self, g: Goal) -> str:
        """The condition an event meets to convert on a goal."""
        if g.page:
            return f"(type = 'pageview' AND {self.page_match('path', g.page)})"
        conds = [f"type = 'custom' AND name = {self.bind(g.event)}"]
        conds += [f"{prop_sql(self.bind(k))} = {self.bind(v)}" for k, v in g.props]
        return "(" + " AND ".join(conds) + ")"

    def event_condition(self, f: Filter, goals: dict[str, Goal], *, positive: bool) -> str:
        """The event a filter on an event attribute is about (the operator itself when `positive` is false)."""
        op = "=" if (positive and f.op == "!=") else f.op
        if f.key == "page":
            # A visit saw a page when it has a pageview of it; any event (a vital, an error, a custom event)
            # happened on the page in its `path`.
            cond = self.compare("path", op, f.value)
            return f"(type = 'pageview' AND {cond})" if positive else cond
        if f.key == "event":
            cond = self.compare("name", op, f.value)
            return f"(type = 'custom' AND {cond})" if op != "!=" else f"NOT (type = 'custom' AND name = " \
                f"{self.bind(f.value)})"
        if f.key == "goal":
            g = goals.get(f.value)
            if g is None:
                raise ReportError(f"filter goal={f.value!r}: no such goal in this project's [[projects.goals]]; "
                                  f"goals: {', '.join(goals) or '(none)'}")
            return self.goal(g) if op != "!=" else f"NOT {self.goal(g)}"
        prop = prop_sql(self.bind(f.key[5:]))
        if op == "!=":
            return f"(type = 'custom' AND {prop} != {self.bind(f.value)})"
        return f"(type = 'custom' AND {self.compare(prop, op, f.value)})"


def _visits_having(sql: Sql, f: Filter, goals: dict[str, Goal], events_range: str) -> str:
    """The visits with (or, for !=, without) an event the filter is about, as a condition on `sid`."""
    cond = sql.event_condition(f, goals, positive=True)
    return f"sid {'NOT IN' if f.op == '!=' else 'IN'} (SELECT sid FROM {events_range} AND {cond})"


def visit_conditions(sql: Sql, filters: Iterable[Filter], goals: dict[str, Goal], events_range: str) -> str:
    """' AND …' conditions on `visits` rows: visit attributes directly, event attributes as semi-joins."""
    out = []
    for f in filters:
        if f.key in VISIT_COLUMNS:
            out.append(sql.compare(VISIT_COLUMNS[f.key], f.op, f.value))
        else:
            out.append(_visits_having(sql, f, goals, events_range))
    return "".join(f" AND {c}" for c in out)


def event_conditions(sql: Sql, filters: Iterable[Filter], goals: dict[str, Goal], visits_range: str,
                     events_range: str, *, whole_visits: bool = False) -> str:
    """' AND …' conditions on `events` rows. Event attributes filter the events themselves, or with
    `whole_visits` (funnels) keep the visits that have such events; visit-only attributes keep the
    events of matching visits."""
    out = []
    visit_only = []
    for f in filters:
        if f.key in EVENT_COLUMNS:
            out.append(sql.compare(EVENT_COLUMNS[f.key], f.op, f.value))
        elif f.key in VISIT_COLUMNS:
            visit_only.append(sql.compare(VISIT_COLUMNS[f.key], f.op, f.value))
        elif whole_visits:
            out.append(_visits_having(sql, f, goals, events_range))
        else:
            out.append(sql.event_condition(f, goals, positive=False))
    if visit_only:
        out.append(f"sid IN (SELECT sid FROM {visits_range} AND {' AND '.join(visit_only)})")
    return "".join(f" AND {c}" for c in out)
