"""Tests for obsd.privacy.scrub: URLs, free text and props lose personal data and keep the rest."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from obsd.privacy.scrub import UrlScrubber, luhn_valid, scrub_props, scrub_text
from tests.strategies import (
    ALLOWED_PARAMS,
    card_numbers,
    clean_text,
    contains_pii,
    json_like,
    jwts,
    luhn_ok,
    page_urls,
    pii,
    text_with_pii,
)


@pytest.mark.parametrize(
    ("raw", "scrubbed"),
    [
        ("contact jane.doe+shop@example.co.uk now", "contact [email] now"),
        ("user%40example.com", "[email]"),
        ("paid with 4111 1111 1111 1111.", "paid with [card]."),
        ("card 4111-1111-1111-1111 ok", "card [card] ok"),
        ("order 12 4111 1111 1111 1111", "order 12 [card]"),
        ("Authorization: Bearer abc.DEF_123==", "Authorization: Bearer [token]"),
        ("t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig-_x", "t=[jwt]"),
        ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig", "Bearer [jwt]"),
    ],
)
def test_scrub_text_masks_known_pii(raw: str, scrubbed: str) -> None:
    """Emails, card numbers, bearer tokens and JWTs are replaced by readable placeholders."""
    assert scrub_text(raw) == scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "TypeError: x is undefined at app.js:10:5",
        "order 1234567890123 shipped",  # 13 digits, fails Luhn
        "timestamp 1764288000123 ms",
        "id 12345678901234567890123",  # longer than any card
        "@media screen and (max-width: 600px)",
        "forbearer of news",
        "user@localhost",
    ],
)
def test_scrub_text_keeps_ordinary_text(text: str) -> None:
    """Error messages, long ids, timestamps and CSS survive untouched."""
    assert scrub_text(text) == text


def test_luhn_matches_textbook_examples() -> None:
    """The checksum accepts well-known test card numbers and rejects a one-digit typo."""
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")


@given(st.text(st.sampled_from("0123456789"), min_size=1, max_size=25))
def test_luhn_agrees_with_reference(digits: str) -> None:
    """The fast checksum agrees with a textbook implementation on every digit string."""
    assert luhn_valid(digits) == luhn_ok(digits)


@given(text_with_pii())
@example("a@b.cc.d@e.ff")
@example("eyJa.eyJb.eyJc.eyJd.eyJe.")
@example("xeyJa.eyJb.c")
@example("12 4111 1111 1111 1111 4111111111111111")
def test_scrubbed_text_never_contains_pii(text: str) -> None:
    """Whatever text holds, its scrubbed form has no email, Luhn-valid card, JWT or bearer token."""
    assert not contains_pii(scrub_text(text))


@given(st.text(max_size=200))
def test_scrub_text_fuzz_never_leaks_and_is_idempotent(text: str) -> None:
    """Arbitrary text is scrubbed completely in one pass: a second pass changes nothing."""
    once = scrub_text(text)
    assert not contains_pii(once)
    assert scrub_text(once) == once


@given(text_with_pii())
def test_scrub_text_is_idempotent(text: str) -> None:
    """Scrubbing an already scrubbed value changes nothing."""
    once = scrub_text(text)
    assert scrub_text(once) == once


@given(clean_text())
def test_clean_text_is_unchanged(text: str) -> None:
    """Text without personal data comes back identical, character for character."""
    assert scrub_text(text) == text


@given(pii(), clean_text(), clean_text())
def test_pii_between_delimiters_is_masked_and_context_kept(secret: str, before: str, after: str) -> None:
    """A secret set off by " | " is replaced and the words around it survive."""
    out = scrub_text(f"{before} | {secret} | {after}")
    assert secret not in out
    assert out.startswith(before + " | ") and out.endswith(" | " + after)


@given(card_numbers())
def test_every_generated_card_is_masked(card: str) -> None:
    """Any Luhn-valid 13-19 digit number, grouped or not, becomes [card]."""
    assert scrub_text(f"card: {card}.") == "card: [card]."


@given(json_like(st.one_of(clean_text(), pii(), st.integers(), st.none()), keys=st.one_of(clean_text(), pii())))
def test_scrubbed_props_hold_no_pii_anywhere(props: object) -> None:
    """Nested props lose personal data in keys and values, wherever it sits."""
    for chunk in _strings(scrub_props(props)):
        assert not contains_pii(chunk)


@given(json_like(st.one_of(clean_text(), pii(), st.integers(), st.none(), st.booleans()), keys=clean_text()))
def test_scrubbed_props_keep_their_shape(props: object) -> None:
    """Scrubbing changes strings only: nesting, keys and numbers stay as they were."""
    assert _shape(scrub_props(props)) == _shape(props)


def test_props_keys_are_scrubbed() -> None:
    """An email used as a props key is masked like any value."""
    assert scrub_props({"jane@x.example": {"card": "4111111111111111"}, "n": [1, "ok"]}) == {
        "[email]": {"card": "[card]"},
        "n": [1, "ok"],
    }


def _strings(obj: object) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in [*_strings(k), *_strings(v)]]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def _shape(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _shape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_shape(v) for v in obj]
    return "str" if isinstance(obj, str) else obj


@given(json_like(st.one_of(clean_text(), st.integers(), st.floats(allow_nan=False)), keys=clean_text()))
def test_clean_props_are_unchanged(props: object) -> None:
    """Props without personal data are returned equal to the input."""
    assert json.dumps(scrub_props(props), sort_keys=True) == json.dumps(props, sort_keys=True)


# ---- URLs ----------------------------------------------------------------------------------------


def test_url_keeps_only_allowlisted_params_in_order() -> None:
    """utm_* parameters survive in their original order; everything else and the fragment go."""
    s = UrlScrubber()
    url = "https://shop.example/p/1?q=shoes&utm_source=news&token=abc&utm_medium=mail#section"
    assert s.scrub(url) == "https://shop.example/p/1?utm_source=news&utm_medium=mail"


def test_url_drops_userinfo_default_port_and_masks_path() -> None:
    """Credentials, default ports and emails in the path never reach storage."""
    s = UrlScrubber()
    url = "HTTPS://bob:hunter2@Shop.Example:443/users/bob@mail.example/orders?utm_term=a%40b.example"
    assert s.split(url) == (
        "https://shop.example/users/[email]/orders?utm_term=[email]",
        "shop.example",
        "/users/[email]/orders",
    )


def test_url_keeps_custom_port_and_ipv6_host() -> None:
    """Non-default ports and IPv6 literals stay part of the host column."""
    s = UrlScrubber()
    assert s.split("http://localhost:3000/a?x=1") == ("http://localhost:3000/a", "localhost:3000", "/a")
    assert s.split("http://[::1]:8080/") == ("http://[::1]:8080/", "[::1]:8080", "/")


def test_url_exact_param_names_and_case() -> None:
    """Exact names match whole names only, case-insensitively, also when percent-encoded."""
    s = UrlScrubber(["ref", "utm_*"])
    assert s.scrub("https://a.example/?reference=1&ref=x&REF=y&utm%5Fsource=z") == (
        "https://a.example/?ref=x&REF=y&utm%5Fsource=z"
    )


def test_url_allow_everything_with_star() -> None:
    """An allowlist of "*" keeps every parameter but still masks PII in values."""
    s = UrlScrubber(["*"])
    assert s.scrub("https://a.example/?q=1&email=me@x.example") == "https://a.example/?q=1&email=[email]"


@pytest.mark.parametrize(
    "url",
    ["", "not a url", "mailto:me@x.example", "javascript:alert(1)", "https://[broken/x", "https://a:99999/"],
)
def test_unusual_urls_never_raise(url: str) -> None:
    """Unparsable or non-HTTP URLs come back PII-masked with empty host and path."""
    scrubbed, host, path = UrlScrubber().split(url)
    assert (host, path) == ("", "")
    assert scrubbed == scrub_text(url)


@given(page_urls())
def test_scrubbed_url_is_idempotent(url: str) -> None:
    """Scrubbing a scrubbed URL returns it unchanged."""
    s = UrlScrubber(ALLOWED_PARAMS)
    once = s.scrub(url)
    assert s.scrub(once) == once


@given(page_urls())
def test_scrubbed_url_has_no_pii_fragment_or_userinfo(url: str) -> None:
    """A scrubbed URL holds no PII, no fragment, no credentials, and only allowlisted params."""
    s = UrlScrubber(ALLOWED_PARAMS)
    out, host, path = s.split(url)
    assert not contains_pii(out)
    parts = urlsplit(out)
    assert parts.fragment == "" and "#" not in out
    assert "@" not in parts.netloc
    assert host == parts.netloc and path == parts.path
    for pair in filter(None, parts.query.split("&")):
        assert s.param_allowed(pair.partition("=")[0])


@given(page_urls())
def test_allowlisted_params_survive(url: str) -> None:
    """Every allowlisted parameter of the input is in the output, in the same order."""
    s = UrlScrubber(ALLOWED_PARAMS)
    query = urlsplit(url).query
    expected = [p for p in query.split("&") if p and s.param_allowed(p.partition("=")[0])]
    out_query = urlsplit(s.scrub(url)).query
    assert (out_query.split("&") if out_query else []) == [scrub_text(p) for p in expected]


@given(pii())
def test_detector_finds_every_generated_secret(secret: str) -> None:
    """The test detector recognises every generated secret, so the properties above have teeth."""
    assert contains_pii(secret)
    assert scrub_text(secret) != secret


@given(jwts())
def test_generated_jwts_are_masked_in_urls(token: str) -> None:
    """A JWT in a path segment is replaced by [jwt]."""
    assert UrlScrubber().scrub(f"https://a.example/reset/{token}") == "https://a.example/reset/[jwt]"


def test_url_scrubbing_is_cached_per_instance() -> None:
    """Repeated URLs are answered from the cache (identical object), unique URLs stay bounded."""
    s = UrlScrubber(cache_size=2)
    first = s.scrub("https://a.example/x?utm_source=1&q=2")
    assert s.scrub("https://a.example/x?utm_source=1&q=2") is first
    for i in range(10):
        s.scrub(f"https://a.example/{i}")
    assert s._split_cached.cache_info().currsize == 2


def test_scrub_text_is_linear_on_hostile_input() -> None:
    """100 KB strings built to trigger regex backtracking are scrubbed in well under a second."""
    hostile = [
        "a" * 100_000 + "@",
        "eyJ" * 50_000,
        "eyJa." + "eyJ" * 50_000,
        "1 " * 50_000,
        "4" * 100_000,
        "x@" * 50_000,
        "a.b" * 50_000 + "@x",
        "a@b.cc." * 20_000,
        "bearer " * 20_000,
    ]
    for text in hostile:
        start = time.perf_counter()
        scrub_text(text)
        assert time.perf_counter() - start < 0.5, text[:20]
