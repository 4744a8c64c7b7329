"""Wire decoding cost per event: the body gate (jiter: syntax, nesting, duplicate keys) against the
json.loads duplicate-key pass it replaced, both next to the msgspec decode, in one run.

Run: .venv/bin/python bench/wire.py [--batches 300] [--repeat 5]
CPU time (process_time) per event over realistic 100-event batches (bench/loadgen.py's make_batch);
the figures to quote are the ratios, since the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import make_batch
from obsd.ingest.wire import WireDecoder
from obsd.settings import LimitsSettings


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The duplicate-key hook obsd used before the gate (a second parse through json.loads)."""
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("duplicate key")
    return d


def per_event_us(fn: Callable[[bytes], object], bodies: list[bytes], events: int, repeat: int) -> float:
    """Best-of-`repeat` CPU microseconds per event of running fn over every body."""
    for b in bodies[:20]:
        fn(b)
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for b in bodies:
            fn(b)
        best = min(best, time.process_time() - started)
    return best / (len(bodies) * events) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    now = int(time.time() * 1000)
    bodies = [make_batch(args.events, now, f"s{i}")[0] for i in range(args.batches)]
    strict = WireDecoder(LimitsSettings())
    relaxed = WireDecoder(LimitsSettings(reject_duplicate_keys=False))
    typed = strict._envelope.decode

    def before(b: bytes) -> object:
        env = typed(b)
        json.loads(b, object_pairs_hook=_unique_pairs)
        return env

    n, r = args.events, args.repeat
    rows = [
        ("msgspec typed decode alone (both)", per_event_us(typed, bodies, n, r)),
        ("before: duplicate-key pass (json.loads + hook)",
         per_event_us(lambda b: json.loads(b, object_pairs_hook=_unique_pairs), bodies, n, r)),
        ("after: gate (jiter, depth + duplicates)", per_event_us(strict._gate, bodies, n, r)),
        ("after: gate without duplicate check", per_event_us(relaxed._gate, bodies, n, r)),
        ("before: decode + duplicate pass", per_event_us(before, bodies, n, r)),
        ("after: WireDecoder.decode (gate + decode)", per_event_us(strict.decode, bodies, n, r)),
    ]
    table = Table(title=f"wire decoding, {args.batches} batches of {n} events, best of {r}")
    table.add_column("what")
    table.add_column("µs/event", justify="right")
    for name, us in rows:
        table.add_row(name, f"{us:.2f}")
    console = Console()
    console.print(table)
    old_check, new_check = rows[1][1], rows[2][1]
    old_total, new_total = rows[4][1], rows[5][1]
    console.print(f"check: after/before = {new_check / old_check:.2f}; "
                  f"decode incl. check: after/before = {new_total / old_total:.2f}")


if __name__ == "__main__":
    main()
