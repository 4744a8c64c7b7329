"""Read connections with limits, and users' own SQL on them: formatted by ClickHouse, guarded, then run.

Every reader of the store (reports, the stats API and dashboard, admin queries, `obsd query` and
`obsd report` without a daemon) opens its connection here, so the limits of obsd.store.limits hold
for all of them and for any report added later.
"""

from __future__ import annotations

from obsd.errors import QueryError
from obsd.settings import Settings
from obsd.store.client import QueryResult, Store
from obsd.store.guard import QueryRefused, StatementGuard
from obsd.store.limits import engine_options, session_settings

MAX_SQL_CHARS = 4 * 1024 * 1024  # the admin API caps bodies lower (server.max_body_bytes)


def open_reader(settings: Settings) -> Store:
    """A new read connection under the query limits (and, if it starts the embedded engine, its cap)."""
    return Store(settings.dsn, settings.clickhouse.database, session=session_settings(settings),
                 engine=engine_options(settings))


def limit_reads(store: Store, settings: Settings) -> Store:
    """Put an already open connection under the query limits (a CLI command's own store)."""
    store.limit(session_settings(settings))
    return store


class UserQueries:
    """Runs users' SQL on a limited connection: one read-only statement, checked as ClickHouse parses it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._guard: StatementGuard | None = None

    def guard(self) -> StatementGuard:
        """The guard, knowing every table function this engine has (asked once per connection)."""
        if self._guard is None:
            names = [str(r[0]) for r in self.store.query("SELECT name FROM system.table_functions").rows]
            self._guard = StatementGuard(names)
        return self._guard

    def formatted(self, sql: str) -> str:
        """The statement as ClickHouse's parser formats it: one statement, no comments, canonical quoting."""
        if len(sql) > MAX_SQL_CHARS:
            raise QueryRefused(f"the statement is longer than {MAX_SQL_CHARS} characters")
        try:
            res = self.store.query("SELECT formatQuerySingleLine({sql:String})", parameters={"sql": sql})
        except QueryError as exc:
            text = str(exc)
            if "Multi-statements are not allowed" in text:
                raise QueryRefused("one statement per query: remove the ';' and what follows it") from exc
            raise QueryRefused(f"the statement does not parse: {text[:500]}") from exc
        return str(res.rows[0][0])

    def run(self, sql: str, *, max_rows: int) -> QueryResult:
        """Rows of one read-only statement, at most `max_rows` (truncated says when there were more)."""
        statement = self.formatted(sql)
        self.guard().check(statement)
        res = self.store.query(statement)  # what was checked is what runs
        if len(res.rows) > max_rows:
            return QueryResult(res.columns, res.types, res.rows[:max_rows], truncated=True)
        return res
