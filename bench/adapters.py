"""What each protocol adapter costs per event, next to /v1/events, measured in one run.

Two measurements, both with requests captured from the real clients (tests/ingest/fixtures/compat):

1. **In-process CPU**: the Python work per event of each path (decode, translate, validate, enrich,
   encode rows), without HTTP: /v1/events with one-event and 100-event batches, a Plausible
   pageview, a Sentry browser error envelope, a Sentry Python error envelope (brotli).
2. **Through a real daemon** (fsync durability): each route loaded in turn with one-event requests
   (what Plausible and Sentry send) from another process over loopback; requests/s, client
   latency, and the daemon's CPU time per event (HTTP, adapter, spool, writer and the embedded
   ClickHouse insert together).

Run: .venv/bin/python bench/adapters.py [--seconds 12] [--concurrency 16]   (about 2 minutes)
Report the ratios against /v1/events of the same run; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import make_batch
from obsd.ingest.body import decompress_capped
from obsd.ingest.enrich import Client, RowEncoder
from obsd.ingest.plausible_wire import parse_event
from obsd.ingest.sentry_envelope import parse_envelope
from obsd.ingest.sentry_event import read_event
from obsd.ingest.visits import Visits
from obsd.ingest.wire import Context, Decoded, Envelope, Sdk
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import Settings
from tests.harness import Daemon
from tests.ingest.captured import CAPTURED_KEY, load

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
console = Console()


def _captured(name: str) -> Any:
    return next(c for c in load() if c.name == name)


PLAUSIBLE = _captured("010-plausible")
SENTRY_BROWSER = _captured("025-sentry_envelope-event")
SENTRY_PYTHON = _captured("036-sentry_envelope-event")


def cpu_per_event(paths: dict[str, Callable[[], int]], seconds: float, rounds: int) -> list[dict[str, Any]]:
    """CPU microseconds per event of each path (a function returning how many events it made).

    The paths take turns in `rounds` short slices, so a noisy neighbour slows them all alike."""
    spent = dict.fromkeys(paths, 0.0)
    events = dict.fromkeys(paths, 0)
    for fn in paths.values():
        fn()  # warm caches (UA parser, URL scrubber) as a running daemon has them
    for r in range(rounds):
        for label in list(paths)[r % len(paths):] + list(paths)[:r % len(paths)]:
            started = time.process_time()
            while time.process_time() - started < seconds / rounds:
                events[label] += paths[label]()
            spent[label] += time.process_time() - started
    return [{"path": p, "us_per_event": spent[p] / events[p] * 1e6, "events": events[p]} for p in paths]


def in_process(seconds: float) -> list[dict[str, Any]]:
    """The Python work per event of each path, without HTTP."""
    settings = Settings()
    enc = RowEncoder(settings, VisitorHasher(None))
    client = Client("203.0.113.7", CHROME)
    server = Client("203.0.113.7", "", server_side=True)
    now = time.time()
    one = make_batch(1, int(now * 1000), "bench1")[0]
    hundred = make_batch(100, int(now * 1000), "bench100")[0]
    visits = Visits()

    def obsd(body: bytes) -> Callable[[], int]:
        return lambda: enc.encode("demo", enc.decoder.decode(body), client, now).accepted

    def plausible() -> int:
        pe = parse_event(PLAUSIBLE.body, now)
        visitor = enc.visitors.visitor_id("demo", client.ip, client.user_agent)
        env = Envelope(events=[pe.event], sdk=Sdk("plausible-tracker", pe.version),
                       session_id=visits.session_id("demo", visitor, now), context=Context(referrer=pe.referrer))
        return enc.encode("demo", Decoded(env, None, []), client, now, protocol="plausible").accepted

    def sentry(body: bytes, encoding: str | None, who: Client, ua: str) -> Callable[[], int]:
        def run() -> int:
            raw = decompress_capped(body, encoding, 4 << 20) if encoding else body
            n = 0
            for item in parse_envelope(raw).items:
                err = read_event(item.payload, now=now, sent_at=None, request_ua=ua, limits=settings.limits)
                env = Envelope(events=[err.event], sdk=err.sdk, session_id=err.session_id, release=err.release,
                               environment=err.environment)
                n += enc.encode("demo", Decoded(env, None, []), who, now, protocol="sentry").accepted
            return n
        return run

    return cpu_per_event({
        "/v1/events, 1 event per request": obsd(one),
        "/v1/events, 100 events per request": obsd(hundred),
        "Plausible /api/event (pageview)": plausible,
        "Sentry envelope, browser error": sentry(SENTRY_BROWSER.body, None, client, CHROME),
        "Sentry envelope, Python error (br)": sentry(SENTRY_PYTHON.body, "br", server, "sentry.python/2.75.0"),
    }, seconds, rounds=6)


def _routes() -> dict[str, tuple[str, bytes, dict[str, str]]]:
    one = make_batch(1, int(time.time() * 1000), "load")[0]
    browser = {"User-Agent": CHROME, "Content-Type": "text/plain;charset=UTF-8"}
    return {
        "/v1/events (1 event)": ("/v1/events", one, {"X-Obsd-Key": CAPTURED_KEY, "User-Agent": CHROME,
                                                     "Content-Type": "application/json"}),
        "Plausible pageview": ("/api/event", PLAUSIBLE.body, {"User-Agent": CHROME, "Content-Type": "text/plain"}),
        "Sentry browser error": (f"/api/42/envelope/?{SENTRY_BROWSER.query}", SENTRY_BROWSER.body, browser),
        "Sentry Python error (br)": ("/api/42/envelope/", SENTRY_PYTHON.body,
                                     {k: v for k, v in SENTRY_PYTHON.headers.items()}),
    }


async def _load(url: str, body: bytes, headers: dict[str, str], seconds: float, concurrency: int) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            t = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            latencies.append(time.perf_counter() - t)

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return {"seconds": elapsed, "statuses": statuses, "latencies_ms": [round(x * 1000, 3) for x in latencies]}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def through_daemon(seconds: float, concurrency: int, rounds: int = 3) -> list[dict[str, Any]]:
    """Every route against one daemon, loaded from another process; daemon CPU per event.

    The routes take turns in `rounds` slices of seconds / rounds each (the order rotating), so load
    from elsewhere on the machine falls on all of them alike."""
    routes = _routes()
    acc: dict[str, dict[str, Any]] = {k: {"ok": 0, "seconds": 0.0, "cpu": 0.0, "lat": [], "statuses": {}}
                                      for k in routes}
    with tempfile.TemporaryDirectory() as tmp:
        d = Daemon(Path(tmp), top={"log_level": "warning"},
                   projects=[{"id": "shop", "write_key": CAPTURED_KEY, "sentry_id": 42,
                              "domains": ["compat.test", "rollup.compat.test"]}])
        d.start()
        assert d.proc is not None
        try:
            for r in range(rounds):
                order = list(routes)[r % len(routes):] + list(routes)[:r % len(routes)]
                for label in order:
                    path, body, headers = routes[label]
                    args = json.dumps({"url": d.base + path, "body": body.hex(), "headers": headers,
                                       "seconds": seconds / rounds, "concurrency": concurrency})
                    time.sleep(0.5)  # let the writer catch up with the previous slice
                    cpu0 = _cpu_s(d.proc.pid)
                    out = subprocess.run([sys.executable, __file__, "--client", args], capture_output=True,
                                         text=True, timeout=seconds + 60, check=True).stdout
                    a, res = acc[label], json.loads(out)
                    a["cpu"] += _cpu_s(d.proc.pid) - cpu0
                    a["ok"] += sum(n for s, n in res["statuses"].items() if s.startswith("2"))
                    a["seconds"] += res["seconds"]
                    a["lat"] += res["latencies_ms"]
                    for s, n in res["statuses"].items():
                        a["statuses"][s] = a["statuses"].get(s, 0) + n
        finally:
            d.stop()
    results = []
    for label, a in acc.items():
        lat = sorted(a["lat"]) or [0.0]
        results.append({"path": label, "rps": a["ok"] / a["seconds"], "p50_ms": lat[len(lat) // 2],
                        "p99_ms": lat[int(len(lat) * 0.99)], "statuses": a["statuses"],
                        "daemon_cpu_us_per_event": a["cpu"] / max(a["ok"], 1) * 1e6})
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=12.0, help="load per route, split into 3 rounds")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--client", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        c = json.loads(args.client)
        print(json.dumps(asyncio.run(_load(c["url"], bytes.fromhex(c["body"]), c["headers"], c["seconds"],
                                           c["concurrency"]))))
        return
    console.print("[bold]in-process CPU per event[/] …")
    cpu = in_process(min(args.seconds, 6.0))
    base = cpu[0]["us_per_event"]
    t = Table(title="Python work per event (decode, translate, validate, enrich, encode), no HTTP")
    for col in ("path", "µs/event", "÷ /v1/events (1 event)"):
        t.add_column(col, justify="left" if col == "path" else "right")
    for r in cpu:
        t.add_row(r["path"], f"{r['us_per_event']:.1f}", f"{r['us_per_event'] / base:.2f}")
    console.print(t)
    console.print(f"[bold]through a daemon[/]: {args.seconds:.0f} s per route, {args.concurrency} connections …")
    http = through_daemon(args.seconds, args.concurrency)
    base_rps, base_cpu = http[0]["rps"], http[0]["daemon_cpu_us_per_event"]
    t = Table(title="One event per request through obsd serve (fsync), loopback")
    for col in ("route", "events/s", "÷ /v1/events", "client p50/p99 ms", "daemon CPU µs/event", "÷ /v1/events"):
        t.add_column(col, justify="left" if col == "route" else "right")
    for r in http:
        t.add_row(r["path"], f"{r['rps']:,.0f}", f"{r['rps'] / base_rps:.2f}", f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}",
                  f"{r['daemon_cpu_us_per_event']:.0f}", f"{r['daemon_cpu_us_per_event'] / base_cpu:.2f}")
    console.print(t)
    bad = {r["path"]: r["statuses"] for r in http if any(not s.startswith("2") for s in r["statuses"])}
    if bad:
        console.print(f"[yellow]non-2xx answers: {bad}[/]")
    print(json.dumps({"cpu": cpu, "http": http, "args": {"seconds": args.seconds, "concurrency": args.concurrency},
                      "id": uuid.uuid4().hex[:8]}), file=sys.stderr)


if __name__ == "__main__":
    main()
