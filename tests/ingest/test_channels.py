"""Source and channel rules: the Python the encoder runs and the SQL the 0010 backfill runs agree on every case."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from obsd.ingest.channels import CHANNELS, CLICK_IDS, classify, sql_channel, sql_source
from obsd.store.client import Store
from tests.harness import ROOT

# (referrer, landing URL as the browser sent it, expected source, expected channel)
CHECKS = [  # (referrer, url, expected source, expected channel)
    ("", "https://shop.example/", "", "direct"),
    ("https://shop.example/cart", "https://shop.example/checkout", "", ""),  # within the site: no source
    ("https://www.google.com/", "https://shop.example/", "Google", "search"),
    ("https://www.google.co.uk/", "https://shop.example/", "Google", "search"),
    ("https://www.google.com/", "https://shop.example/?gclid=abc", "Google", "paid"),
    ("https://www.google.com/", "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=brand",
     "Google", "paid"),
    ("https://duckduckgo.com/", "https://shop.example/", "DuckDuckGo", "search"),
    ("https://l.facebook.com/", "https://shop.example/", "Facebook", "social"),
    ("https://l.facebook.com/", "https://shop.example/?utm_source=facebook&utm_medium=paid_social", "Facebook",
     "paid"),
    ("", "https://shop.example/?utm_source=fb-ads", "Facebook", "paid"),
    ("https://t.co/xyz", "https://shop.example/", "Twitter", "social"),
    ("https://news.ycombinator.com/item?id=1", "https://shop.example/", "Hacker News", "social"),
    ("", "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring", "newsletter", "email"),
    ("https://mail.google.com/", "https://shop.example/", "Gmail", "email"),
    ("https://en.wikipedia.org/wiki/Shoe", "https://shop.example/", "Wikipedia", "referral"),
    ("https://www.partner-blog.example/review", "https://shop.example/", "partner-blog.example", "referral"),
    ("", "https://shop.example/?utm_source=partner&utm_medium=affiliate", "partner", "referral"),
    ("https://chatgpt.com/", "https://shop.example/", "ChatGPT", "referral"),
    ("", "https://shop.example/?ref=producthunt", "Product Hunt", "social"),
    ("https://www.youtube.com/", "https://shop.example/", "YouTube", "social"),
]


@pytest.mark.parametrize(("referrer", "url", "source", "channel"), CHECKS)
def test_classify(referrer: str, url: str, source: str, channel: str) -> None:
    """Plausible's source names and obsd's six channels, from the raw referrer and landing URL."""
    assert classify(referrer, url, "shop.example") == (source, channel)
    assert channel in (*CHANNELS, "")


def test_malformed_urls_are_direct_not_an_error() -> None:
    """A URL Python cannot split (a bad IPv6 literal) classifies as direct instead of failing the request."""
    assert classify("http://[::1", "https://shop.example/") == ("", "direct")
    assert classify("", "https://shop.example/?utm_source=" + "x" * 5000)[0] == "x" * 200


def _backfill_sql() -> tuple[str, str]:
    """The source and channel expressions as written into migrations/0010 (its backfill)."""
    text = (ROOT / "migrations" / "0010_visits.up.sql").read_text()
    source = re.search(r"FROM \(SELECT \*, (if\(utm_source .*?) AS source_ FROM \(", text, re.S)
    channel = re.search(r"\n\s+(multiIf\(match\(lower\(utm_medium\).*?) AS channel,\n", text, re.S)
    assert source and channel
    return source.group(1), channel.group(1)


def test_the_sql_renderings_and_the_migration_agree_with_python(tmp_path: Path) -> None:
    """sql_source()/sql_channel() and the literal copy in the 0010 backfill classify every case as classify()."""
    store = Store(f"chdb://{tmp_path}/ch", "default")
    try:
        values = []
        for ref, url, *_ in CHECKS:
            q = dict(parse_qsl(urlsplit(url).query))
            host = urlsplit(ref).hostname or "" if ref else ""
            host = "" if host.removeprefix("www.") == "shop.example" else host
            tag = q.get("utm_source") or q.get("source") or q.get("ref") or ""
            click = next((c for c in CLICK_IDS if c in q), "")
            values.append((host, tag, q.get("utm_medium", ""), click))
        rows = ", ".join("(" + ", ".join("'" + v.replace("'", "\\'") + "'" for v in row) + ")" for row in values)
        table = f"values('referrer String, utm_source String, utm_medium String, c String', {rows})"
        fresh = store.query(f"SELECT src, {sql_channel('src', 'utm_medium', 'utm_source', 'c')} FROM "
                            f"(SELECT {sql_source('referrer', 'utm_source')} AS src, * FROM {table})").rows
        src_sql, chan_sql = _backfill_sql()
        migrated = store.query(f"SELECT source_, {chan_sql} FROM (SELECT *, {src_sql} AS source_ FROM {table})").rows
    finally:
        store.close()
    for (ref, url, want_src, want_ch), got, old, (_, _, _, click) in zip(CHECKS, fresh, migrated, values, strict=True):
        want = (want_src, want_ch or "direct")  # the SQL sees no internal navigation (the view clears it)
        assert tuple(got) == want, (ref, url)
        if not click:  # the stored rows the backfill reads have no click ids left
            assert tuple(old) == want, (ref, url)


def test_the_answer_cache_is_bounded_and_skips_long_urls() -> None:
    """Cached answers equal computed ones; a URL near the length cap is answered but not kept, and the cache
    never holds more than its 2,048 pairs however many distinct landing URLs arrive."""
    from obsd.ingest.channels import _classify, _classify_cached

    _classify_cached.cache_clear()
    long_url = "https://shop.example/?utm_source=newsletter&x=" + "a" * 8000
    assert classify("", long_url, "shop.example") == _classify("", long_url, "shop.example") == ("newsletter", "email")
    assert _classify_cached.cache_info().currsize == 0
    for i in range(3000):
        url = f"https://shop.example/p/{i}?utm_source=google&utm_medium=cpc"
        assert classify("https://www.google.com/", url, "shop.example") == ("Google", "paid")
    assert _classify_cached.cache_info().currsize == 2048
