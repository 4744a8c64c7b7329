"""How the HTTP side waits for a query running on a store thread: never longer than its limit allows,
and a limit hit becomes the one JSON error shape with a status and a reason (never a 500)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from obsd.httperrors import HttpError
from obsd.store.limits import QueryLimitError

T = TypeVar("T")
# The engine stops a query at clickhouse.query_timeout_s; this is how much longer a request waits
# for the answer (queueing behind another query, building the response) before it gives up.
GRACE_S = 10.0


def limit_http_error(exc: QueryLimitError) -> HttpError:
    """A query limit as an HTTP error."""
    return HttpError(exc.status, exc.code, str(exc), retry_after=exc.retry_after)


async def bounded(work: Awaitable[T], timeout_s: float, what: str) -> T:
    """Await store work for at most its time limit plus a grace; then answer 503 (the work keeps its
    thread until the engine stops it, and later requests queue behind it)."""
    fut = asyncio.ensure_future(work)
    try:
        return await asyncio.wait_for(asyncio.shield(fut), timeout_s + GRACE_S)
    except TimeoutError as exc:
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # its outcome is no longer awaited
        raise HttpError(503, "query_timeout", f"the {what} did not finish within clickhouse.query_timeout_s "
                        f"({timeout_s:g} s) plus {GRACE_S:g} s; the store is busy, retry later",
                        retry_after=10) from exc
