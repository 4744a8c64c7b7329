"""Load generator: POSTs 100-event batches to obsd over loopback for a fixed time, from its own process.

Prints one JSON line of results. With --acked-file, writes the ids of every acknowledged event
(one per line, flushed after each 202) so crash tests can compare them with what the store holds.
With --retry, each batch carries a batch_id and is resent unchanged after a 503, a 429 or a lost
answer until it gets a 202 (as the browser SDK does), and --sent-file lists every id ever sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
import uuid
from typing import Any

import aiohttp

TYPES = ("pageview", "click", "scroll", "web_vital", "custom", "error")


def make_batch(n: int, now_ms: int, session: str, batch_id: str | None = None) -> tuple[bytes, list[str]]:
    """A realistic batch of n events with fresh ids, as JSON bytes."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    events: list[dict[str, Any]] = []
    for i, eid in enumerate(ids):
        t = TYPES[i % len(TYPES)]
        e: dict[str, Any] = {"id": eid, "type": t, "ts": now_ms - (n - i) * 10}
        if t == "pageview":
            e["url"] = f"https://shop.example/p/{i % 50}?utm_source=news"
        elif t == "click":
            e.update(selector="main > div.grid > button.add-to-cart", tag="button")
        elif t == "scroll":
            e["depth"] = (i * 7) % 101
        elif t == "web_vital":
            e.update(name=("LCP", "INP", "CLS", "FCP", "TTFB")[i % 5], value=1234.5 + i, rating="good")
        elif t == "custom":
            e.update(name="purchase", props={"amount": 10 + i % 90, "currency": "EUR"})
        else:
            e.update(message="TypeError: x is undefined", stack="TypeError: x is undefined\n    at f (app.js:10:5)")
        events.append(e)
    env = {"sdk": {"name": "obsd-js", "version": "0.1.0"}, "sent_at": now_ms, "session_id": session,
           "context": {"url": "https://shop.example/p/1?utm_source=news", "referrer": "https://www.google.com/",
                       "title": "Product page", "language": "de-DE", "timezone": "Europe/Berlin",
                       "screen": [1920, 1080], "viewport": [1280, 720]},
           "events": events}
    if batch_id:
        env["batch_id"] = batch_id
    return json.dumps(env).encode(), ids


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = f"{args.url.rstrip('/')}/v1/events"
    headers = {"X-Obsd-Key": args.key, "Content-Type": "application/json",
               "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                             "Chrome/126.0 Safari/537.36"}
    pool: list[bytes] = []
    if not args.acked_file:
        now = int(time.time() * 1000)
        pool = [make_batch(args.batch, now, uuid.uuid4().hex[:16])[0] for _ in range(args.pool)]
    acked = open(args.acked_file, "a", buffering=1) if args.acked_file else None  # noqa: SIM115
    sent = open(args.sent_file, "a", buffering=1) if args.sent_file else None  # noqa: SIM115
    stats: dict[str, Any] = {"requests": 0, "accepted": 0, "statuses": {}, "errors": 0, "duplicates": 0,
                             "reasons": {}}
    latencies: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    deadline = time.monotonic() + args.seconds
    max_requests = args.requests or 10**12

    # With --rate, each worker keeps its own schedule so the whole run offers `rate` requests per second
    # regardless of how fast obsd answers (open-loop load: latency is not hidden by waiting).
    interval = args.concurrency / args.rate if args.rate > 0 else 0.0

    timeout = aiohttp.ClientTimeout(total=args.timeout)

    async def worker(wid: int, session: aiohttp.ClientSession) -> None:
        i = wid
        pending: tuple[bytes, list[str]] | None = None  # a batch to resend unchanged (--retry)
        next_at = time.monotonic() + (interval * wid / args.concurrency if interval else 0.0)
        while not stop.is_set() and time.monotonic() < deadline and stats["requests"] < max_requests:
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            if pending is not None:
                body, ids = pending
            elif pool:
                body, ids = pool[i % len(pool)], []
            else:
                body, ids = make_batch(args.batch, int(time.time() * 1000), f"w{wid}",
                                       str(uuid.uuid4()) if args.retry else None)
                if sent is not None:
                    sent.write("\n".join(ids) + "\n")
            i += args.concurrency
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers, timeout=timeout) as resp:
                    payload = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
            except (TimeoutError, aiohttp.ClientError, OSError):
                stats["errors"] += 1
                pending = (body, ids) if args.retry and ids else None
                await asyncio.sleep(0.05)
                continue
            latencies.append(time.perf_counter() - started)
            stats["requests"] += 1
            stats["statuses"][str(status)] = stats["statuses"].get(str(status), 0) + 1
            pending = None
            if status == 202:
                answer = json.loads(payload)
                stats["accepted"] += answer["accepted"]
                stats["duplicates"] += bool(answer.get("duplicate"))
                if acked is not None and ids:
                    acked.write("\n".join(ids) + "\n")
            elif status in (429, 503):
                reason = json.loads(payload).get("error", "?")
                stats["reasons"][reason] = stats["reasons"].get(reason, 0) + 1
                pending = (body, ids) if args.retry and ids else None
                if retry_after:
                    await asyncio.sleep(min(float(retry_after), args.max_wait))

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(w, session) for w in range(args.concurrency)))
    elapsed = time.monotonic() - started
    if acked is not None:
        acked.close()
    if sent is not None:
        sent.close()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else 0.0

    stats.update(seconds=round(elapsed, 3), events_per_s=round(stats["accepted"] / elapsed),
                 p50_ms=pct(0.50), p99_ms=pct(0.99), max_ms=pct(1.0))
    return stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--requests", type=int, default=0, help="stop after this many requests (0: no cap)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--pool", type=int, default=500, help="distinct bodies cycled when ids are not tracked")
    p.add_argument("--acked-file", default="")
    p.add_argument("--rate", type=float, default=0.0, help="requests per second in all (0: as fast as possible)")
    p.add_argument("--retry", action="store_true", help="send a batch_id and resend a refused batch until 202")
    p.add_argument("--sent-file", default="", help="with --retry: every id sent, acknowledged or not")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a request counts as lost")
    p.add_argument("--max-wait", type=float, default=0.2, help="longest Retry-After to honour, in seconds")
    args = p.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args))), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
