"""SQL migrations: numbered up/down files applied in order and recorded in the store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from obsd.errors import MigrationError, PendingMigrationsError, StoreError
from obsd.settings import Settings
from obsd.store.client import Store
from obsd.store.retention import apply_retention, retention_plan

log = structlog.get_logger("obsd.store.migrations")

_SHIPPED: list[Migration] | None = None
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")
TABLE = "schema_migrations"


def default_dir() -> Path:
    """The migrations shipped with obsd: the repo's migrations/ or the copy inside the package."""
    here = Path(__file__).resolve().parent
    # In a checkout obsd/store/sql is a link to ../../migrations; in an installed wheel it is a copy.
    for candidate in (here / "sql", here.parent.parent / "migrations"):
        if candidate.is_dir():
            return candidate
    raise MigrationError("cannot find the migrations folder; reinstall obsd")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change with its up and down SQL files."""

    version: int
    name: str
    up: Path
    down: Path | None

    @property
    def label(self) -> str:
        """The version and name as in the file name."""
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """A migration and whether (and when) it is applied."""

    migration: Migration
    applied_at: datetime | None


def discover(directory: Path) -> list[Migration]:
    """All migrations in a folder, in version order; gaps and duplicates are errors."""
    ups: dict[int, tuple[str, Path]] = {}
    downs: dict[int, Path] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.up.sql / .down.sql")
        version = int(m.group(1))
        if m.group(3) == "up":
            if version in ups:
                raise MigrationError(f"two up migrations share version {version:04d}: {path.name}")
            ups[version] = (m.group(2), path)
        else:
            downs[version] = path
    return [Migration(v, name, path, downs.get(v)) for v, (name, path) in sorted(ups.items())]


def render(sql: str, database: str, cluster: str = "") -> str:
    """Fill in the database, ON CLUSTER, engine and Distributed-table placeholders of a migration file.

    `{{distributed:X}}` becomes a Distributed table X_all over X in cluster mode (nothing otherwise),
    `{{distributed:X:KEY}}` one sharded by KEY, `{{redistributed:X:KEY}}` drops and makes X_all again;
    `{{all:X}}` names X_all in cluster mode and X otherwise.
    """
    sql = sql.replace("{{db}}", database)
    sql = sql.replace("{{on_cluster}}", f"ON CLUSTER '{cluster}'" if cluster else "")

    def engine(m: re.Match[str]) -> str:
        name = m.group(1)
        if not cluster:
            return name
        return f"Replicated{name}('/clickhouse/tables/{{shard}}/{database}/{{table}}', '{{replica}}')"

    sql = re.sub(r"\{\{engine:(\w*MergeTree)\}\}", engine, sql)

    def distributed(m: re.Match[str]) -> str:
        # Cluster mode only: NAME_all reads (and spreads inserts) across every shard's NAME, by the
        # sharding key given after a second colon (rand() when none).
        name, key = m.group(2), m.group(3) or "rand()"
        if not cluster:
            return ""
        create = (f"CREATE TABLE IF NOT EXISTS {database}.{name}_all ON CLUSTER '{cluster}' AS {database}.{name} "
                  f"ENGINE = Distributed('{cluster}', '{database}', '{name}', {key})")
        if m.group(1) == "redistributed":  # made again: new columns, another sharding key (it holds no data)
            return f"DROP TABLE IF EXISTS {database}.{name}_all ON CLUSTER '{cluster}' SYNC;\n{create}"
        return create

    sql = re.sub(r"\{\{(distributed|redistributed):(\w+)(?::([^{}]+))?\}\}", distributed, sql)
    return re.sub(r"\{\{all:(\w+)\}\}", lambda m: f"{database}.{m.group(1)}{'_all' if cluster else ''}", sql)


def statements(sql: str) -> list[str]:
    """Split a migration into statements at semicolons that end a line."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


class Migrator:
    """Applies and reverts migrations against one store and records what it did."""

    def __init__(self, store: Store, directory: Path | None = None, cluster: str = "") -> None:
        self.store = store
        self.db = store.database
        self.cluster = cluster
        self.migrations = discover(directory or default_dir())

    @staticmethod
    def shipped() -> list[Migration]:
        """The migrations shipped with obsd (read once per process)."""
        global _SHIPPED
        if _SHIPPED is None:
            _SHIPPED = discover(default_dir())
        return list(_SHIPPED)

    def ensure_table(self) -> None:
        """Create the database and the table that records applied migrations."""
        on_cluster = f" ON CLUSTER '{self.cluster}'" if self.cluster else ""
        self.store.command(f"CREATE DATABASE IF NOT EXISTS {self.db}{on_cluster}")
        self.store.command(
            f"CREATE TABLE IF NOT EXISTS {self.db}.{TABLE}{on_cluster} "
            "(version UInt32, name String, applied UInt8, at DateTime64(3, 'UTC')) "
            "ENGINE = ReplacingMergeTree(at) ORDER BY version"
        )

    def applied(self) -> dict[int, datetime]:
        """Versions currently applied, with when."""
        self.ensure_table()
        return _applied(self.store)

    def status(self) -> list[MigrationStatus]:
        """Every known migration with its applied time, or None when pending."""
        done = self.applied()
        return [MigrationStatus(m, done.get(m.version)) for m in self.migrations]

    def pending(self) -> list[Migration]:
        """Migrations not applied yet, in order."""
        done = self.applied()
        return [m for m in self.migrations if m.version not in done]

    def _record(self, m: Migration, applied: bool) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        self.store.command(
            f"INSERT INTO {self.db}.{TABLE} (version, name, applied, at) "
            f"VALUES ({m.version}, '{m.name}', {int(applied)}, '{now}')"
        )

    def _run_file(self, path: Path) -> None:
        for stmt in statements(render(path.read_text(), self.db, self.cluster)):
            try:
                self.store.command(stmt)
            except StoreError as exc:
                raise MigrationError(f"{path.name} failed: {exc}") from exc

    def up(self, to: int | None = None) -> list[Migration]:
        """Apply pending migrations in order, up to and including version `to`."""
        done: list[Migration] = []
        for m in self.pending():
            if to is not None and m.version > to:
                break
            self._run_file(m.up)
            self._record(m, True)
            done.append(m)
        return done

    def down(self, steps: int = 1) -> list[Migration]:
        """Revert the most recent `steps` applied migrations, newest first."""
        applied = self.applied()
        targets = [m for m in reversed(self.migrations) if m.version in applied][:steps]
        for m in targets:
            if m.down is None:
                raise MigrationError(f"{m.label} has no .down.sql file; it cannot be reverted")
        for m in targets:
            assert m.down is not None
            self._run_file(m.down)
            self._record(m, False)
        return targets


def _applied(store: Store) -> dict[int, datetime]:
    """Versions applied in the store's database, with when (the table must exist)."""
    res = store.query(
        f"SELECT version, argMax(applied, at) AS a, max(at) FROM {store.database}.{TABLE} GROUP BY version"
    )
    return {int(v): at for v, a, at in res.rows if a}


def pending_labels(store: Store, migrations: list[Migration]) -> list[str]:
    """Labels of the migrations not applied in the store, read without creating anything."""
    exists = store.query("SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                         parameters={"db": store.database, "t": TABLE})
    done = _applied(store) if int(exists.rows[0][0]) else {}
    return [m.label for m in migrations if m.version not in done]


def create(directory: Path, name: str) -> tuple[Path, Path]:
    """Create the next empty up/down pair named NAME and return their paths."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise MigrationError("a migration needs a name made of letters or digits")
    existing = discover(directory) if directory.is_dir() else []
    version = (existing[-1].version + 1) if existing else 1
    directory.mkdir(parents=True, exist_ok=True)
    up = directory / f"{version:04d}_{slug}.up.sql"
    down = directory / f"{version:04d}_{slug}.down.sql"
    up.write_text(f"-- {slug}: write the change; {{{{db}}}} is the database, {{{{on_cluster}}}} the cluster.\n")
    down.write_text(f"-- Revert {slug}.\n")
    return up, down


def ensure_schema(store: Store, settings: Settings, *, migrate: bool) -> list[str]:
    """Apply pending migrations when allowed (else refuse and name them), then the retention TTLs."""
    migrator = Migrator(store, cluster=settings.clickhouse.cluster)
    pending = migrator.pending()
    if pending and not (migrate or settings.auto_migrate):
        names = ", ".join(m.label for m in pending)
        raise PendingMigrationsError(
            f"the store has pending migrations ({names}); run `obsd migrate up`, "
            "or start with `obsd serve --migrate` (or auto_migrate = true)"
        )
    applied = [m.label for m in migrator.up()] if pending else []
    plan = retention_plan(settings.clickhouse)
    changed = apply_retention(store, plan)
    if changed:
        log.info("retention.applied", days=plan, tables=changed)
    return applied
