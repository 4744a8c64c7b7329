"""Where a visit came from: its source (Google, Facebook, a newsletter…) and channel, from the raw URL and referrer.

Plausible's rules (lib/plausible/ingestion/source.ex and acquisition.ex), compact and data-driven:

* source = the landing URL's `utm_source`, else `source`, else `ref` (known names and aliases matched
  case-insensitively: `ig` → Instagram), else the referrer's known name (google.* → Google), else the
  referrer's host without `www.`; '' for direct traffic and for navigation within the site.
* channel: an ordered rule list over (source, utm_medium, tagged source, click id), GA4's default
  channel grouping as Plausible extends it, collapsed into six: paid, email, search, social, referral,
  direct. Any ad click id (gclid, msclkid, fbclid, …) on the landing URL means paid.

The encoder runs `classify()` on the URL and referrer as the browser sent them, before the URL
scrubber drops click ids and `ref`: only the resulting source and channel are stored. The host list is
data (SOURCES, ALIASES): growing it is a one-line change; the long tail stays as its host name, which
is what Plausible shows for unknown referrers too. `sql_source()` / `sql_channel()` render the same
rules as ClickHouse expressions (the backfill of migration 0010 was made with them; a test keeps the
two in step).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

# Known referrer hosts → source name. Hosts are matched after lowercasing and stripping "www.";
# a pattern ending in "." matches any TLD (google.com, google.co.uk, ...), one starting with "."
# matches any subdomain. Compact on purpose: the long tail stays as its host name, which is what
# Plausible shows for unknown referrers too.
SOURCES: dict[str, list[str]] = {
    "Google": ["google.", ".google.", "googleadservices.com", "android-app://com.google.android.gm"],
    "Bing": ["bing.com", "cn.bing.com", "ntp.msn.com", "msn.com"],
    "DuckDuckGo": ["duckduckgo.com"],
    "Yahoo!": ["search.yahoo.com", ".search.yahoo.com", "yahoo.com", "yahoo.co.jp"],
    "Yandex": ["yandex.", "ya.ru"],
    "Baidu": ["baidu.com", "m.baidu.com"],
    "Ecosia": ["ecosia.org"],
    "Brave": ["search.brave.com"],
    "Qwant": ["qwant.com", "lite.qwant.com"],
    "Naver": ["naver.com", "m.naver.com", "search.naver.com", "m.search.naver.com"],
    "Seznam": ["seznam.cz"],
    "Startpage": ["startpage.com"],
    "Facebook": ["facebook.com", ".facebook.com", "fb.me", "fb.com"],
    "Instagram": ["instagram.com", "l.instagram.com"],
    "Twitter": ["t.co", "twitter.com", "x.com"],
    "LinkedIn": ["linkedin.com", "lnkd.in"],
    "Reddit": ["reddit.com", ".reddit.com", "android-app://com.reddit.frontpage"],
    "Hacker News": ["news.ycombinator.com"],
    "YouTube": ["youtube.com", "m.youtube.com", "youtu.be", "music.youtube.com"],
    "Pinterest": ["pinterest.", ".pinterest.com"],
    "TikTok": ["tiktok.com"],
    "GitHub": ["github.com"],
    "Mastodon": ["mastodon.social"],
    "Bluesky": ["bsky.app"],
    "Threads": ["threads.net"],
    "Telegram": ["t.me", "web.telegram.org"],
    "Discord": ["discord.com", "discordapp.com"],
    "Slack": ["slack.com", "app.slack.com"],
    "Product Hunt": ["producthunt.com"],
    "Stack Overflow": ["stackoverflow.com"],
    "Medium": ["medium.com"],
    "VK": ["vk.com", "m.vk.com"],
    "Wikipedia": [".wikipedia.org"],
    "Gmail": ["mail.google.com", "android-app://com.google.android.gm"],
    "Outlook": ["outlook.live.com", "outlook.office.com", "outlook.office365.com"],
    "Yahoo! Mail": ["mail.yahoo.com"],
    "ChatGPT": ["chatgpt.com", "chat.openai.com"],
    "Perplexity": ["perplexity.ai"],
    "Claude": ["claude.ai"],
    "Gemini": ["gemini.google.com"],
}
# Tagged-source aliases (utm_source values people actually use) → source name. From Plausible's
# priv/custom_sources.json shorthands, plus the lowercased names above (added below).
ALIASES: dict[str, str] = {
    "fb": "Facebook", "fb-ads": "Facebook", "fbads": "Facebook", "facebook-ads": "Facebook",
    "facebook_ads": "Facebook", "facebook_ad": "Facebook", "ig": "Instagram", "yt": "YouTube",
    "yt-ads": "YouTube", "reddit-ads": "Reddit", "google_ads": "Google", "google-ads": "Google",
    "googleads": "Google", "gads": "Google", "adwords": "Google", "twitter-ads": "Twitter", "x": "Twitter",
    "tiktokads": "TikTok", "producthunt": "Product Hunt", "hn": "Hacker News", "ycombinator": "Hacker News",
    "linkedin_ads": "LinkedIn",
}
# Sources whose traffic is a channel by itself (GA4's source categories, collapsed).
SEARCH = {"Google", "Bing", "DuckDuckGo", "Yahoo!", "Yandex", "Baidu", "Ecosia", "Brave", "Qwant", "Naver",
          "Seznam", "Startpage"}
SOCIAL = {"Facebook", "Instagram", "Twitter", "LinkedIn", "Reddit", "Hacker News", "YouTube", "Pinterest",
          "TikTok", "GitHub", "Mastodon", "Bluesky", "Threads", "Telegram", "Discord", "Slack", "Product Hunt",
          "Stack Overflow", "Medium", "VK"}
EMAIL = {"Gmail", "Outlook", "Yahoo! Mail"}
# utm_source values that mean "paid" whatever the medium (Plausible: custom sources ending in ad/ads,
# plus adwords).
PAID_SOURCES = {a for a in ALIASES if a.endswith(("ad", "ads"))} | {"adwords"}
# Click-id query parameters an ad network appends to the landing URL (Plausible treats gclid on
# Google and msclkid on Bing as paid search; obsd counts any of them as paid).
CLICK_IDS = ("gclid", "gbraid", "wbraid", "msclkid", "fbclid", "twclid", "ttclid", "li_fat_id")
# utm_medium patterns, straight from Plausible's acquisition_channel functions.
PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")  # cpc, cpm, cpv, ppc, paid_social, ...
DISPLAY_MEDIUM = {"display", "banner", "expandable", "interstitial", "cpm"}
EMAIL_TAG = re.compile(r"e[-_ ]?mail|newsletter")
SOCIAL_MEDIUM = {"social", "social-network", "social-media", "sm", "social network", "social media"}

CHANNELS = ("direct", "search", "social", "email", "paid", "referral")


def _host_index() -> tuple[dict[str, str], list[tuple[str, str]], list[tuple[str, str]]]:
    exact: dict[str, str] = {}
    prefixes: list[tuple[str, str]] = []  # "google." → any TLD
    suffixes: list[tuple[str, str]] = []  # ".facebook.com" → any subdomain
    for name, pats in SOURCES.items():
        for p in pats:
            if p.endswith("."):
                prefixes.append((p, name))
            elif p.startswith("."):
                suffixes.append((p, name))
            else:
                exact[p] = name
    return exact, prefixes, suffixes


_EXACT, _PREFIX, _SUFFIX = _host_index()
_BY_LOWER = {n.lower(): n for n in SOURCES} | ALIASES


def source_of_host(host: str) -> str:
    """The source name of a referrer host: a known name, else the host without www."""
    h = host.lower().strip().removeprefix("www.")
    if h in _EXACT:
        return _EXACT[h]
    for suffix, name in _SUFFIX:
        if h.endswith(suffix):
            return name
    for prefix, name in _PREFIX:
        # google.com, google.co.uk, google.de: the label after the prefix is a TLD (no more dots
        # beyond a second-level like co.uk).
        if h.startswith(prefix) and h[len(prefix):].count(".") <= 1:
            return name
    return h


def source_of_tag(tag: str) -> str:
    """A utm_source value matched case-insensitively against known names and aliases."""
    t = tag.strip()
    return _BY_LOWER.get(t.lower(), _EXACT.get(t.lower().removeprefix("www."), t))


_CACHED_CHARS = 1024  # URL + referrer; longer pairs (rare, and a hostile client's way to fill memory) are not kept


def classify(referrer: str, url: str, site_host: str = "") -> tuple[str, str]:
    """(source, channel) of a pageview from its referrer and its (unscrubbed) URL. Landing URLs and referrers
    repeat, so the answers for 2,048 short pairs are cached (a few MB at most)."""
    if len(url) + len(referrer) + len(site_host) <= _CACHED_CHARS:
        return _classify_cached(referrer, url, site_host)
    return _classify(referrer, url, site_host)


def _classify(referrer: str, url: str, site_host: str) -> tuple[str, str]:
    try:
        q = dict(parse_qsl(urlsplit(url).query)) if "?" in url else {}
        ref_host = (urlsplit(referrer).hostname or "") if referrer else ""
    except ValueError:  # a malformed URL (bad IPv6 literal, port): nothing to tell
        return "", "direct"
    internal = bool(ref_host) and ref_host.removeprefix("www.") == site_host.removeprefix("www.")
    tagged = (q.get("utm_source") or q.get("source") or q.get("ref") or "")[:200]
    if internal and not tagged and "utm_medium" not in q:
        return "", ""  # navigation within the site: no source, no channel
    source = source_of_tag(tagged) if tagged else ("" if internal or not ref_host else source_of_host(ref_host))
    click = next((c for c in CLICK_IDS if c in q), "")
    return source, channel(source, q.get("utm_medium", ""), tagged, click)


_classify_cached = lru_cache(maxsize=2048)(_classify)


def channel(source: str, utm_medium: str, utm_source: str = "", click_id: str = "") -> str:
    """Plausible's ordered rules, collapsed to six channels (first match wins)."""
    medium, tag = utm_medium.lower(), utm_source.lower()
    if PAID_MEDIUM.match(medium) or medium in DISPLAY_MEDIUM or tag in PAID_SOURCES or click_id:
        return "paid"  # Paid Search/Social/Video/Shopping, Display, Paid Other, Cross-network
    if source in EMAIL or EMAIL_TAG.search(tag) or EMAIL_TAG.search(medium):
        return "email"
    if source in SEARCH or medium in ("organic", "search"):
        return "search"
    if source in SOCIAL or medium in SOCIAL_MEDIUM or "video" in medium:
        return "social"  # Organic Social + Organic Video
    if source or medium:
        return "referral"  # Referral, Affiliates, Audio, SMS, Push, AI assistants: a named source or any
        # other medium (referral, app, link, affiliate, …)
    return "direct"


def _sql_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _arr(xs: list[str] | set[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(_sql_str(x) for x in sorted(xs)) + "]"


def sql_source(ref_host: str, utm_source: str) -> str:
    """ClickHouse expression for `source` (ref_host already excludes internal navigation)."""
    exact_k = _arr(list(_EXACT))
    exact_v = "[" + ", ".join(_sql_str(_EXACT[k]) for k in sorted(_EXACT)) + "]"
    alias_k = sorted(_BY_LOWER)
    alias_v = "[" + ", ".join(_sql_str(_BY_LOWER[k]) for k in alias_k) + "]"
    h = f"replaceRegexpOne(lower({ref_host}), '^www\\\\.', '')"
    suffix = " ".join(f"endsWith({h}, {_sql_str(s)}), {_sql_str(n)}," for s, n in _SUFFIX)
    prefix = " ".join(f"startsWith({h}, {_sql_str(p)}) AND countSubstrings(substring({h}, {len(p) + 1}), '.') <= 1, "
                      f"{_sql_str(n)}," for p, n in _PREFIX)
    # ClickHouse evaluates the repeated host expression once (common subexpression elimination).
    by_host = f"multiIf(has({exact_k}, {h}), {exact_v}[indexOf({exact_k}, {h})], {suffix} {prefix} {h})"
    return (f"if({utm_source} != '', if(has({_arr(alias_k)}, lower({utm_source})), "
            f"{alias_v}[indexOf({_arr(alias_k)}, lower({utm_source}))], {utm_source}), "
            f"if({ref_host} = '', '', {by_host}))")


def sql_channel(source: str, medium: str, tag: str, click: str) -> str:
    """ClickHouse expression for `channel`, the same rules as channel()."""
    m, t = f"lower({medium})", f"lower({tag})"
    return ("multiIf("
            f"match({m}, '^(.*cp.*|ppc|retargeting|paid.*)$') OR has({_arr(DISPLAY_MEDIUM)}, {m}) "
            f"OR has({_arr(PAID_SOURCES)}, {t}) OR {click} != '', 'paid', "
            f"has({_arr(EMAIL)}, {source}) OR match({t}, 'e[-_ ]?mail|newsletter') "
            f"OR match({m}, 'e[-_ ]?mail|newsletter'), 'email', "
            f"has({_arr(SEARCH)}, {source}) OR {m} IN ('organic', 'search'), 'search', "
            f"has({_arr(SOCIAL)}, {source}) OR has({_arr(SOCIAL_MEDIUM)}, {m}) "
            f"OR position({m}, 'video') > 0, 'social', "
            f"{source} != '' OR {m} != '', 'referral', 'direct')")
