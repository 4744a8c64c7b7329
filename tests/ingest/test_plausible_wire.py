"""Plausible Events API bodies read the way Plausible's server reads them, into obsd events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from obsd.ingest.plausible_wire import parse_event
from obsd.ingest.wire import WireError
from tests.ingest.captured import plausible

NOW = 1_800_000_000.0


def _parse(doc: dict[str, Any] | str) -> Any:
    return parse_event((doc if isinstance(doc, str) else json.dumps(doc)).encode(), NOW)


def _refused(doc: dict[str, Any] | str) -> WireError:
    with pytest.raises(WireError) as info:
        _parse(doc)
    return info.value


def test_every_captured_tracker_request_is_read() -> None:
    """Each body the real tracker sent becomes one event of the right type, for the domains it named."""
    types = {"pageview": "pageview", "engagement": "scroll"}
    for c in plausible():
        doc = c.json()
        pe = parse_event(c.decoded, NOW)
        assert pe.event.type == types.get(doc["n"], "custom"), c.name
        assert pe.event.url == doc["u"] and pe.version == "36"
        assert pe.domains == tuple(doc["d"].split(","))
        if pe.event.type == "custom":
            assert pe.event.name == doc["n"]


def test_pageview_fields() -> None:
    """Pageview: URL, referrer, hash mode and the domain list, short or long names alike."""
    short = _parse({"n": "pageview", "u": "https://shop.example/#/a", "d": "shop.example, www.Blog.example",
                    "r": "https://www.google.com/", "h": 1, "v": 36})
    long = _parse({"name": "pageview", "url": "https://shop.example/#/a", "domain": "shop.example, www.Blog.example",
                   "referrer": "https://www.google.com/", "hashMode": 1, "v": 36})
    for pe in (short, long):
        assert (pe.event.type, pe.event.url, pe.referrer, pe.hash_mode) == (
            "pageview", "https://shop.example/#/a", "https://www.google.com/", True)
        assert pe.domains == ("shop.example", "blog.example")  # trimmed, lower case, www. dropped
        assert pe.event.ts == NOW * 1000 and len(pe.event.id) == 36


def test_custom_event_props_and_revenue() -> None:
    """Props are stringified, maps/lists/blanks dropped; revenue gives the value and its currency."""
    pe = _parse({"n": "Purchase", "u": "https://shop.example/", "d": "shop.example",
                 "p": {"plan": "pro", "seats": 3, "ok": True, "ratio": 2.5, "empty": " ", "nested": {"x": 1},
                       "list": [1], "none": None},
                 "$": {"amount": "12.50", "currency": "USD"}, "i": False})
    assert (pe.event.type, pe.event.name, pe.event.value) == ("custom", "Purchase", 12.5)
    assert pe.event.props == {"plan": "pro", "seats": "3", "ok": "true", "ratio": "2.5", "interactive": False,
                              "revenue_amount": "12.50", "revenue_currency": "USD"}


@pytest.mark.parametrize("field", ["p", "props", "m", "meta"])
def test_props_may_be_a_json_string_under_any_name(field: str) -> None:
    """Old scripts send meta as a JSON string; all four names and both forms are read."""
    pe = _parse({"n": "Signup", "u": "https://shop.example/", field: json.dumps({"plan": "free"})})
    assert pe.event.props == {"plan": "free"}


@pytest.mark.parametrize("revenue", [
    {"amount": "abc", "currency": "EUR"}, {"amount": 10, "currency": "euro"}, {"amount": 10},
    {"amount": True, "currency": "EUR"}, "not json", {"amount": "NaN", "currency": "EUR"}])
def test_invalid_revenue_is_ignored_and_the_event_kept(revenue: Any) -> None:
    """As in Plausible, a revenue that is not an amount and an ISO currency code is dropped, not refused."""
    pe = _parse({"n": "Purchase", "u": "https://shop.example/", "$": revenue})
    assert pe.event.value is None and "revenue_currency" not in (pe.event.props or {})


def test_at_most_30_props_and_their_size_limits() -> None:
    """31 props keep the first 30; a key over 300 bytes or a value over 2000 bytes refuses the event."""
    pe = _parse({"n": "x", "u": "https://a.example/", "p": {f"k{i}": str(i) for i in range(31)}})
    assert list(pe.event.props or {}) == [f"k{i}" for i in range(30)]
    assert _refused({"n": "x", "u": "https://a.example/", "p": {"k" * 301: "v"}}).code == "invalid_props"
    assert _refused({"n": "x", "u": "https://a.example/", "p": {"k": "é" * 1001}}).code == "invalid_props"


def test_engagement_is_scroll_depth_and_engaged_time() -> None:
    """sd (capped at 100) is the depth, e the engaged milliseconds; numeric strings count; neither is a 400."""
    pe = _parse({"n": "engagement", "u": "https://a.example/p", "sd": 140, "e": "4200"})
    assert (pe.event.type, pe.event.depth, pe.event.props) == ("scroll", 100.0, {"engaged_ms": 4200})
    only_time = _parse({"n": "engagement", "u": "https://a.example/p", "e": 900})
    assert (only_time.event.type, only_time.event.name, only_time.event.props) == (
        "custom", "engagement", {"engaged_ms": 900})
    legacy = _parse({"n": "pageleave", "u": "https://a.example/p", "sd": 30})
    assert (legacy.event.type, legacy.event.depth) == ("scroll", 30.0)
    err = _refused({"n": "engagement", "u": "https://a.example/p", "sd": "deep", "e": -1})
    assert err.code == "invalid_engagement" and "'sd' or 'e'" in str(err)


def test_name_may_be_a_number_and_is_at_most_120_characters() -> None:
    """`n: 404` is the event "404"; a name over 120 characters is refused."""
    assert _parse({"n": 404, "u": "https://a.example/x"}).event.name == "404"
    assert _refused({"n": "x" * 121, "u": "https://a.example/"}).code == "field_too_long"


def test_domain_defaults_to_the_url_host_but_may_not_be_blank() -> None:
    """Without d the URL's host is the domain; an empty d is refused as Plausible does."""
    assert _parse({"n": "pageview", "u": "https://www.shop.example:8443/x"}).domains == ("shop.example",)
    assert _refused({"n": "pageview", "u": "https://shop.example/", "d": " "}).code == "missing_domain"


@pytest.mark.parametrize("body, code", [
    ('{"u": "https://a.example/"}', "missing_name"),
    ('{"n": "pageview"}', "missing_url"),
    ('{"n": "pageview", "u": "data:text/html,hi"}', "invalid_url"),
    ('{"n": "pageview", "u": "https://a.example/' + "x" * 2000 + '"}', "field_too_long"),
    ('["n", "pageview"]', "invalid_json"),
    ('{"n": "pageview", ', "invalid_json"),
    ('{"n": "pageview", "n": "x", "u": "https://a.example/"}', "duplicate_key"),
])
def test_bodies_plausible_refuses_are_refused_with_a_reason(body: str, code: str) -> None:
    """Missing name or URL, data: URLs, over-long URLs, non-objects and malformed JSON are 400s."""
    assert _refused(body).code == code
