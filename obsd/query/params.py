"""Report parameters: one project, whole hours [since, until), a bucket and filters, validated from strings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from obsd.errors import QueryError
from obsd.vocabulary import EVENT_TYPES, PROJECT_ID_RULE, SESSION_TYPE, is_project_id

PARAMS = frozenset({"project", "since", "until", "bucket", "limit", "path", "type", "by", "release", "environment"})
MAX_HOUR_BUCKETS = 24 * 92
MAX_LIMIT = 1000
_RELATIVE = re.compile(r"^(\d{1,4})([hd])$")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class ReportError(QueryError):
    """A report parameter is wrong; the message names it and the accepted values."""

    exit_code = 2


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
    by: str = "metric"
    open_end: bool = False  # until is "now": nothing is stored after it yet
    release: str | None = None  # errors, releases: only this release
    environment: str | None = None  # errors, releases: only this environment

    def sql_params(self) -> dict[str, Any]:
        """Bind parameters shared by every report query."""
        return {"project": self.project, "since": int(self.since.timestamp()),
                "until": int(self.until.timestamp()), "path": self.path or "", "type": self.type or "",
                "limit": self.limit, "release": self.release or "", "environment": self.environment or ""}

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


def parse_params(raw: Mapping[str, str], *, default_project: str | None = None,
                 now: datetime | None = None) -> ReportParams:
    """Validate report parameters given as strings (query string or CLI flags)."""
    unknown = sorted(set(raw) - PARAMS)
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
    by = raw.get("by") or "metric"
    if by not in ("metric", "path", "device"):
        raise ReportError(f"by={by!r}: use metric, path or device")
    open_end = (raw.get("until") or "now").strip() == "now"
    release, environment = _label("release", raw.get("release"), 128), _label("environment", raw.get("environment"), 64)
    return ReportParams(project, since, until, bucket, int(limit_text), path, type_, by, open_end, release, environment)


def _label(name: str, value: str | None, longest: int) -> str | None:
    """A release or environment filter: as stored (the columns keep at most `longest` characters)."""
    if not value:
        return None
    if len(value) > longest or any(ord(c) < 32 for c in value):
        raise ReportError(f"{name} must be at most {longest} characters without control characters")
    return value
