"""Realistic sample traffic for trying obsd out: sessions over a site map, deterministic per seed.

A session is one visitor's visit: an entry page reached from a referrer or campaign, a walk over
the site map (a Markov chain), and on each page what a browser SDK would send — a pageview, Web
Vitals drawn from plausible distributions, scrolls, clicks, occasional JavaScript errors with
stacks, and purchase funnels. Sessions are spread over the last D days with a daily and weekly
rhythm. The same seed and end time give the same events, ids included.

Events are made as wire-format envelopes, so they are validated and enriched exactly as real
traffic is (`obsd.cli.seed_load` sends them through the daemon or encodes them for the store).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from obsd.ingest.importer import ImportClient
from obsd.ingest.wire import Context, Envelope, Event, Sdk

SITE = "https://shop.example"
SDK = Sdk("obsd-js", "0.2.0")
PRODUCTS = [f"/p/{i}" for i in range(1, 41)]
CATEGORIES = ["/c/shoes", "/c/jackets", "/c/bags", "/c/accessories", "/c/sale"]
POSTS = ["/blog/how-we-measure", "/blog/spring-lookbook", "/blog/care-guide", "/blog/sizing", "/blog/2025-recap"]
TITLES = {"/": "Shop Example — Home", "/cart": "Your cart", "/checkout": "Checkout",
          "/checkout/success": "Thank you!", "/search": "Search", "/about": "About us", "/blog": "Blog",
          "/account": "Your account", "/signup": "Create an account"}

# Where a visitor goes from each kind of page (weights), "exit" ends the session.
FLOWS: dict[str, list[tuple[str, float]]] = {
    "home": [("category", 35), ("product", 20), ("search", 10), ("blog", 6), ("about", 3), ("signup", 3),
             ("exit", 23)],
    "category": [("product", 50), ("category", 12), ("search", 5), ("home", 5), ("exit", 28)],
    "product": [("product", 22), ("cart", 18), ("category", 15), ("search", 5), ("home", 4), ("exit", 36)],
    "search": [("product", 45), ("search", 10), ("category", 10), ("exit", 35)],
    "cart": [("checkout", 45), ("product", 15), ("home", 5), ("exit", 35)],
    "checkout": [("success", 62), ("cart", 8), ("exit", 30)],
    "success": [("home", 10), ("account", 10), ("exit", 80)],
    "blog": [("post", 60), ("home", 10), ("exit", 30)],
    "post": [("post", 20), ("product", 15), ("home", 10), ("exit", 55)],
    "about": [("home", 30), ("exit", 70)],
    "signup": [("account", 55), ("home", 10), ("exit", 35)],
    "account": [("home", 25), ("product", 15), ("exit", 60)],
}
ENTRIES = [("home", 45), ("product", 22), ("category", 12), ("post", 12), ("search", 4), ("about", 2),
           ("signup", 3)]

# (referrer, utm query, weight): direct traffic, search, social, links and campaigns.
SOURCES: list[tuple[str, str, float]] = [
    ("", "", 27), ("https://www.google.com/", "", 19), ("https://www.google.de/", "", 3),
    ("https://www.google.co.uk/", "", 2), ("https://www.bing.com/", "", 3), ("https://duckduckgo.com/", "", 2.5),
    ("https://www.ecosia.org/", "", 0.5), ("https://t.co/", "", 3), ("https://l.facebook.com/", "", 3),
    ("https://www.reddit.com/", "", 2), ("https://news.ycombinator.com/", "", 2),
    ("https://www.linkedin.com/", "", 1.5),
    ("https://l.instagram.com/", "", 1.5), ("https://www.youtube.com/", "", 1), ("https://github.com/", "", 1),
    ("https://chatgpt.com/", "", 1), ("https://partner-blog.example/best-shoes", "", 2),
    ("https://en.wikipedia.org/wiki/Running_shoe", "", 1), ("https://mail.google.com/", "", 0.5),
    ("", "utm_source=newsletter&utm_medium=email&utm_campaign={c}&utm_content={x}", 5),
    # Ad clicks: the click ids tell obsd they were paid, and the URL scrubber drops them afterwards.
    ("https://www.google.com/", "utm_source=google&utm_medium=cpc&utm_campaign={c}&utm_term={t}&utm_content={x}"
     "&gclid=Cj0KCQiA", 5),
    ("https://www.bing.com/", "utm_source=bing&utm_medium=cpc&utm_campaign={c}&utm_term={t}&msclkid=7f3a", 1),
    ("https://l.facebook.com/", "utm_source=facebook&utm_medium=paid_social&utm_campaign={c}&utm_content={x}", 3),
    ("", "utm_source=partner&utm_medium=affiliate&utm_campaign=affiliate_q4", 2),
    ("https://www.instagram.com/", "utm_source=ig&utm_medium=social&utm_campaign={c}", 1),
]
CAMPAIGNS = ["spring_sale", "black_friday", "brand", "retargeting", "new_arrivals"]
TERMS = ["running+shoes", "waterproof+jacket", "shop+example", "leather+bag", "gift+ideas"]
CONTENTS = ["hero_image", "header_cta", "footer_link", "carousel", "video_ad"]
# (country, region ISO 3166-2, city, weight): where visitors are, as a GeoIP database would tell.
PLACES = [("US", "US-CA", "San Francisco", 8), ("US", "US-NY", "New York", 8), ("US", "US-TX", "Austin", 5),
          ("US", "US-IL", "Chicago", 5), ("DE", "DE-BE", "Berlin", 6), ("DE", "DE-BY", "Munich", 4),
          ("GB", "GB-ENG", "London", 7), ("GB", "GB-SCT", "Edinburgh", 3), ("FR", "FR-IDF", "Paris", 5),
          ("NL", "NL-NH", "Amsterdam", 4), ("IN", "IN-MH", "Mumbai", 3), ("BR", "BR-SP", "São Paulo", 5),
          ("JP", "JP-13", "Tokyo", 5), ("CA", "CA-ON", "Toronto", 4), ("AU", "AU-NSW", "Sydney", 4),
          ("ES", "ES-MD", "Madrid", 3), ("PL", "", "", 2), ("SE", "", "", 2), ("", "", "", 2)]
# The site ships a new release twice over the window: (share of the window elapsed, release).
RELEASES = [(0.0, "v1.4.0"), (0.35, "v1.5.0"), (0.75, "v1.6.0")]

# (user agent, screen, viewport, weight)
DEVICES: list[tuple[str, tuple[int, int], tuple[int, int], float]] = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", (1920, 1080), (1536, 864), 24),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Mobile/15E148 Safari/604.1", (390, 844), (390, 664), 22),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36", (412, 915), (412, 780), 18),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15", (1512, 982), (1512, 860), 12),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", (1366, 768), (1366, 657), 8),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", (2560, 1440), (1280, 1305), 5),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", (1920, 1080),
     (1903, 961), 4),
    ("Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.6 Mobile/15E148 Safari/604.1", (820, 1180), (820, 1106), 4),
    ("Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", (384, 854), (384, 726), 3),
]
LOCALES = [("en-US", "America/New_York", "US", 30), ("en-US", "America/Los_Angeles", "US", 12),
           ("en-GB", "Europe/London", "GB", 12), ("de-DE", "Europe/Berlin", "DE", 14),
           ("fr-FR", "Europe/Paris", "FR", 8), ("es-ES", "Europe/Madrid", "ES", 5),
           ("nl-NL", "Europe/Amsterdam", "NL", 4), ("ja-JP", "Asia/Tokyo", "JP", 5),
           ("pt-BR", "America/Sao_Paulo", "BR", 5), ("en-AU", "Australia/Sydney", "AU", 5)]
# Web Vitals: (name, median, log-sd, good threshold, poor threshold); LCP/FCP/TTFB/INP in ms, CLS unitless.
VITALS = [("TTFB", 420.0, 0.6, 800.0, 1800.0), ("FCP", 1300.0, 0.5, 1800.0, 3000.0),
          ("LCP", 2000.0, 0.55, 2500.0, 4000.0), ("CLS", 0.04, 1.1, 0.1, 0.25), ("INP", 140.0, 0.7, 200.0, 500.0)]
ERRORS = [
    ("TypeError: Cannot read properties of undefined (reading 'price')", "/assets/app.4f1c2e.js", 1, 48213,
     "TypeError: Cannot read properties of undefined (reading 'price')\n"
     "    at renderCartLine (https://shop.example/assets/app.4f1c2e.js:1:48213)\n"
     "    at Array.map (<anonymous>)\n    at renderCart (https://shop.example/assets/app.4f1c2e.js:1:47702)\n"
     "    at HTMLDocument.<anonymous> (https://shop.example/assets/app.4f1c2e.js:1:1290)"),
    ("ReferenceError: gtag is not defined", "/assets/vendor.91ab0d.js", 2, 1877,
     "ReferenceError: gtag is not defined\n    at trackView (https://shop.example/assets/vendor.91ab0d.js:2:1877)\n"
     "    at https://shop.example/assets/app.4f1c2e.js:1:2204"),
    ("Unhandled promise rejection: NetworkError when attempting to fetch resource.", "/assets/app.4f1c2e.js", 1,
     30551, "fetchStock@https://shop.example/assets/app.4f1c2e.js:1:30551\n"
     "async*loadProduct@https://shop.example/assets/app.4f1c2e.js:1:29877"),
    ("Script error.", "", 0, 0, ""),
    ("RangeError: Maximum call stack size exceeded", "/assets/app.4f1c2e.js", 1, 9921,
     "RangeError: Maximum call stack size exceeded\n    at flatten (https://shop.example/assets/app.4f1c2e.js:1:9921)\n"
     "    at flatten (https://shop.example/assets/app.4f1c2e.js:1:9950)"),
]
CLICKS = {
    "home": [("header nav a.category", "a"), ("main .hero a.cta", "a"), ("main .product-card a", "a")],
    "category": [("main .filters button.size", "button"), ("main .product-card a", "a"),
                 ("main .sort select", "select")],
    "product": [("main button.add-to-cart", "button"), ("main .gallery img", "img"),
                ("main .sizes button", "button")],
    "cart": [("main button.checkout", "button"), ("main .qty button.plus", "button")],
    "checkout": [("form button[type=submit]", "button"), ("form input#email", "input")],
}
HOURLY = [2, 1.5, 1, 0.8, 0.8, 1, 2, 3.5, 5, 6, 6.5, 7, 7, 6.5, 6.5, 6.5, 6.8, 7, 7.5, 8, 8, 7, 5, 3]
WEEKDAY = [1.0, 1.0, 1.0, 0.98, 0.92, 0.75, 0.8]


T = TypeVar("T")


class _Choice(Generic[T]):
    """Weighted choice with precomputed cumulative weights (random.choices recomputes them per call)."""

    def __init__(self, items: list[tuple[T, float]]) -> None:
        self.values = [v for v, _ in items]
        self.cum = list(itertools.accumulate(w for _, w in items))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random) -> T:
        return self.values[bisect.bisect(self.cum, rng.random() * self.total)]


_FLOW = {k: _Choice([(n, w) for n, w in v]) for k, v in FLOWS.items()}
_ENTRY = _Choice([(n, w) for n, w in ENTRIES])
_SOURCE = _Choice([((r, q), w) for r, q, w in SOURCES])
_DEVICE = _Choice([((ua, s, v), w) for ua, s, v, w in DEVICES])
_LOCALE = _Choice([((lang, tz, c), w) for lang, tz, c, w in LOCALES])
_PLACE = _Choice([((c, r, city), w) for c, r, city, w in PLACES])


@dataclass(frozen=True, slots=True)
class Session:
    """One generated visit: the envelope the SDK would send and the request context around it."""

    envelope: Envelope
    client: ImportClient


def end_of_window(now: float | None = None) -> float:
    """The default end of the seeded window: the start of the current UTC hour (so reruns match)."""
    t = time.time() if now is None else now
    return t - t % 3600


_VARIANT = {c: "89ab"[int(c, 16) % 4] for c in "0123456789abcdef"}


class Generator:
    """Deterministic sessions for `events` events over `days` days ending at `end` (Unix seconds)."""

    def __init__(self, events: int, days: float, seed: int, end: float | None = None, *,
                 visitors: int | None = None, stream: int = 0) -> None:
        if events < 0:
            raise ValueError("events must be ≥ 0")
        if days <= 0:
            raise ValueError("days must be > 0")
        self.events = events
        self.days = days
        self.seed = seed
        self.end = end_of_window() if end is None else end
        self.start = self.end - days * 86_400
        # Each stream (a shard made by one worker) has its own random sequence; visitors, their
        # devices and locales come from the seed alone, so they are the same across shards.
        self.rng = random.Random(seed * 1_000_033 + stream)
        # Returning visitors: a pool about a third the size of the session count.
        self.visitors = visitors or max(10, events // 30)
        self._hour_cum = self._hour_weights()

    def _hour_weights(self) -> tuple[list[float], float]:
        weights: list[float] = []
        first = int(self.start // 3600)
        hours = max(1, math.ceil((self.end - self.start) / 3600))
        for i in range(hours):
            t = dt.datetime.fromtimestamp((first + i) * 3600, dt.UTC)
            growth = 1 + 0.3 * i / hours  # a site that grows a little over the window
            weights.append(HOURLY[t.hour] * WEEKDAY[t.weekday()] * growth)
        cum = list(itertools.accumulate(weights))
        return cum, cum[-1]

    def _session_start(self) -> float:
        cum, total = self._hour_cum
        i = bisect.bisect(cum, self.rng.random() * total)
        t = (int(self.start // 3600) + i) * 3600 + self.rng.random() * 3600
        return min(max(t, self.start), self.end - 1800)

    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def sessions(self) -> Iterator[Session]:
        """Sessions until exactly `events` events have been made (the last one may be cut short)."""
        left = self.events
        while left > 0:
            s = self._session(left)
            left -= len(s.envelope.events)
            yield s

    def _session(self, budget: int) -> Session:
        rng = self.rng
        t = self._session_start()
        # A visitor is drawn from that day's pool (1.5 x the day's sessions: ~1.4 visits per visitor-day, as on
        # real sites), and keeps device, locale and place; the address changes with the day, so seeded visitor
        # ids rotate like live ones.
        day = int(t // 86_400)
        visitor = rng.randrange(self.visitors)
        vrng = random.Random(self.seed * 1_000_003 + visitor)
        ua, screen, viewport = _DEVICE.pick(vrng)
        lang, tz, _ = _LOCALE.pick(vrng)
        country, region, city = _PLACE.pick(vrng)
        drng = random.Random(visitor * 100_003 + day)
        ip = f"{drng.randrange(11, 223)}.{drng.randrange(256)}.{drng.randrange(256)}.{drng.randrange(1, 255)}"
        referrer, utm = _SOURCE.pick(rng)
        utm = utm.format(c=rng.choice(CAMPAIGNS), t=rng.choice(TERMS), x=rng.choice(CONTENTS))
        mobile = screen[0] < 800
        events: list[Event] = []
        page_kind = _ENTRY.pick(rng)
        prev_url = referrer
        first_url = ""
        cart = 0.0
        pages = 0
        while len(events) < budget and pages < 30:
            path = self._path(page_kind)
            url = SITE + path + (f"?{utm}" if utm and pages == 0 else "")
            first_url = first_url or url
            title = TITLES.get(path) or path.rsplit("/", 1)[-1].replace("-", " ").title()
            events.append(Event(self._uuid(), "pageview", t * 1000, url=url, referrer=prev_url, title=title,
                                entry=pages == 0 or None))
            t += rng.uniform(0.3, 2.5)
            for name, median, sd, good, poor in VITALS:
                if name == "INP" and rng.random() < 0.4:
                    continue  # no interaction on this page
                v = median * math.exp(rng.gauss(0, sd)) * (1.4 if mobile and name != "CLS" else 1.0)
                v = round(v, 4) if name == "CLS" else round(v, 1)
                rating = "good" if v <= good else ("needs-improvement" if v <= poor else "poor")
                events.append(Event(self._uuid(), "web_vital", t * 1000, url=url, name=name, value=v,
                                    rating=rating))
            dwell = rng.lognormvariate(3.2, 0.9)  # seconds on the page, median ~25 s
            for depth in (25, 50, 75, 100):
                if rng.random() > 0.72:
                    break
                events.append(Event(self._uuid(), "scroll", (t + dwell * depth / 130) * 1000, url=url,
                                    depth=float(depth)))
            clicks = CLICKS.get(page_kind)
            if clicks:
                for _ in range(rng.choice((0, 1, 1, 2, 3))):
                    selector, tag = rng.choice(clicks)
                    href = SITE + rng.choice(PRODUCTS) if tag == "a" else None
                    events.append(Event(self._uuid(), "click", (t + rng.random() * dwell) * 1000, url=url,
                                        selector=selector, tag=tag, href=href))
            if rng.random() < 0.025:
                message, source, line, col, stack = rng.choice(ERRORS)
                events.append(Event(self._uuid(), "error", (t + rng.random() * dwell) * 1000, url=url,
                                    message=message, stack=stack or None,
                                    source=SITE + source if source else None, line=line or None, col=col or None))
            if page_kind == "product" and rng.random() < 0.3:
                price = round(rng.choice((19.0, 29.0, 49.0, 79.0, 99.0, 149.0, 249.0)) - 0.01, 2)
                cart += price
                events.append(Event(self._uuid(), "custom", (t + dwell * 0.6) * 1000, url=url, name="add_to_cart",
                                    props={"product": path.rsplit("/", 1)[-1], "price": price, "currency": "EUR"}))
            elif page_kind == "success":
                amount = round(cart or rng.uniform(20, 300), 2)
                items = max(1, int(amount // 60) + 1)
                events.append(Event(self._uuid(), "custom", (t + 1) * 1000, url=url, name="purchase",
                                    props={"amount": amount, "currency": "EUR", "items": items,
                                           "coupon": rng.random() < 0.15}))
                cart = 0.0
            elif page_kind == "signup" and rng.random() < 0.4:
                events.append(Event(self._uuid(), "custom", (t + dwell * 0.8) * 1000, url=url, name="signup",
                                    props={"plan": rng.choice(("free", "free", "plus"))}))
            pages += 1
            prev_url = url
            t += dwell
            page_kind = _FLOW[page_kind].pick(rng)
            if page_kind == "exit":
                break
        events = events[:budget]
        ctx = Context(url=first_url, referrer=referrer, title="", language=lang, timezone=tz,
                      screen=screen, viewport=viewport)
        release = next(r for share, r in reversed(RELEASES) if t >= self.start + share * (self.end - self.start))
        env = Envelope(events=events, sdk=SDK, sent_at=events[-1].ts, session_id=self._uuid().replace("-", "")[:16],
                       session_start=events[0].ts, release=release,
                       context=ctx)
        return Session(env, ImportClient(ip=ip, user_agent=ua, country=country, region=region, city=city))

    def _path(self, kind: str) -> str:
        rng = self.rng
        if kind == "product":
            # Popular products get most views (Zipf-like).
            return PRODUCTS[min(len(PRODUCTS) - 1, int(rng.paretovariate(1.2)) - 1)]
        if kind == "category":
            return rng.choice(CATEGORIES)
        if kind == "post":
            return rng.choice(POSTS)
        return {"home": "/", "search": "/search", "cart": "/cart", "checkout": "/checkout",
                "success": "/checkout/success", "blog": "/blog", "about": "/about", "signup": "/signup",
                "account": "/account"}[kind]
