"""Settings: obsd.toml, then OBSD_* environment, then flags, validated once into frozen Structs."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from obsd.errors import ConfigError
from obsd.vocabulary import DOMAIN_RULE, PROJECT_ID_RULE, SENTRY_ID_MAX, is_project_id, site_domain

CONFIG_ENV = "OBSD_CONFIG"
DEFAULT_CONFIG_PATHS = (Path("obsd.toml"), Path("/etc/obsd/obsd.toml"))
_ENV_PREFIX = "OBSD_"
_NOT_SETTINGS = frozenset({CONFIG_ENV, "OBSD_FAULT_FILE"})


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every settings table: immutable, and unknown keys are an error."""


class ServerSettings(_Section, frozen=True):
    """The HTTP listener and the limits it enforces before an event is looked at."""

    listen: str = "127.0.0.1:8080"
    admin_token: str = ""
    admin_allow_remote: bool = False
    metrics_token: str = ""
    max_body_bytes: int = 1_048_576
    max_decompressed_bytes: int = 4_194_304
    max_events_per_batch: int = 500
    trusted_proxies: tuple[str, ...] = ()
    tls_cert: str = ""
    tls_key: str = ""
    shutdown_timeout_s: float = 30.0
    accept_deadline_s: float = 10.0


class ClickHouseSettings(_Section, frozen=True):
    """Where events are stored: the embedded engine or a ClickHouse server."""

    dsn: str = ""
    database: str = "obsd"
    cluster: str = ""
    retention_days: int = 0
    rejected_retention_days: int = 30
    query_timeout_s: float = 30.0
    query_max_rows: int = 10_000
    query_max_memory_bytes: int = 1024 * 1024 * 1024
    engine_max_memory_bytes: int = 0


class PipelineSettings(_Section, frozen=True):
    """The ring buffer between HTTP and the spool, and how inserts are batched."""

    ring_max_events: int = 200_000
    ring_max_bytes: int = 128 * 1024 * 1024
    batch_max_events: int = 20_000
    batch_max_bytes: int = 16 * 1024 * 1024
    batch_interval_ms: int = 250
    retry_min_ms: int = 100
    retry_max_ms: int = 10_000
    stall_timeout_s: float = 60.0


class SpoolSettings(_Section, frozen=True):
    """The write-ahead log that makes a 202 a promise."""

    durability: Literal["fsync", "memory"] = "fsync"
    dir: str = ""
    max_spool_bytes: int = 1024 * 1024 * 1024
    segment_bytes: int = 64 * 1024 * 1024
    compression_level: int = 1
    preallocate: bool = False
    max_rejected_bytes: int = 64 * 1024 * 1024
    batch_id_window_s: float = 900.0
    max_batch_ids: int = 4_000_000


class LimitsSettings(_Section, frozen=True):
    """Per-event validation bounds."""

    max_string_length: int = 8192
    max_stack_length: int = 32_768
    max_props_keys: int = 50
    max_props_depth: int = 3
    max_props_bytes: int = 8192
    max_event_age_s: int = 7 * 86_400
    max_future_s: int = 3600
    reject_duplicate_keys: bool = True


class PrivacySettings(_Section, frozen=True):
    """What is kept about visitors."""

    allowed_query_params: tuple[str, ...] = ("utm_*",)
    drop_bots: bool = False
    country_header: str = ""
    geoip_db: str = ""


class RateLimitSettings(_Section, frozen=True):
    """Token buckets per project and per client IP (requests per second); 0 turns a bucket off."""

    per_project_rps: float = 0.0
    per_project_burst: float = 0.0
    per_ip_rps: float = 0.0
    per_ip_burst: float = 0.0
    ipv6_prefix: int = 64


class GoalSettings(_Section, frozen=True):
    """A conversion: a pageview of a path (`*` matches any characters) or a custom event, maybe with props."""

    name: str
    page: str = ""
    event: str = ""
    props: dict[str, str] = {}


class FunnelSettings(_Section, frozen=True):
    """An ordered list of goals a visit passes through."""

    name: str
    steps: tuple[str, ...]


class ProjectSettings(_Section, frozen=True):
    """One site that sends events, with its write key and allowed browser origins."""

    id: str
    write_key: str
    allowed_origins: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    sentry_id: int = 0
    goals: tuple[GoalSettings, ...] = ()
    funnels: tuple[FunnelSettings, ...] = ()


class Settings(_Section, frozen=True):
    """Everything obsd reads from its configuration."""

    data_dir: str = "./var"
    auto_migrate: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    server: ServerSettings = ServerSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    pipeline: PipelineSettings = PipelineSettings()
    spool: SpoolSettings = SpoolSettings()
    limits: LimitsSettings = LimitsSettings()
    privacy: PrivacySettings = PrivacySettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    projects: tuple[ProjectSettings, ...] = ()
    source: str = ""

    @property
    def dsn(self) -> str:
        """The ClickHouse DSN, defaulting to the embedded engine under the data directory."""
        if self.clickhouse.dsn:
            return self.clickhouse.dsn
        return "chdb://" + str(Path(self.data_dir).resolve() / "clickhouse")

    @property
    def spool_dir(self) -> Path:
        """Where spool segments live."""
        return Path(self.spool.dir) if self.spool.dir else Path(self.data_dir) / "spool"

    @property
    def host_port(self) -> tuple[str, int]:
        """The listen address split into host and port."""
        return parse_listen(self.server.listen)


def parse_listen(listen: str) -> tuple[str, int]:
    """Split `host:port` (or `[v6]:port`) into its parts."""
    m = re.fullmatch(r"\[?([^\]]*?)\]?:(\d{1,5})", listen.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ConfigError(
            f"server.listen = {listen!r} is not host:port; write e.g. listen = \"127.0.0.1:8080\""
        )
    return m.group(1) or "0.0.0.0", int(m.group(2))


def find_config(explicit: str | Path | None) -> Path | None:
    """The config file to read: the flag, then OBSD_CONFIG, then ./obsd.toml, then /etc/obsd/obsd.toml."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; create it from obsd.toml.example")
        return path
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={env} does not exist; point it at an obsd.toml")
        return path
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def _env_value(raw: str) -> Any:
    """Read an environment value as a TOML value when it is one, else as a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """OBSD_KEY and OBSD_SECTION__KEY variables as a nested dict."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(_ENV_PREFIX) or name in _NOT_SETTINGS or name.startswith("OBSD_TEST_"):
            continue
        parts = name[len(_ENV_PREFIX) :].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _env_value(raw)
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _fix_hint(path: str) -> str:
    key = path.removeprefix("$.").split("[")[0]
    env = _ENV_PREFIX + key.upper().replace(".", "__")
    return f"set it in obsd.toml (see obsd.toml.example) or with {env}"


def load_settings(
    config: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load, merge and validate the settings; raise ConfigError naming the key and the fix."""
    path = find_config(config)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    data = _merge(data, env_overrides(os.environ if environ is None else environ))
    data = _merge(data, {k: v for k, v in (overrides or {}).items() if v is not None})
    data["source"] = str(path) if path else "(defaults)"
    try:
        settings = msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        m = re.search(r"at `([^`]+)`", msg)
        where = m.group(1).removeprefix("$.") if m else "config"
        detail = msg.split(" - at ")[0]
        hint = _fix_hint(m.group(1)) if m else "see obsd.toml.example"
        raise ConfigError(f"config key {where}: {detail}; {hint}") from exc
    validate(settings)
    return settings


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name} = {value} must be greater than 0; {_fix_hint(name)}")


def _privacy_rules(s: Settings) -> None:
    from obsd.privacy.clientip import ClientIpResolver
    from obsd.privacy.origins import OriginPolicy

    try:
        ClientIpResolver(s.server.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"server.trusted_proxies: {exc}; list IPs or CIDRs like \"10.0.0.0/8\"") from exc
    for i, p in enumerate(s.projects):
        try:
            OriginPolicy(p.allowed_origins)
        except ValueError as exc:
            raise ConfigError(f"projects[{i}].allowed_origins for {p.id!r}: {exc}; write origins like "
                              "\"https://shop.example\" or \"*.shop.example\"") from exc
    db = s.privacy.geoip_db
    if db and not Path(db).is_file():
        raise ConfigError(f"privacy.geoip_db = {db!r} is not a file; give the path of a MaxMind-format .mmdb "
                          "(GeoLite2-City, GeoIP2-City or a Country file), or leave it empty")
    rl = s.rate_limit
    for name, value in (("per_project_rps", rl.per_project_rps), ("per_project_burst", rl.per_project_burst),
                        ("per_ip_rps", rl.per_ip_rps), ("per_ip_burst", rl.per_ip_burst)):
        if value < 0:
            raise ConfigError(f"rate_limit.{name} = {value} must be 0 (off) or positive")
    if not 32 <= rl.ipv6_prefix <= 128:
        raise ConfigError(f"rate_limit.ipv6_prefix = {rl.ipv6_prefix} must be between 32 and 128 (64: one bucket "
                          "per /64, what one subscriber usually gets)")


def validate(s: Settings) -> None:
    """Check what types alone cannot: ranges, formats, unique projects."""
    parse_listen(s.server.listen)
    _privacy_rules(s)
    for name, value in (
        ("server.max_body_bytes", s.server.max_body_bytes),
        ("server.max_decompressed_bytes", s.server.max_decompressed_bytes),
        ("server.max_events_per_batch", s.server.max_events_per_batch),
        ("pipeline.ring_max_events", s.pipeline.ring_max_events),
        ("pipeline.ring_max_bytes", s.pipeline.ring_max_bytes),
        ("pipeline.batch_max_events", s.pipeline.batch_max_events),
        ("pipeline.batch_max_bytes", s.pipeline.batch_max_bytes),
        ("pipeline.batch_interval_ms", s.pipeline.batch_interval_ms),
        ("pipeline.retry_min_ms", s.pipeline.retry_min_ms),
        ("spool.max_spool_bytes", s.spool.max_spool_bytes),
        ("spool.segment_bytes", s.spool.segment_bytes),
        ("clickhouse.query_timeout_s", s.clickhouse.query_timeout_s),
        ("server.accept_deadline_s", s.server.accept_deadline_s),
        ("pipeline.stall_timeout_s", s.pipeline.stall_timeout_s),
        ("spool.max_rejected_bytes", s.spool.max_rejected_bytes),
        ("spool.batch_id_window_s", s.spool.batch_id_window_s),
        ("spool.max_batch_ids", s.spool.max_batch_ids),
        ("clickhouse.query_max_rows", s.clickhouse.query_max_rows),
        ("clickhouse.query_max_memory_bytes", s.clickhouse.query_max_memory_bytes),
    ):
        _positive(name, value)
    for name, days in (("clickhouse.retention_days", s.clickhouse.retention_days),
                       ("clickhouse.rejected_retention_days", s.clickhouse.rejected_retention_days)):
        if days < 0:
            raise ConfigError(f"{name} = {days} must be 0 (keep forever) or a number of days")
    if s.clickhouse.engine_max_memory_bytes < 0:
        raise ConfigError("clickhouse.engine_max_memory_bytes must be 0 (half of the machine's memory) or a "
                          "number of bytes")
    if s.server.max_decompressed_bytes < s.server.max_body_bytes:
        raise ConfigError("server.max_decompressed_bytes must be at least server.max_body_bytes")
    if s.pipeline.stall_timeout_s <= s.pipeline.retry_max_ms / 1000:
        raise ConfigError("pipeline.stall_timeout_s must be longer than pipeline.retry_max_ms (a writer that "
                          "waits between retries is not stalled)")
    if s.pipeline.retry_max_ms < s.pipeline.retry_min_ms:
        raise ConfigError("pipeline.retry_max_ms must be at least pipeline.retry_min_ms")
    if not 1 <= s.spool.compression_level <= 22:
        raise ConfigError("spool.compression_level must be between 1 and 22 (zstd levels)")
    if not re.fullmatch(r"(chdb|https?|clickhouse)://.*", s.dsn):
        raise ConfigError(
            f"clickhouse.dsn = {s.clickhouse.dsn!r} must start with chdb://, http:// or https://; "
            "leave it empty for the embedded store under data_dir"
        )
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s.clickhouse.database):
        raise ConfigError(f"clickhouse.database = {s.clickhouse.database!r} must be a plain identifier")
    if (s.server.tls_cert == "") != (s.server.tls_key == ""):
        raise ConfigError("server.tls_cert and server.tls_key go together: set both or neither")
    ids: set[str] = set()
    keys: set[str] = set()
    for i, p in enumerate(s.projects):
        if not is_project_id(p.id):
            raise ConfigError(f"projects[{i}].id = {p.id!r}: use {PROJECT_ID_RULE}")
        if len(p.write_key) < 8:
            raise ConfigError(f"projects[{i}].write_key for {p.id!r} must be at least 8 characters")
        if p.id in ids:
            raise ConfigError(f"projects[{i}].id = {p.id!r} appears twice; project ids are unique")
        if p.write_key in keys:
            raise ConfigError(f"projects[{i}].write_key for {p.id!r} is used by another project")
        ids.add(p.id)
        keys.add(p.write_key)
    _compat_ids(s)
    for i, p in enumerate(s.projects):
        _conversions(i, p)


def _conversions(i: int, p: ProjectSettings) -> None:
    """Goals name one thing each; funnels are 2-8 goals of the same project."""
    names: set[str] = set()
    for j, g in enumerate(p.goals):
        where = f"projects[{i}].goals[{j}] of {p.id!r}"
        if not g.name or len(g.name) > 120 or g.name in names:
            raise ConfigError(f"{where}: give each goal a unique name of 1-120 characters")
        names.add(g.name)
        if bool(g.page) == bool(g.event):
            raise ConfigError(f"{where} ({g.name!r}): set exactly one of page = \"/path\" (a pageview; * matches "
                              "any characters) or event = \"Name\" (a custom event)")
        if (g.page and not g.page.startswith("/")) or (g.props and not g.event):
            raise ConfigError(f"{where} ({g.name!r}): page starts with / (\"/blog/*\"); props go with event")
    for j, f in enumerate(p.funnels):
        where = f"projects[{i}].funnels[{j}] of {p.id!r}"
        if not f.name or any(o.name == f.name for o in p.funnels[:j]):
            raise ConfigError(f"{where}: give each funnel a unique name")
        if not 2 <= len(f.steps) <= 8:
            raise ConfigError(f"{where} ({f.name!r}): a funnel has 2 to 8 steps, each the name of a goal")
        missing = [st for st in f.steps if st not in names]
        if missing:
            raise ConfigError(f"{where} ({f.name!r}): steps {missing} are not goals of this project; define them "
                              "in [[projects.goals]] first")


def _compat_ids(s: Settings) -> None:
    """Plausible domains and Sentry project ids name one project each."""
    domains: dict[str, str] = {}
    sentry_ids: dict[int, str] = {}
    for i, p in enumerate(s.projects):
        for d in p.domains:
            domain = site_domain(d)
            if domain is None:
                raise ConfigError(f"projects[{i}].domains for {p.id!r}: {d!r} is not {DOMAIN_RULE}")
            if domains.setdefault(domain, p.id) != p.id:
                raise ConfigError(f"projects[{i}].domains for {p.id!r}: {domain!r} is already a domain of project "
                                  f"{domains[domain]!r}; a domain names one project")
        if p.sentry_id:
            if not re.fullmatch(r"\w+", p.write_key, re.ASCII):
                raise ConfigError(f"projects[{i}].write_key for {p.id!r}: with sentry_id set, the write key is the "
                                  "public key of a Sentry DSN, and Sentry's browser SDK takes only letters, digits "
                                  "and '_' there; choose a key without '-' or other signs")
            if not 0 < p.sentry_id <= SENTRY_ID_MAX:
                raise ConfigError(f"projects[{i}].sentry_id for {p.id!r} = {p.sentry_id}: use a positive integer "
                                  "(the number at the end of the Sentry DSN), or leave it out")
            if sentry_ids.setdefault(p.sentry_id, p.id) != p.id:
                raise ConfigError(f"projects[{i}].sentry_id = {p.sentry_id} for {p.id!r} is already the sentry_id of "
                                  f"project {sentry_ids[p.sentry_id]!r}; each project needs its own")


def mask_secrets(data: Any, _key: str = "") -> Any:
    """A copy of plain settings data with tokens, keys and DSN passwords masked."""
    if isinstance(data, dict):
        return {k: mask_secrets(v, k) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [mask_secrets(v, _key) for v in data]
    if isinstance(data, str) and data:
        if _key in {"admin_token", "write_key", "metrics_token"}:
            return data[:2] + "…" + "*" * 6
        if _key == "dsn":
            return redact_dsn(data)
    return data


def redact_dsn(dsn: str) -> str:
    """A DSN with its password masked, for logs and `obsd config check`."""
    return re.sub(r"//([^:/@]+):([^@]+)@", r"//\1:******@", dsn)


def effective(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with secrets masked, for `obsd config check`."""
    data = msgspec.to_builtins(settings)
    data["clickhouse"]["dsn"] = settings.dsn
    return dict(mask_secrets(data))
