"""Retention: clickhouse.retention_days and rejected_retention_days as the TTLs of the tables that hold
raw, per-visitor rows."""

from __future__ import annotations

import re

from obsd.settings import ClickHouseSettings
from obsd.store.client import Store

# Tables with raw, per-visitor data and the column their age is measured by.
RAW_TABLES = {"events": "ts", "events_rejected": "received_at"}


def current_ttl(store: Store, table: str) -> str:
    """The TTL clause of a table as ClickHouse shows it, or '' when it has none."""
    res = store.query("SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                      parameters={"db": store.database, "t": table})
    if not res.rows:
        return ""
    m = re.search(r"\bTTL (.+?)(?: SETTINGS |$)", str(res.rows[0][0]))
    return m.group(1).strip() if m else ""


def retention_plan(ch: ClickHouseSettings) -> dict[str, int]:
    """Days each raw table keeps its rows (0: forever). A dead letter never outlives the events: its
    table keeps the shorter of the two settings."""
    rejected = [d for d in (ch.rejected_retention_days, ch.retention_days) if d > 0]
    return {"events": ch.retention_days, "events_rejected": min(rejected) if rejected else 0}


def apply_retention(store: Store, plan: dict[str, int]) -> list[str]:
    """Make each raw table's TTL match its days in `plan` (0: no TTL); return the tables changed."""
    changed: list[str] = []
    for table, column in RAW_TABLES.items():
        days = plan.get(table, 0)
        have = current_ttl(store, table)
        if days > 0:
            if f"toIntervalDay({days})" in have.replace(" ", ""):
                continue
            store.command(f"ALTER TABLE {store.database}.{table} MODIFY TTL toDateTime({column}) + INTERVAL {days} DAY")
            changed.append(table)
        elif have:
            store.command(f"ALTER TABLE {store.database}.{table} REMOVE TTL")
            changed.append(table)
    return changed
