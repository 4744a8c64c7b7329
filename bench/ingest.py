"""Ingest benchmark: HTTP 202 → rows in ClickHouse, fsync and memory modes, against the raw insert ceiling.

Run: .venv/bin/python bench/ingest.py [--seconds 15] [--concurrency 32]
Every figure of one run is measured on the same machine minutes apart; report the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import make_batch
from obsd.enrich import Client, RowEncoder
from obsd.migrations import Migrator
from obsd.settings import Settings
from obsd.store import Store
from obsd.testing import WRITE_KEY, Daemon
from obsd.wire import decode

HERE = Path(__file__).resolve().parent
console = Console()


def encoded_rows(n_batches: int) -> list[bytes]:
    """Rows exactly as obsd encodes them, for the raw ceiling."""
    enc = RowEncoder(Settings(), None)
    now = time.time()
    client = Client("127.0.0.1", "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36")
    return [enc.encode("demo", decode(make_batch(100, int(now * 1000), f"s{i}")[0]), client, now).data
            for i in range(n_batches)]


def raw_ceiling(tmp: Path, rows: list[bytes], batch_rows: int) -> dict[str, float]:
    """Rows/s of plain JSONEachRow inserts into a fresh embedded store, no HTTP, no spool."""
    store = Store(f"chdb://{tmp}/raw", "obsd")
    Migrator(store).up()
    per = max(1, batch_rows // 100)
    blocks = [b"".join(rows[i:i + per]) for i in range(0, len(rows), per)]
    total = 0
    started = time.perf_counter()
    for i, block in enumerate(blocks):
        store.insert_ndjson("events", block, token=f"raw-{i}")
        total += block.count(b"\n")
    elapsed = time.perf_counter() - started
    store.close()
    return {"rows": total, "seconds": elapsed, "rows_per_s": total / elapsed,
            "bytes_per_row": sum(map(len, rows)) / max(1, sum(r.count(b"\n") for r in rows))}


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_mode(tmp: Path, durability: str, seconds: float, concurrency: int, rate: float = 0.0) -> dict[str, Any]:
    """Load a real daemon from another process and measure what is acknowledged and what lands."""
    d = Daemon(tmp / f"{durability}-{rate:.0f}", sections={"spool": {"durability": durability},
                                           "pipeline": {"batch_interval_ms": 250, "batch_max_events": 50_000}},
               top={"log_level": "warning"})
    d.start()
    assert d.proc is not None
    started = time.perf_counter()
    gen = subprocess.run([sys.executable, str(HERE / "loadgen.py"), "--url", d.base, "--key", WRITE_KEY,
                          "--seconds", str(seconds), "--concurrency", str(concurrency), "--rate", str(rate)],
                         capture_output=True, text=True, check=True)
    load = json.loads(gen.stdout.strip().splitlines()[-1])
    # Landed: rows visible in ClickHouse, timed until the count reaches what was acknowledged.
    deadline = time.monotonic() + 120
    landed = 0
    while time.monotonic() < deadline:
        landed = int(d.scalar("SELECT count() FROM obsd.events"))
        if landed >= load["accepted"]:
            break
        time.sleep(0.05)
    landed_at = time.perf_counter() - started
    rss = peak_rss(d.proc.pid)
    d.stop()
    mode = durability + (f" @ {rate * 100:,.0f} ev/s" if rate else "")
    return {"mode": mode, "acked_per_s": load["accepted"] / load["seconds"], "landed": landed,
            "landed_per_s": landed / landed_at, "p50_ms": load["p50_ms"], "p99_ms": load["p99_ms"],
            "statuses": load["statuses"], "peak_rss_mib": rss / 2**20, "seconds": load["seconds"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--out", default=str(HERE / "results" / "ingest.json"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        console.print("[bold]raw ceiling[/]: encoding rows …")
        rows = encoded_rows(5000)
        ceiling = raw_ceiling(tmp, rows, 50_000)
        console.print(f"raw ceiling: {ceiling['rows_per_s']:,.0f} rows/s ({ceiling['bytes_per_row']:.0f} B/row)")
        results = []
        for mode in ("fsync", "memory"):
            console.print(f"[bold]{mode}[/]: {args.seconds:.0f} s of load, {args.concurrency} connections …")
            results.append(run_mode(tmp, mode, args.seconds, args.concurrency))
        half = results[0]["acked_per_s"] / 2 / 100  # requests/s at half of the durable maximum
        console.print(f"[bold]fsync at half load[/]: {half * 100:,.0f} events/s offered …")
        results.append(run_mode(tmp, "fsync", args.seconds, args.concurrency, rate=half))
    table = Table(title="obsd ingest benchmark (100-event batches, loopback, embedded store)")
    for col in ("mode", "acked ev/s", "landed ev/s", "landed / raw ceiling", "p50 ms", "p99 ms", "peak RSS MiB"):
        table.add_column(col, justify="right")
    table.add_row("raw insert", "", f"{ceiling['rows_per_s']:,.0f}", "1.00", "", "", "")
    for r in results:
        table.add_row(r["mode"], f"{r['acked_per_s']:,.0f}", f"{r['landed_per_s']:,.0f}",
                      f"{r['landed_per_s'] / ceiling['rows_per_s']:.2f}", f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", f"{r['peak_rss_mib']:.0f}")
    console.print(table)
    fs, mem = results[0], results[1]
    console.print(f"fsync / memory throughput: {fs['landed_per_s'] / mem['landed_per_s']:.2f} (landed), "
                  f"{fs['acked_per_s'] / mem['acked_per_s']:.2f} (acknowledged)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(msgspec.json.encode({"ceiling": ceiling, "modes": results, "args": vars(args)}).decode())


if __name__ == "__main__":
    main()
