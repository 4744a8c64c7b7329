"""/ready's migration check asks the real store, names what is pending, and is cached (it is polled)."""

from __future__ import annotations

from pathlib import Path

from obsd.settings import Settings
from obsd.store.client import Store
from obsd.store.migrations import Migrator
from obsd.store.schema_watch import SchemaWatch


def test_pending_migrations_are_named_and_the_answer_is_cached(tmp_path: Path) -> None:
    """Three applied: the rest are pending by label; once applied, a fresh check says none."""
    settings = Settings(data_dir=str(tmp_path))
    watch = SchemaWatch(settings, ttl_s=3600)
    watch.open()
    store = Store(settings.dsn, "obsd")
    try:
        every = [m.label for m in Migrator.shipped()]
        assert watch.check() == (every, "")  # nothing applied: not even the migrations table exists
        Migrator(store).up(to=3)
        assert watch.check() == (every, "")  # cached: /ready does not ask the store on every poll
        watch._checked_at = float("-inf")
        pending, error = watch.check()
        assert error == "" and pending == every[3:] and len(pending) == len(every) - 3
        Migrator(store).up()
        watch._checked_at = float("-inf")
        assert watch.check() == ([], "")
    finally:
        store.close()
        watch.close()
