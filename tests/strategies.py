"""Hypothesis strategies shared by the test suite, and the independent PII detectors the privacy tests use."""

from __future__ import annotations

import re
import string
import uuid
from typing import Any

from hypothesis import strategies as st

uuids = st.builds(lambda: str(uuid.uuid4())) | st.uuids().map(str)
short_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | \
    st.floats(allow_nan=False, allow_infinity=False) | short_text


def valid_event(now_ms: int) -> st.SearchStrategy[dict[str, Any]]:
    """Events that obsd must accept."""
    base = st.fixed_dictionaries({
        "id": uuids,
        "ts": st.integers(now_ms - 3_600_000, now_ms + 60_000),
        "url": st.sampled_from(["https://shop.example/", "https://shop.example/p/1?utm_source=x", None]),
    })
    per_type = st.one_of(
        st.just({"type": "pageview"}),
        st.fixed_dictionaries({"type": st.just("click"), "selector": short_text, "tag": st.just("button")}),
        st.fixed_dictionaries({"type": st.just("scroll"), "depth": st.integers(0, 100)}),
        st.fixed_dictionaries({"type": st.just("error"), "message": short_text.filter(bool),
                               "stack": short_text}),
        st.fixed_dictionaries({"type": st.just("web_vital"),
                               "name": st.sampled_from(["LCP", "INP", "CLS", "FCP", "TTFB"]),
                               "value": st.floats(0, 60_000), "rating": st.sampled_from(["good", "poor"])}),
        st.fixed_dictionaries({"type": st.just("custom"), "name": short_text.filter(bool).map(lambda s: s[:50]),
                               "props": st.dictionaries(short_text, json_scalars, max_size=5)}),
    )
    return st.builds(lambda b, t: {k: v for k, v in {**b, **t}.items() if v is not None}, base, per_type)


def invalid_event(now_ms: int) -> st.SearchStrategy[dict[str, Any]]:
    """Events that obsd must refuse, each for one reason."""
    return st.one_of(
        st.builds(lambda i: {"id": i, "type": "nope", "ts": now_ms}, uuids),
        st.builds(lambda s: {"id": s, "type": "pageview", "ts": now_ms}, short_text),
        st.builds(lambda i: {"id": i, "type": "pageview", "ts": "yesterday"}, uuids),
        st.builds(lambda i: {"id": i, "type": "web_vital", "ts": now_ms, "name": "XYZ", "value": 1}, uuids),
        st.builds(lambda i: {"id": i, "type": "pageview", "ts": 0}, uuids),
        st.builds(lambda i: {"id": i, "ts": now_ms}, uuids),
    )


chunk_sizes = st.lists(st.tuples(st.integers(1, 50), st.integers(1, 4096)), max_size=200)


def tail_comparisons() -> st.SearchStrategy[tuple[float, str, float]]:
    """(prop value, operator, threshold) for numeric `obsd tail` filter expressions."""
    numbers = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False) | st.integers(-10**6, 10**6).map(float)
    return st.tuples(numbers, st.sampled_from([">", ">=", "<", "<=", "==", "!="]), numbers)


# -- privacy: PII generators and detectors ---------------------------------------------------------

# Detectors written independently of obsd.privacy.scrub: what a reviewer would call PII.
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
BEARER_RE = re.compile(r"(?i)\bbearer\s+(?!\[token\])[A-Za-z0-9._~+/-]")
DIGIT_RUN_RE = re.compile(r"[0-9](?:[ -]?[0-9])*")
# As broad as the scrubber's email pattern, used only to generate text that is surely clean.
BROAD_EMAIL_RE = re.compile(r"[\w.%+'-]+(?:@|%40)[\w.-]+\.[A-Za-z]{2,}")


def luhn_ok(digits: str) -> bool:
    """Return whether a digit string passes the Luhn checksum (textbook version)."""
    total = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):
        total += sum(divmod(d * 2, 10)) if i % 2 else d
    return total % 10 == 0


def contains_card(s: str) -> bool:
    """Return whether some run of 13-19 digits (grouped by single spaces or dashes) passes Luhn."""
    for m in DIGIT_RUN_RE.finditer(s):
        groups = re.split(r"[ -]", m.group(0))
        for i in range(len(groups)):
            for j in range(i, len(groups)):
                digits = "".join(groups[i : j + 1])
                if 13 <= len(digits) <= 19 and luhn_ok(digits):
                    return True
    return False


def contains_pii(s: str) -> bool:
    """Return whether a string holds an email, a Luhn-valid card number, a JWT or a bearer token."""
    return bool(EMAIL_RE.search(s) or JWT_RE.search(s) or BEARER_RE.search(s) or contains_card(s))


def might_be_scrubbed(s: str) -> bool:
    """Return whether the scrubber could have a reason to touch a string (broader than contains_pii)."""
    return bool(BROAD_EMAIL_RE.search(s)) or contains_pii(s)


def with_check_digit(body: str) -> str:
    """Append the Luhn check digit to a string of digits."""
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


_local = st.text(string.ascii_letters + string.digits + "._%+-", min_size=1, max_size=12)
_label = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
_tld = st.text(string.ascii_lowercase, min_size=2, max_size=6)
_b64 = st.text(string.ascii_letters + string.digits + "_-", min_size=0, max_size=40)


@st.composite
def emails(draw: st.DrawFn) -> str:
    """Generate plausible email addresses, sometimes percent-encoded as they appear in URLs."""
    labels = draw(st.lists(_label, min_size=1, max_size=3))
    sep = draw(st.sampled_from(["@", "@", "%40"]))
    return f"{draw(_local)}{sep}{'.'.join(labels)}.{draw(_tld)}"


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    """Generate Luhn-valid card numbers of 13-19 digits, plain or grouped with spaces or dashes."""
    length = draw(st.integers(13, 19))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    number = with_check_digit(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    if not sep:
        return number
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


@st.composite
def jwts(draw: st.DrawFn) -> str:
    """Generate JWT-shaped tokens: base64url header and payload starting with eyJ, and a signature."""
    return f"eyJ{draw(_b64)}.eyJ{draw(_b64)}.{draw(_b64)}"


@st.composite
def bearer_headers(draw: st.DrawFn) -> str:
    """Generate `Bearer <token>` strings in any letter case."""
    word = draw(st.sampled_from(["Bearer", "bearer", "BEARER"]))
    token = draw(st.text(string.ascii_letters + string.digits + "._~+/-", min_size=1, max_size=40))
    return f"{word} {token}"


def pii() -> st.SearchStrategy[str]:
    """Generate one piece of personal data of any supported kind."""
    return st.one_of(emails(), card_numbers(), jwts(), bearer_headers())


def clean_text() -> st.SearchStrategy[str]:
    """Generate text the scrubber must leave alone, digits and at-signs included."""
    alphabet = st.one_of(
        st.sampled_from(string.ascii_letters + string.digits + " .-_@/:?=&%#[]"),
        st.characters(codec="utf-8"),
    )
    return st.text(alphabet, max_size=80).filter(lambda s: not might_be_scrubbed(s))


@st.composite
def text_with_pii(draw: st.DrawFn) -> str:
    """Generate clean text interleaved with personal data, joined by arbitrary separators."""
    parts = draw(st.lists(st.one_of(clean_text(), pii()), min_size=1, max_size=6))
    seps = draw(
        st.lists(
            st.sampled_from(["", " ", ", ", "/", "=", "\n", "a", "1", ".", "-"]),
            min_size=len(parts),
            max_size=len(parts),
        )
    )
    return "".join(p + s for p, s in zip(parts, seps, strict=True))


def json_like(leaves: st.SearchStrategy[object], keys: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    """Generate nested JSON-like values (dicts, lists, scalars) over the given leaves and keys."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(keys, inner, max_size=4),
        ),
        max_leaves=12,
    )


ALLOWED_PARAMS = ("utm_*", "ref")
_param_names = st.sampled_from(
    ["utm_source", "utm_medium", "UTM_Campaign", "ref", "q", "email", "token", "session", "utm", "reference", "id"]
)
_url_safe = st.text(string.ascii_letters + string.digits + "-._~", max_size=12)


@st.composite
def page_urls(draw: st.DrawFn) -> str:
    """Generate http(s) page URLs with userinfo, ports, query parameters, fragments and PII in paths."""
    scheme = draw(st.sampled_from(["http", "https", "HTTPS"]))
    userinfo = draw(st.sampled_from(["", "user@", "user:pw@"]))
    host = ".".join(draw(st.lists(_label, min_size=1, max_size=3))) + "." + draw(_tld)
    port = draw(st.sampled_from(["", ":443", ":80", ":8080"]))
    segments = draw(
        st.lists(st.one_of(_url_safe, emails(), card_numbers().map(lambda c: c.replace(" ", "-")), jwts()), max_size=4)
    )
    path = "".join("/" + s for s in segments)
    params = draw(st.lists(st.tuples(_param_names, st.one_of(_url_safe, emails())), max_size=5))
    query = "&".join(f"{k}={v}" for k, v in params)
    fragment = draw(st.sampled_from(["", "#top", "#access_token=abc"]))
    return f"{scheme}://{userinfo}{host}{port}{path}{'?' + query if query else ''}{fragment}"


# Where a hostile body can hide its nesting: the events list itself, inside one event's props, inside
# context, or under a key obsd does not know.
NESTING_POSITIONS = ("events", "props", "context", "unknown_key", "event_field")


@st.composite
def deeply_nested_bodies(draw: st.DrawFn, min_depth: int = 1, max_depth: int = 5000) -> tuple[bytes, int, str]:
    """A batch body with arrays/objects nested `depth` levels at one position: (body, depth, position)."""
    depth = draw(st.integers(min_depth, max_depth))
    position = draw(st.sampled_from(NESTING_POSITIONS))
    kind = draw(st.sampled_from(["array", "object", "mixed"]))
    return nested_body(depth, position, kind), depth, position


def nested_body(depth: int, position: str, kind: str = "array") -> bytes:
    """A batch body with a value nested `depth` levels (arrays, objects or both in turn) at `position`."""
    opens: list[bytes] = []
    closes: list[bytes] = []
    for i in range(depth):
        as_array = kind == "array" or (kind == "mixed" and i % 2 == 0)
        opens.append(b"[" if as_array else b'{"k":')
        closes.append(b"]" if as_array else b"}")
    nested = b"".join(opens) + b"1" + b"".join(reversed(closes))
    event = (b'{"id":"0b7e6c1e-8d2a-4c1e-9f3b-2a6d5c4b3a21","type":"custom","name":"n","ts":%d' %
             (int(__import__("time").time() * 1000)))
    if position == "events":
        return b'{"session_id":"s1","events":[' + event + b"}," + nested + b"]}"
    if position == "props":
        return b'{"events":[' + event + b',"props":{"x":' + nested + b"}}]}"
    if position == "context":
        return b'{"context":{"title":' + nested + b'},"events":[' + event + b"}]}"
    if position == "event_field":
        return b'{"events":[' + event + b',"extra":' + nested + b"}]}"
    return b'{"whatever":' + nested + b',"events":[' + event + b"}]}"
