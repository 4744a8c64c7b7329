"""A report as it is answered: headline numbers, a table, maybe a series and the same report over an
earlier range, turned into the JSON document the stats API, the CLI and the dashboard share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from obsd.query.params import ReportParams, iso
from obsd.store.client import QueryResult

# Headline numbers a comparison gives no change for (labels, not amounts).
_NOT_COMPARED = frozenset({"note", "event", "prop", "keys", "minutes"})


@dataclass(frozen=True, slots=True)
class Report:
    """A report's headline numbers, its main table and (for trends) a time series."""

    name: str
    params: ReportParams
    summary: dict[str, Any]
    table: QueryResult
    series: QueryResult | None = None
    notes: list[str] = field(default_factory=list)
    compare: Report | None = None  # the same report over the earlier range

    def to_json(self) -> dict[str, Any]:
        """The report as the stats API answers it: rows as objects, times as ISO 8601 UTC."""
        p = self.params
        out: dict[str, Any] = {
            "report": self.name, "project": p.project, "since": iso(p.since), "until": iso(p.until),
            "bucket": p.bucket, "summary": {k: jsonable(v) for k, v in self.summary.items()},
            "columns": self.table.columns, "rows": records(self.table),
        }
        if self.series is not None:
            out["series"] = records(self.series)
        if p.filters:
            out["filters"] = [str(f) for f in p.filters]
        if self.notes:
            out["notes"] = self.notes
        if self.compare is not None:
            c = self.compare
            out["compare"] = {"since": iso(c.params.since), "until": iso(c.params.until),
                              "summary": {k: jsonable(v) for k, v in c.summary.items()}}
            if c.series is not None:
                out["compare"]["series"] = records(c.series)
            out["change"] = {k: change(v, c.summary.get(k)) for k, v in self.summary.items()
                             if k not in _NOT_COMPARED and isinstance(v, int | float) and not isinstance(v, bool)}
        return out


def change(now: Any, before: Any) -> float | None:
    """The relative change in percent (None when there was nothing before)."""
    if not isinstance(before, int | float) or not before:
        return None
    return round(100 * (float(now) - float(before)) / abs(float(before)), 1)


def jsonable(v: Any) -> Any:
    """A value as JSON can carry it (datetimes as ISO 8601 UTC)."""
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, float) and v != v:  # NaN: no samples
        return None
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return v


def records(res: QueryResult) -> list[dict[str, Any]]:
    """Rows of a result as objects keyed by column."""
    return [{c: jsonable(v) for c, v in zip(res.columns, row, strict=True)} for row in res.rows]
