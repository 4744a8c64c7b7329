"""Erasure on request (GDPR): delete a project's rows, optionally before a day or of one session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from obsd.errors import QueryError
from obsd.store.client import Store
from obsd.store.retention import RAW_TABLES
from obsd.vocabulary import SESSION_ID_RULE, is_project_id, is_session_id


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    """What to erase: a project's rows, optionally only before a day and/or of one session."""

    project: str
    before: date | None = None
    session: str | None = None

    def validate(self) -> None:
        """Refuse values that are not a project id, a date or a session id."""
        if not is_project_id(self.project):
            raise QueryError(f"--project {self.project!r} is not a project id")
        if self.session is not None and not is_session_id(self.session):
            raise QueryError(f"--session {self.session!r} is not a session id ({SESSION_ID_RULE})")

    def where(self, column: str, has_session: bool, table: str = "") -> str:
        """The WHERE clause for one table (values are validated, so they are safe to inline)."""
        parts = [f"project_id = '{self.project}'"]
        if self.before is not None:
            parts.append(f"{column} < toDateTime64('{self.before.isoformat()} 00:00:00', 3, 'UTC')")
        if self.session is not None:
            if not has_session:
                return ""
            if table == "events_rejected":
                # Rows ClickHouse refused are kept as the encoded row, which names its session; dead
                # letters from before migration 0006 have no session column value either.
                parts.append(f"(session_id = '{self.session}' OR (session_id = '' AND "
                             f"position(payload, '\"session_id\":\"{self.session}\"') > 0))")
            else:
                parts.append(f"session_id = '{self.session}'")
        return " AND ".join(parts)


def parse_day(text: str) -> date:
    """A YYYY-MM-DD date."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError as exc:
        raise QueryError(f"{text!r} is not a date like 2026-01-31") from exc


def project_tables(store: Store) -> dict[str, tuple[str, bool]]:
    """Tables holding per-project rows: name → (time column, has session_id). Rollups are included."""
    res = store.query(
        "SELECT t.name, groupArray((c.name, c.type)) FROM system.tables t "
        "JOIN system.columns c ON c.database = t.database AND c.table = t.name "
        "WHERE t.database = {db:String} AND t.engine LIKE '%MergeTree' GROUP BY t.name",
        parameters={"db": store.database})
    out: dict[str, tuple[str, bool]] = {}
    for name, cols in res.rows:
        names = [c[0] for c in cols]
        if "project_id" not in names:
            continue
        time_col = RAW_TABLES.get(name) or next((c for c, t in cols if "Date" in t), "")
        out[name] = (time_col, "session_id" in names)
    return out


def purge(store: Store, req: PurgeRequest) -> dict[str, int]:
    """Delete matching rows from every table with per-project rows, synchronously; count them first."""
    req.validate()
    deleted: dict[str, int] = {}
    for table, (column, has_session) in sorted(project_tables(store).items()):
        if req.before is not None and not column:
            continue
        where = req.where(column, has_session=has_session, table=table)
        if not where:
            continue  # aggregates hold no session, so a session purge has nothing to take from them
        n = int(store.query(f"SELECT count() FROM {store.database}.{table} WHERE {where}").rows[0][0])
        if n:
            store.command(f"ALTER TABLE {store.database}.{table} DELETE WHERE {where}",
                          settings={"mutations_sync": 2})
        deleted[table] = n
    return deleted
