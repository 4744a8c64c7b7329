"""Ingest benchmark: HTTP 202 → rows in ClickHouse, fsync and memory modes, against the raw insert ceiling.

Run: .venv/bin/python bench/ingest.py [--seconds 15] [--concurrency 32]
Every figure of one run is measured on the same machine minutes apart; report the ratios.
With --baseline REV it instead compares this tree with an earlier commit (fsync mode, alternating
A/B runs --repeats times) and reports the ratio of their throughputs.
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
from obsd.ingest.enrich import Client, RowEncoder
from obsd.ingest.wire import WireDecoder
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import LimitsSettings, Settings
from obsd.store.client import Store
from obsd.store.migrations import Migrator
from tests.harness import WRITE_KEY, Daemon

decode = WireDecoder(LimitsSettings()).decode  # the default limits

HERE = Path(__file__).resolve().parent
console = Console()


def encoded_rows(n_batches: int) -> list[bytes]:
    """Rows exactly as obsd encodes them, for the raw ceiling."""
    enc = RowEncoder(Settings(), VisitorHasher(None))
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


def server_quantile(metrics: str, q: float) -> float:
    """An upper bound of a quantile of obsd's own request-duration histogram, in ms."""
    buckets = []
    for line in metrics.splitlines():
        if line.startswith("obsd_ingest_request_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    total = buckets[-1][1] if buckets else 0.0
    return next((le * 1000 for le, n in buckets if n >= q * total), float("nan"))


def run_mode(tmp: Path, durability: str, seconds: float, concurrency: int, rate: float = 0.0,
             tree: Path | None = None, tag: str = "") -> dict[str, Any]:
    """Load a real daemon from another process and measure what is acknowledged and what lands.

    `tree` runs obsd from another checkout (its own package first on the path) instead of this one.
    """
    d = Daemon(tmp / f"{durability}-{rate:.0f}{tag}", sections={"spool": {"durability": durability},
                                           "pipeline": {"batch_interval_ms": 250, "batch_max_events": 50_000}},
               top={"log_level": "warning"}, env={"PYTHONPATH": str(tree)} if tree else None)
    d.start()
    assert d.proc is not None
    gen = subprocess.Popen([sys.executable, str(HERE / "loadgen.py"), "--url", d.base, "--key", WRITE_KEY,
                            "--seconds", str(seconds), "--concurrency", str(concurrency), "--rate", str(rate)],
                           stdout=subprocess.PIPE, text=True)
    # Landed throughput over a steady-state window of the load (the first 2 s warm up), from row counts.
    time.sleep(2.0)
    c0, t0 = int(d.scalar("SELECT count() FROM obsd.events")), time.perf_counter()
    time.sleep(max(1.0, seconds - 3.0))
    c1, t1 = int(d.scalar("SELECT count() FROM obsd.events")), time.perf_counter()
    out, _ = gen.communicate()
    load = json.loads(out.strip().splitlines()[-1])
    ended = time.perf_counter()
    # Drain: how long after the load stops until every acknowledged event is visible.
    landed = c1
    while time.perf_counter() - ended < 120:
        landed = int(d.scalar("SELECT count() FROM obsd.events"))
        if landed >= load["accepted"]:
            break
        time.sleep(0.05)
    drain_s = time.perf_counter() - ended
    metrics = d.metrics()
    rss = peak_rss(d.proc.pid)
    d.stop()
    mode = durability + (f" @ {rate * 100:,.0f} ev/s" if rate else "")
    return {"mode": mode, "acked_per_s": load["accepted"] / load["seconds"], "landed": landed,
            "landed_per_s": (c1 - c0) / (t1 - t0), "drain_s": drain_s, "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"], "server_p50_ms": server_quantile(metrics, 0.5),
            "server_p99_ms": server_quantile(metrics, 0.99), "statuses": load["statuses"],
            "peak_rss_mib": rss / 2**20, "seconds": load["seconds"]}


def compare(baseline: str, seconds: float, concurrency: int, repeats: int) -> None:
    """This tree against an earlier commit, fsync mode, interleaved runs on the same machine."""
    root = HERE.parent
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        base = tmp / "baseline"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "-q", str(base), baseline], check=True)
        try:
            runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this tree": []}
            for i in range(repeats):
                for name, tree in (("baseline", base), ("this tree", root)):
                    console.print(f"[bold]{name}[/] ({i + 1}/{repeats}): {seconds:.0f} s of load …")
                    runs[name].append(run_mode(tmp, "fsync", seconds, concurrency, tree=tree, tag=f"-{name[:4]}{i}"))
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(base)], check=False)

    def median(name: str, key: str) -> float:
        values = sorted(r[key] for r in runs[name])
        return values[len(values) // 2]

    table = Table(title=f"this tree vs {baseline} (fsync, medians of {repeats} interleaved runs)")
    for col in ("variant", "acked ev/s", "landed ev/s", "server p99 ms", "peak RSS MiB"):
        table.add_column(col, justify="right")
    for name in runs:
        table.add_row(name, f"{median(name, 'acked_per_s'):,.0f}", f"{median(name, 'landed_per_s'):,.0f}",
                      f"≤{median(name, 'server_p99_ms'):.0f}", f"{median(name, 'peak_rss_mib'):.0f}")
    console.print(table)
    acked = median("this tree", "acked_per_s") / median("baseline", "acked_per_s")
    landed = median("this tree", "landed_per_s") / median("baseline", "landed_per_s")
    console.print(f"ratio this tree / baseline: acked {acked:.2f}, landed {landed:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--out", default=str(HERE / "results" / "ingest.json"))
    p.add_argument("--baseline", help="a git revision to compare this tree with (fsync mode)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.baseline:
        compare(args.baseline, args.seconds, args.concurrency, args.repeats)
        return
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
    for col in ("mode", "acked ev/s", "landed ev/s", "landed / ceiling", "drain s", "client p50/p99 ms",
                "server p50/p99 ms", "peak RSS MiB"):
        table.add_column(col, justify="right")
    table.add_row("raw insert", "", f"{ceiling['rows_per_s']:,.0f}", "1.00", "", "", "", "")
    for r in results:
        table.add_row(r["mode"], f"{r['acked_per_s']:,.0f}", f"{r['landed_per_s']:,.0f}",
                      f"{r['landed_per_s'] / ceiling['rows_per_s']:.2f}", f"{r['drain_s']:.1f}",
                      f"{r['p50_ms']:.0f} / {r['p99_ms']:.0f}",
                      f"≤{r['server_p50_ms']:.0f} / ≤{r['server_p99_ms']:.0f}", f"{r['peak_rss_mib']:.0f}")
    console.print(table)
    fs, mem = results[0], results[1]
    console.print(f"fsync / memory throughput: {fs['landed_per_s'] / mem['landed_per_s']:.2f} (landed), "
                  f"{fs['acked_per_s'] / mem['acked_per_s']:.2f} (acknowledged)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(msgspec.json.encode({"ceiling": ceiling, "modes": results, "args": vars(args)}).decode())


if __name__ == "__main__":
    main()
