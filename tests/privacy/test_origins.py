"""Tests for obsd.privacy.origins: which browser origins may send events to a project."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obsd.privacy.origins import Origin, OriginPolicy, parse_origin

POLICY = OriginPolicy(["https://shop.example", "*.example.com", "http://localhost:3000", "https://*.cdn.test:8443"])


@pytest.mark.parametrize(
    "origin",
    [
        "https://shop.example",
        "HTTPS://Shop.EXAMPLE",
        "https://shop.example:443",
        "https://shop.example/",
        "https://www.example.com",
        "http://www.example.com",
        "https://a.b.c.example.com",
        "http://localhost:3000",
        "https://img.cdn.test:8443",
    ],
)
def test_listed_origins_are_allowed(origin: str) -> None:
    """Exact origins (any case, default port spelled or not) and subdomains of wildcards pass."""
    assert POLICY.allows(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "http://shop.example",  # other scheme
        "https://shop.example:8443",  # other port
        "https://example.com",  # the apex is not a subdomain
        "https://evil-example.com",
        "https://example.com.evil.test",
        "https://wwwexample.com",
        "http://localhost:3001",
        "http://localhost",
        "https://img.cdn.test",  # wildcard pinned to port 8443
        "http://img.cdn.test:8443",  # and to https
        "null",  # sandboxed iframes and file:// pages
        "https://user@shop.example",
        "shop.example",
        "ftp://shop.example",
    ],
)
def test_foreign_origins_are_refused(origin: str) -> None:
    """Look-alike hosts, the bare apex, other schemes and ports, and opaque origins are refused."""
    assert not POLICY.allows(origin)


@pytest.mark.parametrize("origin", [None, "", "  "])
def test_missing_origin_is_allowed(origin: str | None) -> None:
    """Requests without an Origin header (servers, curl) pass; the write key still guards them."""
    assert POLICY.allows(origin)


def test_star_allows_every_origin() -> None:
    """The "*" entry accepts any origin, including opaque ones."""
    policy = OriginPolicy(["*"])
    assert policy.allows("https://anything.test") and policy.allows("null")


def test_empty_allowlist_refuses_browsers() -> None:
    """With no allowed origins only header-less (server-side) senders get through."""
    policy = OriginPolicy([])
    assert not policy.allows("https://shop.example")
    assert policy.allows(None)


def test_bare_host_entry_allows_http_and_https() -> None:
    """An entry without a scheme allows the host over both schemes on default ports."""
    policy = OriginPolicy(["shop.example"])
    assert policy.allows("https://shop.example") and policy.allows("http://shop.example")
    assert not policy.allows("https://shop.example:8080")


def test_internationalised_hosts_match_their_punycode() -> None:
    """An allowlist written in Unicode matches the punycode origin browsers send."""
    policy = OriginPolicy(["https://bücher.example"])
    assert policy.allows("https://xn--bcher-kva.example")


@pytest.mark.parametrize("entry", ["https://", "*.", "https://a.example/path", "gopher://*.x.test", "*.x.test:port"])
def test_malformed_entries_fail_at_startup(entry: str) -> None:
    """A typo in the allowlist raises with the entry named, instead of silently refusing traffic."""
    with pytest.raises(ValueError, match="origin"):
        OriginPolicy([entry])


def test_parse_origin_normalises() -> None:
    """Origins are lower-cased with explicit default ports, and IPv6 hosts keep their brackets."""
    assert parse_origin("HTTP://LocalHost") == Origin("http", "localhost", 80)
    assert parse_origin("https://[::1]:8443") == Origin("https", "[::1]", 8443)
    assert parse_origin("https://x.test:0") is None


def _expected(header: str) -> bool:
    """What POLICY must answer, written out independently of OriginPolicy."""
    if not header.strip():
        return True  # no Origin: not a browser request, the write key still applies
    o = parse_origin(header)
    if o is None:
        return False
    default = {"http": 80, "https": 443}[o.scheme]
    return (o in {Origin("https", "shop.example", 443), Origin("http", "localhost", 3000)}
            or (o.host.endswith(".example.com") and o.port == default)
            or (o.scheme == "https" and o.host.endswith(".cdn.test") and o.port == 8443))


_origin_like = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}{port}",
    st.sampled_from(["http", "https", "HTTPS", "ftp", "ws"]),
    st.sampled_from(["shop.example", "a.example.com", "example.com", "x.cdn.test", "localhost", "evil.com",
                     "shop.example.evil.com", "b.a.example.com", "[::1]", "xn--bcher-kva.example.com"]),
    st.sampled_from(["", ":80", ":443", ":3000", ":8443", ":0", ":99999", "/", "/path"]))


@given(st.text(max_size=60) | _origin_like)
def test_any_header_gets_the_answer_the_allowlist_implies(header: str) -> None:
    """Any Origin header value (garbage or origin-like) is answered as the allowlist says, never with an exception."""
    assert POLICY.allows(header) is _expected(header)


@given(st.from_regex(r"[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True))
def test_wildcard_matches_exactly_the_subdomains(label: str) -> None:
    """*.example.com matches X.example.com for any X, and never X-example.com or Xexample.com."""
    assert POLICY.allows(f"https://{label}.example.com")
    assert not POLICY.allows(f"https://{label}-example.com")
    assert not POLICY.allows(f"https://{label}example.com")
