"""Queries are guests: the limits every read connection runs under, and what a limit hit means.

Reports, the stats API, the dashboard and admin queries run in the process that ingests. Each read
connection therefore carries, for its whole session, a per-query memory cap, a time limit, a row
cap and `readonly = 1` (set last, so nothing later can loosen the others); the embedded engine as
a whole gets a memory cap when it starts, so no query can grow the process until the kernel kills
it. A query that hits a limit is refused with a status and a reason, never a 500.
"""

from __future__ import annotations

import re
from typing import Any

from obsd.errors import QueryError
from obsd.settings import Settings

# The part of the machine's memory the embedded engine may use when clickhouse.engine_max_memory_bytes
# is 0 (ClickHouse's own default is 0.9, which leaves nothing for Python, the spool and the OS).
ENGINE_MEMORY_RATIO = 0.5


class QueryLimitError(QueryError):
    """A query hit one of obsd's limits: an HTTP status, an error code, a reason and a retry hint."""

    def __init__(self, message: str, *, status: int, code: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


def session_settings(s: Settings) -> dict[str, str]:
    """Settings of a read connection, in the order they must be applied (readonly last)."""
    ch = s.clickhouse
    return {
        "max_memory_usage": str(ch.query_max_memory_bytes),
        "max_execution_time": f"{ch.query_timeout_s:g}",
        "timeout_overflow_mode": "throw",
        "max_result_rows": str(ch.query_max_rows + 1),
        "result_overflow_mode": "break",
        # FINAL reads (the visits rollup, day partitions) merge only the days that still have several parts.
        "do_not_merge_across_partitions_select_final": "1",
        "readonly": "1",
    }



def engine_options(s: Settings) -> dict[str, Any]:
    """Start options of the embedded engine: its process-wide memory cap."""
    if not s.dsn.startswith("chdb:"):
        return {}
    if s.clickhouse.engine_max_memory_bytes > 0:
        return {"max_server_memory_usage": str(s.clickhouse.engine_max_memory_bytes)}
    return {"max_server_memory_usage_to_ram_ratio": str(ENGINE_MEMORY_RATIO)}



def limit_error(code: int | None, text: str) -> QueryLimitError | None:
    """The refusal a ClickHouse error stands for when it is one of the limits, else None."""
    if code in (159, 160) or "Timeout exceeded" in text:
        return QueryLimitError(
            "the query ran longer than clickhouse.query_timeout_s and was stopped; narrow it (a shorter "
            "range, a LIMIT) or raise the setting", status=503, code="query_timeout", retry_after=5)
    if code == 241 or "memory limit exceeded" in text.lower():
        if re.search(r"\((total|user)\) memory limit|User memory limit", text):
            return QueryLimitError(
                "the store is short of memory right now (clickhouse.engine_max_memory_bytes); retry later",
                status=503, code="store_busy", retry_after=10)
        return QueryLimitError(
            "the query needs more memory than clickhouse.query_max_memory_bytes allows and was stopped; "
            "aggregate more, select fewer columns or add a LIMIT", status=400, code="query_too_large")
    if code in (202, 394):
        return QueryLimitError("the store is busy with other queries; retry later", status=503,
                               code="store_busy", retry_after=5)
    return None
