"""Deterministic site traffic for report tests: wire envelopes (ingestion path) or rows (direct insert)."""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from obsd.ingest.channels import classify
from obsd.store.client import Store
from tests.harness import ADMIN_TOKEN, Daemon, http

# (User-Agent, browser, os, device_type) — the parsed values are what obsd's UA parser reports.
AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36", "Chrome", "Windows", "desktop"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4 Mobile/15E148 Safari/604.1", "Mobile Safari", "iOS", "mobile"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", "Firefox", "Linux", "desktop"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Mobile Safari/537.36", "Chrome Mobile", "Android", "mobile"),
]
BOT_AGENT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HOST = "shop.example"
PATHS = ["/", "/products", "/p/1", "/p/2", "/cart", "/checkout", "/blog/hello"]
REFERRERS = ["https://www.google.com/", "https://news.ycombinator.com/item?id=1", "https://t.co/x", "", ""]
VITALS = {"LCP": (800, 6000), "INP": (40, 700), "CLS": (0.0, 0.4), "FCP": (500, 4000), "TTFB": (100, 2500)}
# Three bugs; each occurrence varies in ids, numbers, line/column and bundle hash, so each bug must
# still be one fingerprint group.
BUGS = {
    "undefined-id": ("Cannot read properties of undefined (reading 'id') at item {n}",
                     "TypeError: Cannot read properties of undefined (reading 'id')\n"
                     "    at renderItem (https://shop.example/assets/app.{h}.js:{l}:{c})\n"
                     "    at Array.map (<anonymous>)\n    at renderList (https://shop.example/assets/app.{h}.js:9:{c})"),
    "fetch": ("Failed to fetch /api/cart/{u}",
              "Error: Failed to fetch\n    at loadCart (https://shop.example/assets/cart.{h}.js?v={n}:{l}:{c})"),
    "checkout": ("Payment widget crashed with code {n}",
                 "Error: Payment widget crashed\n    at pay@https://shop.example/assets/pay.js:{l}:{c}"),
}


@dataclass
class Session:
    """One visit: a browser, a session id and its events (wire format), from a visitor's address."""

    agent: str
    session_id: str
    referrer: str
    events: list[dict[str, Any]] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)
    ip: str = "127.0.0.1"

    def headers(self) -> dict[str, str]:
        """What the visitor's browser sends (a daemon with trusted_proxies = ["127.0.0.1"] reads the address)."""
        return {"User-Agent": self.agent, "X-Forwarded-For": self.ip}


def sessions(n: int, *, now_ms: int, span_h: float = 20.0, seed: int = 7, bots: int = 2) -> list[Session]:
    """n human sessions spread over the last span_h hours, plus some bot sessions."""
    rnd = random.Random(seed)
    out: list[Session] = []
    # About 1.3 visits per visitor, as on real sites: each visitor keeps one address and one browser.
    pool = max(1, int(n / 1.3))
    for i in range(n + bots):
        bot = i >= n
        rnd.randrange(len(AGENTS))  # (kept: the draws below stay as they were)
        visitor = random.Random(seed * 7919 + i).randrange(pool)
        agent = BOT_AGENT if bot else AGENTS[visitor % len(AGENTS)][0]
        ip = f"198.{18 + visitor // 65536 % 2}.{visitor // 256 % 256}.{visitor % 256}"
        # A session lasts at most ~8 minutes; starting 12+ minutes back keeps every event in the past.
        start = now_ms - int(rnd.uniform(0.2, span_h) * 3_600_000)
        s = Session(agent, hashlib.sha1(f"{seed}-{i}".encode()).hexdigest()[:16], rnd.choice(REFERRERS), ip=ip)
        t = start
        for _ in range(rnd.randint(1, 4)):
            path = rnd.choice(PATHS)
            url = f"https://{HOST}{path}"
            ref = s.referrer if not s.events else f"https://{HOST}/"
            s.events.append(_ev("pageview", t, rnd, url=url, referrer=ref, title=f"Page {path}"))
            for metric, (lo, hi) in VITALS.items():
                if rnd.random() < 0.7:
                    v = round(rnd.uniform(lo, hi), 3 if metric == "CLS" else 1)
                    s.events.append(_ev("web_vital", t + 500, rnd, url=url, name=metric, value=v, rating="good"))
            if rnd.random() < 0.3:
                s.events.append(_ev("click", t + 900, rnd, url=url, selector="main > button.buy", tag="button"))
            if rnd.random() < 0.2:
                s.events.append(_ev("custom", t + 1000, rnd, url=url, name="add_to_cart",
                                    props={"sku": f"A{rnd.randint(1, 9)}"}))
            if rnd.random() < 0.25:
                bug = rnd.choice(sorted(BUGS))
                msg, stack = BUGS[bug]
                vals = {"n": rnd.randint(1, 99999), "u": uuid.UUID(int=rnd.getrandbits(128)),
                        "h": f"{rnd.getrandbits(40):010x}", "l": rnd.randint(1, 400), "c": rnd.randint(1, 80)}
                s.events.append(_ev("error", t + 1200, rnd, url=url, message=msg.format(**vals),
                                    stack=stack.format(**vals), source=f"https://{HOST}/assets/app.js"))
                s.bugs.append(bug)
            t += rnd.randint(5_000, 120_000)
        out.append(s)
    return out


def _ev(type_: str, ts: int, rnd: random.Random, **fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)), "type": type_, "ts": ts, **fields}


def envelope_of(s: Session) -> dict[str, Any]:
    """The session as one wire-format batch."""
    first = s.events[0]
    return {"sdk": {"name": "obsd-js", "version": "0.1.0"}, "sent_at": s.events[-1]["ts"], "session_id": s.session_id,
            "context": {"url": first["url"], "referrer": s.referrer, "title": "Shop", "language": "en-US",
                        "timezone": "UTC", "screen": [1920, 1080], "viewport": [1280, 720]},
            "events": s.events}


def rows_of(s: Session, project: str = "demo") -> list[dict[str, Any]]:
    """The session as rows of obsd.events, as ingestion would store them (for direct inserts)."""
    agent = next((a for a in AGENTS if a[0] == s.agent), None)
    browser, os_, device = (agent[1], agent[2], agent[3]) if agent else ("Googlebot", "Other", "bot")
    rows = []
    first_pageview = next((e["id"] for e in s.events if e["type"] == "pageview"), None)
    for e in s.events:
        # As obsd's visitor hash: the same address and browser is another visitor id on each UTC day.
        day = e["ts"] // 86_400_000
        visitor = int.from_bytes(hashlib.sha256(f"{s.ip}|{s.agent}|{day}".encode()).digest()[:8], "big")
        url = e.get("url", "")
        ref = e.get("referrer", "")
        ref_host = ref.split("/")[2] if ref.startswith("http") else ""
        source, channel = classify(ref, url, HOST) if e["type"] == "pageview" else ("", "")
        rows.append({
            "session_start": s.events[0]["ts"] // 1000, "is_entry": e["id"] == first_pageview, "source": source,
            "channel": channel,
            "project_id": project, "event_id": e["id"], "type": e["type"], "name": e.get("name", ""),
            "ts": e["ts"] / 1000, "received_at": e["ts"] / 1000, "session_id": s.session_id, "visitor_id": visitor,
            "url": url, "hostname": HOST, "path": url.split(HOST, 1)[1] if HOST in url else "", "referrer": ref,
            "referrer_host": ref_host, "browser": browser, "os": os_, "device_type": device,
            "is_bot": agent is None, "value": e.get("value", 0.0), "error_message": e.get("message", ""),
            "error_stack": e.get("stack", ""), "error_source": e.get("source", ""),
            "selector": e.get("selector", ""), "props": json.dumps(e["props"]) if "props" in e else "",
        })
    return rows


def insert(store: Store, sess: list[Session], project: str = "demo", token: str | None = None) -> int:
    """Insert sessions straight into obsd.events; returns the number of rows."""
    rows = [r for s in sess for r in rows_of(s, project)]
    store.insert_ndjson("events", "\n".join(json.dumps(r) for r in rows).encode(), token=token)
    return len(rows)


def settle(d: Daemon, sessions: list[Session], project: str = "demo", timeout: float = 10.0) -> None:
    """Wait until the overview report counts every pageview sent (views commit just after the events part)."""
    expected = sum(1 for s in sessions if s.agent != BOT_AGENT for e in s.events if e["type"] == "pageview")
    deadline = time.monotonic() + timeout
    while True:
        r = http("GET", f"{d.base}/v1/stats/overview?project={project}&since=7d",
                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        if r.status == 200 and r.json()["summary"]["pageviews"] == expected:
            return
        assert time.monotonic() < deadline, f"the rollups did not catch up: {r.status} {r.body[:300]!r}"
        time.sleep(0.05)
