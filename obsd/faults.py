"""Chaos switches for fault tests: while the file named by OBSD_FAULT_FILE contains a switch's name, the
code that checks that switch fails the way the name says. Unset (production), a check costs one
environment lookup; the spool checks only when the variable was set at start.

Switches: `store_down` (inserts fail as if ClickHouse were unreachable), `store_slow` (each insert
takes a second longer), `spool_enospc` (a spool write stops half way with ENOSPC), `spool_eio_fsync`
(fdatasync fails with EIO), `spool_stall` (fdatasync takes 3 s: a hanging disk), `spool_eio_checkpoint`
(writing the checkpoint fails with EIO), `writer_raise` / `committer_raise` (the stage raises an
unexpected exception), `exit_after_commit` (the process exits right after a group commit is durable,
before any request is answered: a crash between fsync and the 202).
"""

from __future__ import annotations

import os

FAULT_ENV = "OBSD_FAULT_FILE"


def enabled() -> bool:
    """True when this process was started with a fault file (a test)."""
    return bool(os.environ.get(FAULT_ENV))


def active(switch: str) -> bool:
    """True while the fault file names `switch`."""
    path = os.environ.get(FAULT_ENV)
    if not path:
        return False
    try:
        with open(path) as f:
            return switch in f.read().split()
    except OSError:
        return False
