"""Memory and lookup cost of the batch-id window (spool.batch_id_window_s, spool.max_batch_ids).

Fills a window as a full load would (one id per accepted batch, spread over the window's minutes)
and measures the memory it holds (tracemalloc) and the time of a lookup, for several batch rates.
Run: .venv/bin/python bench/batch_ids.py [--window 900] [--rates 1300,5000,20000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from obsd.pipeline.batch_ids import BatchIdWindow


def measure(rate: int, window_s: float, max_ids: int) -> dict[str, float]:
    clock = [1_764_288_000.0]
    tracemalloc.start()
    w = BatchIdWindow(window_s, max_ids, clock=lambda: clock[0])
    rng = random.Random(rate)
    step = 10.0  # seconds of traffic added at a time
    for _ in range(int(window_s / step)):
        w.add(rng.getrandbits(64) for _ in range(int(rate * step)))
        clock[0] += step
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    probes = [rng.getrandbits(64) for _ in range(20_000)]
    started = time.perf_counter()
    for p in probes:
        w.seen(p)
    lookup_us = (time.perf_counter() - started) / len(probes) * 1e6
    return {"rate": rate, "ids": w.size, "evicted": w.evicted, "mib": current / 2**20,
            "bytes_per_id": current / max(1, w.size), "lookup_us": lookup_us}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--window", type=float, default=900.0)
    p.add_argument("--max-ids", type=int, default=4_000_000)
    p.add_argument("--rates", default="1300,5000,20000", help="accepted batches per second")
    args = p.parse_args()
    print(f"{'batches/s':>10} {'ids held':>10} {'evicted':>10} {'MiB':>8} {'B/id':>6} {'lookup µs':>10}")
    for rate in (int(r) for r in args.rates.split(",")):
        r = measure(rate, args.window, args.max_ids)
        print(f"{r['rate']:>10,} {r['ids']:>10,.0f} {r['evicted']:>10,.0f} {r['mib']:>8.1f} {r['bytes_per_id']:>6.1f} "
              f"{r['lookup_us']:>10.2f}")


if __name__ == "__main__":
    main()
