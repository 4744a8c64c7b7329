"""Report parameters: one project, whole hours [since, until), a bucket and filters, validated from strings."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from obsd.query.filters import MAX_FILTERS, Filter, ReportError, parse_filter
from obsd.vocabulary import EVENT_TYPES, PROJECT_ID_RULE, SESSION_TYPE, is_project_id

__all__ = ["ReportError", "ReportParams", "parse_params"]

PARAMS = frozenset({"project", "since", "until", "bucket", "limit", "path", "type", "by", "release", "environment",
                    "filter", "compare", "step", "funnel", "event", "prop"})
# Parameters that may be given more than once (each occurrence ANDed, or a funnel step in order).
REPEATABLE = frozenset({"filter", "step"})
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
BY = ("metric", "path", "device", "channel", "source", "country", "region", "city", *UTM_KEYS)
MAX_STEPS = 8
MAX_HOUR_BUCKETS = 24 * 92
MAX_LIMIT = 1000
_RELATIVE = re.compile(r"^(\d{1,4})([hd])$")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ReportParams:
    """What a report covers: one project, whole hours [since, until), a bucket size and filters."""

    project: str
    since: datetime
    until: datetime
    bucket: str = "hour"
    limit: int = 20
    path: str | None = None
    type: str | None = None
    by: str = ""
    open_end: bool = False  # until is "now": nothing is stored after it yet
    filters: tuple[Filter, ...] = ()
    compare: tuple[datetime, datetime] | None = None  # the earlier range to compare with
    steps: tuple[str, ...] = ()  # an ad-hoc funnel: page=/x, event=Name, goal=Name
    funnel: str | None = None  # a funnel of the project's [[projects.funnels]]
    event: str | None = None  # props: the custom event
    prop: str | None = None  # props: the property to group by

    def sql_params(self) -> dict[str, Any]:
        """Bind parameters shared by every report query."""
        return {"project": self.project, "since": int(self.since.timestamp()),
                "until": int(self.until.timestamp()), "path": self.path or "", "type": self.type or "",
                "limit": self.limit}

    def shifted(self, since: datetime, until: datetime) -> ReportParams:
        """The same question over another range (a comparison), with the same bucket size."""
        from dataclasses import replace

        return replace(self, since=since, until=until, compare=None, open_end=False)

    def buckets(self) -> list[datetime]:
        """Every bucket start in the range, for zero-filled series."""
        step = HOUR if self.bucket == "hour" else DAY
        start = self.since if self.bucket == "hour" else floor_day(self.since)
        out = []
        t = start
        while t < self.until:
            out.append(t)
            t += step
        return out


def iso(t: datetime) -> str:
    """A UTC time as ISO 8601 with a Z."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{t.microsecond // 1000:03d}Z" if t.microsecond else "Z")


def floor_hour(t: datetime) -> datetime:
    """The start of t's hour."""
    return t.replace(minute=0, second=0, microsecond=0)


def floor_day(t: datetime) -> datetime:
    """The start of t's UTC day."""
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _parse_time(name: str, text: str, now: datetime, *, end: bool) -> datetime:
    text = text.strip()
    if text == "now":
        return floor_hour(now) + HOUR if end else floor_hour(now)
    m = _RELATIVE.match(text)
    if m and not end:
        n = int(m.group(1))
        if n < 1:
            raise ReportError(f"{name}={text}: a relative range is at least 1h or 1d")
        if m.group(2) == "h":
            return floor_hour(now) - (n - 1) * HOUR
        return floor_day(now) - (n - 1) * DAY
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            d = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            return d + DAY if end else d  # --until DATE includes that whole day
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
        if end and t != floor_hour(t):
            return floor_hour(t) + HOUR  # a partial hour is included
        return floor_hour(t)
    accepted = "now, YYYY-MM-DD or YYYY-MM-DDTHH:MM[Z]" + ("" if end else ", or Nh / Nd (e.g. 24h, 7d)")
    raise ReportError(f"{name}={text!r} is not a time obsd understands; use {accepted}")


def _one(raw: Mapping[str, str | Sequence[str]], name: str) -> str | None:
    v = raw.get(name)
    if v is None or isinstance(v, str):
        return v
    if len(v) > 1:
        raise ReportError(f"{name} is given {len(v)} times; give it once")
    return v[0] if v else None


def _many(raw: Mapping[str, str | Sequence[str]], name: str) -> list[str]:
    v = raw.get(name)
    if v is None:
        return []
    return [v] if isinstance(v, str) else [x for x in v if x]


def parse_params(raw_in: Mapping[str, str | Sequence[str]], *, default_project: str | None = None,
                 now: datetime | None = None) -> ReportParams:
    """Validate report parameters given as strings (query string or CLI flags); `filter` and `step` may
    be lists."""
    raw = {k: v for k in raw_in if k not in REPEATABLE and (v := _one(raw_in, k)) is not None}
    unknown = sorted(set(raw_in) - PARAMS)
    if unknown:
        raise ReportError(f"unknown parameter {', '.join(unknown)}; accepted: {', '.join(sorted(PARAMS))}")
    now = now or datetime.now(UTC)
    project = raw.get("project") or default_project
    if not project:
        raise ReportError("project is required (several projects are configured); pass project=<id>")
    if not is_project_id(project):
        raise ReportError(f"project={project!r}: a project id is {PROJECT_ID_RULE}")
    since = _parse_time("since", raw.get("since") or "24h", now, end=False)
    until = _parse_time("until", raw.get("until") or "now", now, end=True)
    if until <= since:
        raise ReportError(f"until ({iso(until)}) must be after since ({iso(since)})")
    if since.year < 2000:
        raise ReportError("since is before 2000; pass a later date")
    bucket = raw.get("bucket") or ("hour" if until - since <= 72 * HOUR else "day")
    if bucket not in ("hour", "day"):
        raise ReportError(f"bucket={bucket!r}: use hour or day")
    if bucket == "hour" and (until - since) > MAX_HOUR_BUCKETS * HOUR:
        raise ReportError(f"bucket=hour covers at most {MAX_HOUR_BUCKETS // 24} days; use bucket=day")
    limit_text = raw.get("limit") or "20"
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise ReportError(f"limit={limit_text!r}: use a whole number from 1 to {MAX_LIMIT}")
    path = raw.get("path") or None
    if path is not None and (len(path) > 2048 or not path.startswith("/")):
        raise ReportError("path must start with / and be at most 2048 characters")
    type_ = raw.get("type") or None
    if type_ is not None and type_ not in (*EVENT_TYPES, SESSION_TYPE):
        raise ReportError(f"type={type_!r}: use one of {', '.join((*EVENT_TYPES, SESSION_TYPE))}")
    by = raw.get("by") or ""
    if by and by not in BY:
        raise ReportError(f"by={by!r}: use one of {', '.join(BY)} (which ones a report takes: docs/reports.md)")
    open_end = (raw.get("until") or "now").strip() == "now"
    filters = [parse_filter(f) for f in _many(raw_in, "filter")]
    # release= and environment= are shorthands for the filters of the same name.
    for key, longest in (("release", 128), ("environment", 64)):
        value = _label(key, raw.get(key), longest)
        if value:
            filters.append(Filter(key, "=", value))
    if len(filters) > MAX_FILTERS:
        raise ReportError(f"at most {MAX_FILTERS} filters at once")
    steps = _many(raw_in, "step")
    if len(steps) > MAX_STEPS or len(steps) == 1:
        raise ReportError(f"a funnel has 2 to {MAX_STEPS} steps (step=page=/pricing, step=event=Signup, …)")
    for st in steps:
        if not re.match(r"^(page|event|goal)=.+", st, re.S) or len(st) > 2048:
            raise ReportError(f"step {st[:100]!r}: write page=/path (with * for any characters), event=Name or "
                              "goal=Name")
    compare_text = raw.get("compare")
    compare = _compare(compare_text, since, until) if compare_text else None
    return ReportParams(project, since, until, bucket, int(limit_text), path, type_, by, open_end, tuple(filters),
                        compare, tuple(steps), raw.get("funnel") or None,
                        _label("event", raw.get("event"), 200), _label("prop", raw.get("prop"), 200))


def _compare(text: str, since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """`previous` (the same length just before) or `YYYY-MM-DD..YYYY-MM-DD` (whole days, both included)."""
    if text == "previous":
        return since - (until - since), since
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", text.strip())
    if m:
        try:
            a, b = date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))
        except ValueError:
            a = b = None  # type: ignore[assignment]
        if a is not None and b is not None and a <= b:
            start = datetime.combine(a, datetime.min.time(), UTC)
            return start, datetime.combine(b, datetime.min.time(), UTC) + DAY
    raise ReportError(f"compare={text[:60]!r}: use previous or YYYY-MM-DD..YYYY-MM-DD (the earlier day first)")


def _label(name: str, value: str | None, longest: int) -> str | None:
    """A release or environment filter: as stored (the columns keep at most `longest` characters)."""
    if not value:
        return None
    if len(value) > longest or any(ord(c) < 32 for c in value):
        raise ReportError(f"{name} must be at most {longest} characters without control characters")
    return value
