"""User-agent parsing into coarse, non-identifying context: browser, OS, device type, bot flag."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, Literal

import msgspec
from ua_parser import BestAvailableResolver, Domain, Parser, load_lazy_builtins

__all__ = ["DeviceType", "UserAgentInfo", "parse_user_agent"]

DeviceType = Literal["desktop", "mobile", "tablet", "bot", "other"]

# Beyond ua-parser's "Spider" device family: automation, headless browsers and HTTP libraries.
_BOT_RE: Final = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|headless|phantomjs|lighthouse|pagespeed|puppeteer|playwright"
    r"|selenium|webdriver|\bjsdom\b|^curl/|^wget/|python-requests|python-urllib|^python/|aiohttp"
    r"|httpx|go-http-client|okhttp|^java/|^axios/|node-fetch|undici|libwww-perl|facebookexternalhit"
    r"|^$",
    re.IGNORECASE,
)
_TABLET_RE: Final = re.compile(r"ipad|tablet|kindle|silk/|playbook|nexus (?:7|9|10)\b", re.IGNORECASE)
_MOBILE_OS: Final = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS"})
_DESKTOP_OS: Final = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Debian", "Chrome OS", "FreeBSD", "OpenBSD"}
)
_MAX_UA_LEN: Final = 512


class UserAgentInfo(msgspec.Struct, frozen=True):
    """What obsd keeps from a user agent: families and major versions, never the raw string."""

    browser: str
    browser_version: str
    os: str
    os_version: str
    device_type: DeviceType
    is_bot: bool


_parser: Parser | None = None


def _get_parser() -> Parser:
    global _parser
    if _parser is None:
        _parser = Parser(BestAvailableResolver(load_lazy_builtins()))
    return _parser


def _device_type(ua: str, os_family: str, device_family: str) -> DeviceType:
    if device_family == "iPad" or _TABLET_RE.search(ua):
        return "tablet"
    if os_family == "Android":
        # Android tablets leave "Mobile" out of the user agent by convention.
        return "mobile" if "Mobile" in ua else "tablet"
    if os_family in _MOBILE_OS or "Mobi" in ua:
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "other"


@lru_cache(maxsize=4096)
def _parse(ua: str) -> UserAgentInfo:
    res = _get_parser()(ua, Domain.ALL)
    browser = res.user_agent.family if res.user_agent else "Other"
    browser_version = (res.user_agent.major or "") if res.user_agent else ""
    os_family = res.os.family if res.os else "Other"
    os_version = (res.os.major or "") if res.os else ""
    device_family = res.device.family if res.device else "Other"
    is_bot = device_family == "Spider" or _BOT_RE.search(ua) is not None
    device_type: DeviceType = "bot" if is_bot else _device_type(ua, os_family, device_family)
    return UserAgentInfo(browser, browser_version, os_family, os_version, device_type, is_bot)


def parse_user_agent(ua: str) -> UserAgentInfo:
    """Return browser, OS, device type and bot flag of a user-agent string, cached per string."""
    # Real user agents are short; truncating keeps hostile megabyte headers out of the regexes and cache.
    return _parse(ua[:_MAX_UA_LEN])


def warm_up() -> None:
    """Load the ua-parser rules now, so the first request does not pay for it."""
    parse_user_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0")
