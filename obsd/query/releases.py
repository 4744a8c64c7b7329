"""Release health and the release/environment filter of the errors report.

Sessions come from Sentry SDKs (release_sessions_hourly, migrations/0007), error counts from every
protocol (errors_hourly, which 0007 keys by release, environment and protocol as well).
`crash_free` is Sentry's definition: sessions that did not end crashed. Browsers have no crash:
since Sentry's JavaScript SDK 9 an uncaught error marks the session `unhandled` instead, so
`unhandled_free` (no uncaught error, no crash) is the share to watch for a web app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from obsd.query.params import ReportParams
from obsd.store.client import QueryResult

# Which protocols (obsd, plausible, sentry) and releases an error group was seen with: rows from
# before migration 0007 have protocol '' and were obsd's own.
GROUP_PROTOCOLS = "arraySort(groupUniqArray(if(e.protocol = '', 'obsd', toString(e.protocol))))"
GROUP_RELEASES = "arraySort(groupUniqArrayIf(10)(toString(e.release), e.release != ''))"
COLUMNS = ("release", "environment", "sessions", "errored", "unhandled", "crashed", "abnormal", "crash_free",
           "unhandled_free", "errors", "error_groups")
TYPES = ("String", "String", "UInt64", "UInt64", "UInt64", "UInt64", "UInt64", "Float64", "Float64", "UInt64",
         "UInt64")

Query = Callable[[str, ReportParams, tuple[str, ...]], QueryResult]


def _share(healthy: int, total: int) -> float | None:
    """healthy / total within [0, 1] (uniq counts are estimates), None without sessions."""
    return round(min(1.0, max(0.0, healthy / total)), 4) if total else None


def release_health(query: Query, sessions_table: str, errors_table: str, where: str,
                   p: ReportParams) -> tuple[dict[str, Any], QueryResult]:
    """Per release and environment: sessions, errored/unhandled/crashed/abnormal, shares and error counts."""
    sessions = query(
        "SELECT release, environment, uniqMerge(started) + sum(started_aggregated) AS sessions, "
        "uniqMerge(errored) + sum(errored_aggregated) AS errored, "
        "uniqMerge(unhandled) + sum(unhandled_aggregated) AS unhandled, "
        "uniqMerge(crashed) + sum(crashed_aggregated) AS crashed, "
        "uniqMerge(abnormal) + sum(abnormal_aggregated) AS abnormal "
        f"FROM {sessions_table} WHERE {where} GROUP BY release, environment", p,
        ("release", "environment", "sessions", "errored", "unhandled", "crashed", "abnormal"))
    errors = query(f"SELECT release, environment, sum(events) AS errors, uniqExact(fingerprint) AS error_groups "
                   f"FROM {errors_table} WHERE {where} GROUP BY release, environment", p,
                   ("release", "environment", "errors", "error_groups"))
    by_key: dict[tuple[str, str], list[int]] = {}
    for rel, env, *counts in sessions.rows:
        by_key[(str(rel), str(env))] = [int(c) for c in counts] + [0, 0]
    for rel, env, n, groups in errors.rows:
        by_key.setdefault((str(rel), str(env)), [0] * 5 + [0, 0])[5:] = [int(n), int(groups)]
    rows: list[list[Any]] = []
    for (rel, env), (n, errored, unhandled, crashed, abnormal, errs, groups) in by_key.items():
        rows.append([rel, env, n, min(errored, n) if n else errored, unhandled, crashed, abnormal,
                     _share(n - crashed, n), _share(n - crashed - abnormal - unhandled, n), errs, groups])
    rows.sort(key=lambda r: (-r[2], -r[9], r[0], r[1]))
    rows = rows[: p.limit]
    summary = {"sessions": sum(r[2] for r in rows), "crashed": sum(r[5] for r in rows),
               "unhandled": sum(r[4] for r in rows), "releases": len({r[0] for r in rows}),
               "errors": sum(r[9] for r in rows)}
    return summary, QueryResult(list(COLUMNS), list(TYPES), rows)
