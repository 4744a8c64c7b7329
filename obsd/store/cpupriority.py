"""Keep the event loop ahead of the embedded store's own threads when they compete for CPU (Linux)."""

from __future__ import annotations

import os
import threading


def lower_foreign_threads(niceness: int) -> int:
    """Raise to `niceness` the nice value of this process's threads that Python did not start.

    With the embedded store those are chDB's engine threads (parsing, views, merges). An insert
    keeps several of them runnable for ~1 s; at equal priority they pushed the event loop and the
    spool thread out of the CPU for 50-100 ms at a time, which is where the ingest latency tail
    came from. Raising a nice value needs no privilege; it is never lowered again. Returns how
    many threads changed; 0 where /proc or setpriority is unavailable.
    """
    ours = {t.native_id for t in threading.enumerate()}
    try:
        tids = [int(name) for name in os.listdir("/proc/self/task")]
    except (OSError, ValueError):
        return 0
    changed = 0
    for tid in tids:
        if tid in ours:
            continue
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
                changed += 1
        except OSError:  # the thread ended meanwhile, or the platform refuses
            continue
    return changed
