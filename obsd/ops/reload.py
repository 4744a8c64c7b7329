"""What a SIGHUP reload changes: every setting either applies at once or is named as needing a restart.

The settings a running daemon cannot take without restarting (where it listens, which store it
holds, how the pipeline and the spool are built) stay at their old values in the settings in
force, so `obsd status` and the daemon itself never claim a value that is not in effect.
"""

from __future__ import annotations

from typing import Any

import msgspec

from obsd.settings import Settings

# Dotted keys (or whole sections) that only a restart applies.
RESTART_ONLY = (
    "data_dir", "auto_migrate", "log_format", "server.listen", "clickhouse.dsn", "clickhouse.database",
    "clickhouse.cluster", "clickhouse.engine_max_memory_bytes", "pipeline", "spool",
)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and prefix.count(".") < 1 and prefix != "projects":
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: data}


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """Every dotted setting whose value differs (projects count as one key)."""
    a = _flat(msgspec.to_builtins(old))
    b = _flat(msgspec.to_builtins(new))
    return sorted(k for k in a.keys() | b.keys() if k != "source" and a.get(k) != b.get(k))


def needs_restart(key: str) -> bool:
    """Whether a changed key only applies after a restart."""
    return any(key == r or key.startswith(r + ".") for r in RESTART_ONLY)


def split(old: Settings, new: Settings, *, tls_reloadable: bool) -> tuple[list[str], list[str]]:
    """(keys applied now, keys that need a restart). TLS files apply now while TLS stays on or off."""
    applied: list[str] = []
    restart: list[str] = []
    tls_toggled = bool(old.server.tls_cert) != bool(new.server.tls_cert)
    for key in changed_keys(old, new):
        if needs_restart(key) or (key in ("server.tls_cert", "server.tls_key") and (tls_toggled or
                                                                                    not tls_reloadable)):
            restart.append(key)
        else:
            applied.append(key)
    return applied, restart


def in_force(old: Settings, new: Settings, restart: list[str]) -> Settings:
    """The new settings with every key that needs a restart kept at its old (running) value."""
    data = msgspec.to_builtins(new)
    running = msgspec.to_builtins(old)
    for key in restart:
        section, _, name = key.partition(".")
        if name:
            data[section][name] = running[section][name]
        else:
            data[section] = running[section]
    return msgspec.convert(data, Settings)
