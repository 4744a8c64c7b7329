"""systemd integration: sd_notify over NOTIFY_SOCKET, the watchdog, and the hardened unit file.

sd_notify is a datagram of `KEY=VALUE` lines sent to the unix socket named by NOTIFY_SOCKET (a
leading `@` means Linux's abstract namespace). Written by hand: it is a few lines, and obsd
should not need libsystemd to run outside systemd.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("obsd.ops.systemd")


class Notifier:
    """Sends sd_notify messages to the service manager; does nothing when not run by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        self._sock: socket.socket | None = None
        if self.address:
            if not self.address.startswith(("/", "@")):
                log.warning("systemd.bad_notify_socket", notify_socket=self.address)
                self.address = ""
            else:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_s = watchdog_interval(env)

    def notify(self, *lines: str) -> bool:
        """Send one message made of `KEY=VALUE` lines; False when nobody listens or the send failed."""
        if self._sock is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._sock.sendto("\n".join(lines).encode(), target)
        except OSError as exc:  # the manager went away: keep serving, just say so once per failure
            log.warning("systemd.notify_failed", error=str(exc), message=lines[0] if lines else "")
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """Tell systemd that obsd accepts events."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """Tell systemd a reload started (MONOTONIC_USEC lets Type=notify-reload match it)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading configuration")

    def stopping(self) -> bool:
        """Tell systemd obsd is draining and will exit."""
        return self.notify("STOPPING=1", "STATUS=draining the pipeline")

    def status(self, text: str) -> bool:
        """Set the one-line status `systemctl status` shows."""
        return self.notify(f"STATUS={text}")

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """The watchdog timeout in seconds when systemd asks this process for pings, else None."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000


async def watchdog(notifier: Notifier, timeout_s: float, healthy: Callable[[], bool],
                   on_lag: Callable[[float], None] | None = None) -> None:
    """Ping WATCHDOG=1 at a third of the timeout while the event loop runs timers on time and is healthy.

    The ping itself proves the loop is not stuck; `healthy` lets the server add its own checks.
    A loop that is stuck longer than the timeout misses its pings, and systemd restarts obsd.
    """
    period = max(0.01, timeout_s / 3)
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + period
        await asyncio.sleep(period)
        lag = max(0.0, loop.time() - expected)
        if on_lag is not None:
            on_lag(lag)
        if lag < timeout_s / 2 and healthy():
            notifier.notify("WATCHDOG=1")
        else:
            log.warning("systemd.watchdog_skipped", loop_lag_s=round(lag, 3))


async def loop_lag_probe(period_s: float, on_lag: Callable[[float], None]) -> None:
    """Measure how late the loop runs timers when no watchdog is configured (for /metrics)."""
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + period_s
        await asyncio.sleep(period_s)
        on_lag(max(0.0, loop.time() - expected))


def unit_file(*, exec_start: str, config: str = "/etc/obsd/obsd.toml", data_dir: str = "/var/lib/obsd",
              user: str = "obsd", watchdog_s: int = 30, stop_timeout_s: int = 90,
              nofile: int = 65536) -> str:
    """A hardened systemd unit for `obsd serve`."""
    cmd = f"{exec_start} serve --config {shlex.quote(config)}"
    return f"""\
# obsd: self-hosted web observability collector.
# Install: /etc/systemd/system/obsd.service, then `systemctl daemon-reload && systemctl enable --now obsd`.
# See docs/deployment.md in the obsd sources.
[Unit]
Description=obsd web observability collector
After=network-online.target
Wants=network-online.target

[Service]
# obsd sends READY=1 once it accepts events, WATCHDOG=1 while its event loop is healthy,
# RELOADING=1/READY=1 around a SIGHUP reload and STOPPING=1 while it drains.
Type=notify
NotifyAccess=main
ExecStart={cmd}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
WatchdogSec={watchdog_s}s
# Startup may replay the spool and apply migrations; shutdown drains the pipeline
# (server.shutdown_timeout_s, 30 s by default), so both get room.
TimeoutStartSec=300s
TimeoutStopSec={stop_timeout_s}s
KillMode=mixed
User={user}
Group={user}
Environment=PYTHONUNBUFFERED=1
LimitNOFILE={nofile}
UMask=0077

# Hardening: obsd writes only its data directory.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={data_dir}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
# Listening on a port below 1024 needs CAP_NET_BIND_SERVICE: add
# AmbientCapabilities=CAP_NET_BIND_SERVICE and put it in CapabilityBoundingSet.
CapabilityBoundingSet=
# MemoryDenyWriteExecute is left off: the embedded ClickHouse engine may JIT-compile expressions.

[Install]
WantedBy=multi-user.target
"""
