"""Tests for obsd.privacy.useragent: coarse browser, OS and device context, and bot flags."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obsd.privacy.useragent import UserAgentInfo, parse_user_agent

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15"
)
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36"
)


@pytest.mark.parametrize(
    ("ua", "browser", "version", "os", "device"),
    [
        (CHROME_WIN, "Chrome", "120", "Windows", "desktop"),
        (FIREFOX_LINUX, "Firefox", "120", "Ubuntu", "desktop"),
        (SAFARI_MAC, "Safari", "17", "Mac OS X", "desktop"),
        (IPHONE, "Mobile Safari", "17", "iOS", "mobile"),
        (ANDROID_PHONE, "Chrome Mobile", "120", "Android", "mobile"),
        (IPAD, "Mobile Safari", "17", "iOS", "tablet"),
        (ANDROID_TABLET, "Chrome", "120", "Android", "tablet"),
    ],
)
def test_real_browsers_are_described(ua: str, browser: str, version: str, os: str, device: str) -> None:
    """Common browsers give family, major version, OS and device type, and are not bots."""
    info = parse_user_agent(ua)
    assert (info.browser, info.browser_version, info.os, info.device_type) == (browser, version, os, device)
    assert info.is_bot is False


@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/119.0.0.0 Safari/537.36 Chrome-Lighthouse",
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        "curl/8.4.0",
        "python-requests/2.31.0",
        "Wget/1.21.4",
        "Go-http-client/1.1",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "",
    ],
)
def test_crawlers_tools_and_empty_agents_are_bots(ua: str) -> None:
    """Search crawlers, audit tools, HTTP libraries and empty user agents are flagged as bots."""
    info = parse_user_agent(ua)
    assert info.is_bot is True
    assert info.device_type == "bot"


def test_headless_chrome_is_a_bot_named_headlesschrome() -> None:
    """Headless Chromium is flagged, and its browser name lets a config drop it specifically."""
    info = parse_user_agent(HEADLESS)
    assert info == UserAgentInfo("HeadlessChrome", "120", "Linux", "", "bot", True)


def test_results_are_cached() -> None:
    """Parsing the same user agent twice returns the same frozen object from the cache."""
    assert parse_user_agent(CHROME_WIN) is parse_user_agent(CHROME_WIN)


def test_info_is_immutable() -> None:
    """The parsed result cannot be modified by a later pipeline stage."""
    info = parse_user_agent(CHROME_WIN)
    with pytest.raises(AttributeError):
        info.browser = "x"  # type: ignore[misc]


def test_huge_user_agents_are_truncated_not_fatal() -> None:
    """A megabyte user agent header is parsed from its start, quickly, without raising."""
    info = parse_user_agent(CHROME_WIN + "A" * 1_000_000)
    assert info.browser == "Chrome"


@settings(deadline=None)  # the first call loads ua-parser's rules
@given(st.text(max_size=300))
def test_any_string_parses_to_a_known_device_type(ua: str) -> None:
    """Arbitrary user agents never raise and always map to one of the five device types."""
    info = parse_user_agent(ua)
    assert info.device_type in {"desktop", "mobile", "tablet", "bot", "other"}
    assert info.is_bot == (info.device_type == "bot")
