"""The ClickHouse store: one code path for the embedded engine (chdb://) and servers (http(s)://)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from obsd import faults
from obsd.errors import QueryError, StoreError, StoreLockedError
from obsd.settings import redact_dsn
from obsd.store.limits import limit_error

# ClickHouse error codes that mean "this data is wrong", not "the store is unwell": such a batch
# is bisected and its bad rows dead-lettered instead of being retried forever.
DATA_ERROR_CODES = frozenset(
    {6, 25, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 321, 376, 377, 395, 469}
)


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of a query with their column names and ClickHouse types."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool = False


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code carried by an exception, if any."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code:
        return code
    m = re.search(r"Code: (\d+)", str(exc))
    return int(m.group(1)) if m else None


def is_data_error(exc: BaseException) -> bool:
    """True when ClickHouse refused the rows themselves (retrying the same bytes cannot help)."""
    return isinstance(exc, DatabaseError) and not isinstance(exc, OperationalError) and (
        error_code(exc) in DATA_ERROR_CODES
    )


def is_split_refusal(exc: BaseException) -> bool:
    """True when ClickHouse refused an insert for touching too many partitions at once (rows spanning
    many months): the rows are fine, the batch must be split."""
    return error_code(exc) == 252 and "partitions for single INSERT" in str(exc)


def short_error(exc: BaseException, limit: int = 500) -> str:
    """A one-line, bounded rendering of a ClickHouse error for logs and dead letters."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^(Code: \d+\. DB::Exception: )+", "", text)
    text = re.sub(r"\(in file/uri [^)]*\)", "", text)
    return text[:limit]


class Store:
    """A connection to ClickHouse; not thread-safe, so one thread owns each Store."""

    def __init__(self, dsn: str, database: str, *, session: dict[str, str] | None = None,
                 engine: dict[str, Any] | None = None) -> None:
        """Open a connection; `session` settings hold for every statement on it (obsd.store.limits),
        `engine` options start the embedded engine when this is the process's first connection to it."""
        self.dsn = dsn
        self.database = database
        self.embedded = dsn.startswith("chdb:")
        self._session: frozenset[str] = frozenset()
        extra: dict[str, Any] = {"chdb_options": engine} if engine and self.embedded else {}
        try:
            self._client = clickhouse_connect.get_client(dsn=dsn, **extra)
        except Exception as exc:
            if self.embedded and _held_by_other_process(dsn):
                raise StoreLockedError(
                    f"the embedded store at {dsn} is in use by another process, usually a running "
                    "`obsd serve`; stop it, or let the command go through the daemon"
                ) from exc
            raise StoreError(f"cannot open the ClickHouse store at {redact_dsn(dsn)}: {short_error(exc)}") from exc
        if session:
            self.limit(session)

    def limit(self, session: dict[str, str]) -> None:
        """Apply settings to every later statement of this connection, in order (readonly last)."""
        try:
            for key, value in session.items():
                self._client.set_client_setting(key, value)
        except Exception as exc:
            raise StoreError(f"cannot apply the query limits: {short_error(exc)}") from exc
        self._session = self._session | frozenset(session)

    def close(self) -> None:
        """Release the connection (and, for chDB, the data directory lock)."""
        # Closing twice or after a failure is not an error worth raising.
        with contextlib.suppress(Exception):
            self._client.close()

    def command(self, sql: str, settings: dict[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, ALTER, ...)."""
        try:
            return self._client.command(sql, settings=settings)
        except Exception as exc:
            raise StoreError(short_error(exc, 2000)) from exc

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> QueryResult:
        """Run a query and return all its rows; a limit it hits is a QueryLimitError."""
        if settings and self._session:
            # The session already holds these (and readonly = 1 refuses even setting them again).
            settings = {k: v for k, v in settings.items() if k not in self._session} or None
        try:
            res = self._client.query(sql, parameters=parameters, settings=settings)
        except Exception as exc:
            limited = limit_error(error_code(exc), str(exc))
            if limited is not None:
                raise limited from exc
            raise QueryError(short_error(exc, 2000)) from exc
        return QueryResult(
            columns=list(res.column_names),
            types=[t.name for t in res.column_types],
            rows=[list(r) for r in res.result_rows],
        )

    def insert_ndjson(self, table: str, data: bytes, *, compression: str | None = None,
                      token: str | None = None) -> None:
        """Insert NDJSON rows (optionally zstd-compressed) with one statement, parsed by ClickHouse."""
        if faults.active("store_down"):
            raise OperationalError(f"fault injected ({faults.FAULT_ENV}): the store is unreachable")
        if faults.active("store_slow"):
            time.sleep(1.0)
        settings: dict[str, Any] = {"input_format_parallel_parsing": 1}
        if token:
            settings["insert_deduplication_token"] = token
            settings["insert_deduplicate"] = 1
            settings["deduplicate_blocks_in_dependent_materialized_views"] = 1
        self._client.raw_insert(
            f"{self.database}.{table}", None, insert_block=data, fmt="JSONEachRow",
            compression=compression, settings=settings,
        )


def _held_by_other_process(dsn: str) -> bool:
    """True when another process holds the embedded store's lock file (ClickHouse's `status`)."""
    path = os.path.join(dsn.removeprefix("chdb://").split("?")[0], "status")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
