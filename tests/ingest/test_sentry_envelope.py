"""Sentry's envelope grammar and authentication, against Relay's own test vectors and the captured SDK requests."""

from __future__ import annotations

import base64

import pytest

from obsd.ingest.sentry_envelope import dsn_key, parse_envelope, request_auth
from obsd.ingest.wire import WireError
from tests.ingest.captured import CAPTURED_KEY, sentry

H = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://e12d836b15bb49d7bbf99e64295d995b:@sentry.io/42"}'


@pytest.mark.parametrize("data, sizes", [
    (H, []),  # nothing but the header, no newline
    (H + b"\n", []),  # the header and a newline
    (H + b'\n{"type":"attachment","length":0}\n\n{"type":"attachment","length":0}\n', [0, 0]),
    (H + b'\n{"type":"attachment","length":0}\n\n{"type":"attachment","length":0}', [0, 0]),
    (H + b'\n{"type":"attachment"}\nhelloworld\n', [10]),  # no length: up to the newline
    (H + b'\n{"type":"attachment"}\nhelloworld', [10]),  # no length: up to the end
    (H + b'\n{"type":"attachment"}', [0]),  # an item header at the end: empty payload
    (H + b'\n{"type":"attachment","length":10,"content_type":"text/plain","filename":"hello.txt"}\n'
         b'\xef\xbb\xbfHello\r\n\n{"type":"event","length":41,"content_type":"application/json"}\n'
         b'{"message":"hello world","level":"error"}\n', [10, 41]),  # a length may span "\r\n"
    (b'{}\n{"type":"session"}\n{"started": "2020-02-07T14:16:00Z","attrs":{"release":"sentry-test@1.0.0"}}', [75]),
    (b'{}\n{"type":"attachment"}\nab\r\n', [3]),  # "\r" is payload
    (b'  {}\n  {"type":"x","length":1}\n\n', [1]),  # leading whitespace before a header is skipped
])
def test_relay_grammar_vectors(data: bytes, sizes: list[int]) -> None:
    """Every envelope Relay's tests accept splits into the same items with the same payload sizes."""
    assert [len(i.payload) for i in parse_envelope(data).items] == sizes


@pytest.mark.parametrize("data, words", [
    (b"", "envelope header is missing"),
    (H + b" \n", "missing newline"),  # junk after the header's JSON
    (H + b"\r\n", "missing newline"),  # "\r" is not a newline
    (H + b'\n{"type":"attachment","length":20}\nshort', "says it has 20 bytes"),
    (H + b'\n{"type":"attachment","length":2}\nabc\n', "missing newline after an item"),
    (H + b'\n{"type":"attachment","length":1}\na\n\n', "unexpected end"),  # a blank line where a header belongs
    (H + b'\n{"type":"attachment","length":-1}\n', "not a byte count"),
    (H + b'\n{"type":"attachment","length":"3"}\nabc', "not a byte count"),
    (b"[1,2]\n", "not a JSON object"),
    (b'{"a":\n', "not JSON"),
])
def test_relay_grammar_errors(data: bytes, words: str) -> None:
    """What Relay refuses, obsd refuses with a reason naming the problem."""
    with pytest.raises(WireError) as info:
        parse_envelope(data)
    assert info.value.code == "invalid_envelope" and words in str(info.value)


def test_captured_envelopes_parse() -> None:
    """Browser envelopes (no length, no trailing newline) and Python ones (length, trailing newline) both parse."""
    seen = set()
    for c in sentry():
        if c.path.endswith("/store/"):
            continue
        env = parse_envelope(c.decoded)
        assert env.items and all(i.type in ("event", "session", "client_report") for i in env.items), c.name
        seen.add(("length" in env.items[0].headers, c.decoded.endswith(b"\n")))
    assert seen == {(False, False), (True, True)}


KEY = "0123456789abcdef0123456789abcdef"


def test_credentials_are_found_where_sdks_put_them() -> None:
    """X-Sentry-Auth (Python), Authorization (Sentry or Basic), the query string (browser), the envelope's dsn."""
    assert request_auth({"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7, "
                         "sentry_client=sentry.python/2.75.0"}, {}).client == "sentry.python/2.75.0"  # type: ignore[union-attr]
    assert request_auth({"Authorization": f"sentry sentry_key={KEY},sentry_version=7"}, {}).key == KEY  # type: ignore[union-attr]
    basic = base64.b64encode(f"{KEY}:".encode()).decode()
    assert request_auth({"Authorization": f"Basic {basic}"}, {}).key == KEY  # type: ignore[union-attr]
    auth = request_auth({}, {"sentry_key": KEY, "sentry_version": "7"})
    assert auth is not None and (auth.key, auth.version) == (KEY, "7")
    via_dsn = request_auth({}, {}, f"https://{KEY}@o1.ingest.example/42")
    assert via_dsn is not None and (via_dsn.key, via_dsn.dsn_project) == (KEY, "42")
    assert request_auth({}, {"key": "obsd-style"}) is None


@pytest.mark.parametrize("headers, query, dsn, code", [
    ({"X-Sentry-Auth": f"Sentry sentry_key={KEY}"}, {"sentry_key": KEY}, None, "multiple_auth"),
    ({}, {"sentry_key": "aaa"}, f"https://{KEY}@h/42", "auth_mismatch"),
    ({}, {"sentry_key": KEY, "sentry_version": "8"}, None, "unsupported_version"),
    ({"Authorization": "Basic !!notbase64"}, {}, None, "invalid_auth"),
    ({}, {}, "not a dsn", "invalid_auth"),
])
def test_conflicting_or_unreadable_credentials_are_refused(headers: dict[str, str], query: dict[str, str],
                                                           dsn: str | None, code: str) -> None:
    """Credentials in two places, a dsn naming another key, a future protocol version: each a named 400."""
    with pytest.raises(WireError) as info:
        request_auth(headers, query, dsn)
    assert info.value.code == code


def test_dsn_key_reads_the_public_key_and_project() -> None:
    """DSNs with a secret, a path prefix or a port still give key and project id."""
    assert dsn_key(f"https://{KEY}:secret@obsd.example:8443/prefix/42") == (KEY, "42")
    assert dsn_key("https://obsd.example/42") is None and dsn_key(f"https://{KEY}@obsd.example/abc") is None
    assert CAPTURED_KEY == KEY
