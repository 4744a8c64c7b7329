"""Sentry event items as obsd error events: the stack obsd's SDK would have sent, and nothing about the user."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest

from obsd.ingest.sentry_envelope import parse_envelope
from obsd.ingest.sentry_event import GECKO, V8, engine_for, read_event, render_stack, seconds
from obsd.settings import LimitsSettings
from tests.ingest.captured import PAGE_URL, native_errors, sentry

NOW = time.time()
LIMITS = LimitsSettings()
CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def _read(doc: dict[str, Any], ua: str = CHROME_UA, **kw: Any) -> Any:
    return read_event(json.dumps(doc).encode(), now=NOW, sent_at=kw.pop("sent_at", None), request_ua=ua,
                      limits=kw.pop("limits", LIMITS), **kw)


def _captured_event(mark: str) -> tuple[bytes, str]:
    [c] = [c for c in sentry(mark) if c.name.endswith("event") and c.mark == mark]
    [item] = [i for i in parse_envelope(c.decoded).items if i.type == "event"]
    return item.payload, c.headers.get("User-Agent", "")


@pytest.mark.parametrize("mark, native", [
    ("sentry-uncaught-error", 0), ("sentry-uncaught-error-sync-onerror", 1),
    ("sentry-uncaught-error-click-handler", 2), ("sentry-unhandled-rejection", 3), ("sentry-capture-exception", 5)])
def test_browser_errors_become_what_obsds_sdk_sees(mark: str, native: int) -> None:
    """Message, stack and source equal what the page's own handlers saw, byte for byte (same error group)."""
    payload, ua = _captured_event(mark)
    got = read_event(payload, now=NOW, sent_at=None, request_ua=ua, limits=LIMITS).event
    seen = native_errors()[native]
    assert got.message == seen["errorMessage"]
    assert got.stack == seen["stack"]
    if seen["kind"] == "native-error":  # obsd's SDK knows a source file for window errors only
        assert got.source == seen["filename"] == PAGE_URL
        assert (got.line, got.col) == (seen["lineno"], seen["colno"])
    else:
        assert got.source is None


def test_a_rejected_string_reads_like_obsds_sdk() -> None:
    """Promise.reject('…'): obsd's SDK words, no stack, no source."""
    payload, ua = _captured_event("sentry-unhandled-rejection-primitive")
    got = read_event(payload, now=NOW, sent_at=None, request_ua=ua, limits=LIMITS).event
    assert (got.message, got.stack, got.source) == ("Non-Error promise rejection: plain string reason", None, None)


def test_capture_message_is_an_error_row_with_its_level() -> None:
    """captureMessage(text, 'warning'): the text, level warning, the synthetic frames without a header line."""
    payload, ua = _captured_event("sentry-capture-message")
    err = read_event(payload, now=NOW, sent_at=None, request_ua=ua, limits=LIMITS)
    assert err.event.type == "error" and err.event.message == "checkout slow for order 991"
    assert err.event.props["level"] == "warning" and err.event.props["handled"] is True
    assert err.event.stack.startswith("    at Object.captureMessage (")  # type: ignore[union-attr]


def test_release_environment_sdk_tags_and_trace_are_kept() -> None:
    """release, environment, the SDK, tags (as props) and the trace id (as the session) come along."""
    payload, ua = _captured_event("sentry-uncaught-error")
    err = read_event(payload, now=NOW, sent_at=None, request_ua=ua, limits=LIMITS)
    assert (err.release, err.environment) == ("shop@2.3.4", "staging")
    assert (err.sdk.name, err.sdk.version) == ("sentry.javascript.browser", "11.12.0")
    assert err.event.props == {"level": "error", "mechanism": "auto.browser.browserapierrors.setTimeout",
                               "handled": False, "exception_type": "TypeError", "tags": {"page": "sentry-test"}}
    assert err.session_id == "c9c7b7b911824b7699b29668945024ab" and not err.server_side
    assert err.event.id == "0cb2f536-a126-45b2-9133-3ff71f37dd7a" and err.event_id == "0cb2f536a12645b291333ff71f37dd7a"
    assert err.event.url is not None and err.event.url.startswith("http://127.0.0.1:8787/page/sentry")


def test_python_errors_render_module_qualified_frames() -> None:
    """A Python traceback becomes V8-style lines with module.function, so the fingerprint sees its frames."""
    [c, *_] = [c for c in sentry("python") if b"ZeroDivisionError" in c.decoded]
    [item] = parse_envelope(c.decoded).items
    err = read_event(item.payload, now=NOW, sent_at=None, request_ua=c.headers["User-Agent"], limits=LIMITS)
    lines = (err.event.stack or "").split("\n")
    assert lines[:2] == ["ZeroDivisionError: division by zero",
                         "    at __main__.divide_order_total (/work/scratch/compat/py_capture.py:19)"]
    assert err.server_side and err.event.source == "/work/scratch/compat/py_capture.py" and err.event.line == 19
    assert (err.release, err.sdk.name) == ("backend@1.2.3", "sentry.python.aiohttp")


def test_frames_not_in_app_are_listed_by_their_place_in_the_stack() -> None:
    """in_app: false frames (libraries) are named by index (0 = where it broke), so a view can dim them."""
    frames = [{"function": "main", "module": "app", "abs_path": "/srv/app.py", "lineno": 1, "in_app": True},
              {"function": "get", "module": "requests.api", "abs_path": "/venv/requests/api.py", "lineno": 73,
               "in_app": False}]
    err = _read({"platform": "python", "exception": {"values": [{"type": "ConnectionError", "value": "boom",
                                                                "stacktrace": {"frames": frames}}]}})
    assert err.event.props["frames_not_in_app"] == [0]
    assert err.event.stack.split("\n")[1] == "    at requests.api.get (/venv/requests/api.py:73)"


def test_gecko_browsers_get_their_own_stack_format() -> None:
    """Firefox and Safari print fn@url:line:col without a header; Chrome prints V8's lines."""
    ex = {"type": "TypeError", "value": "x", "stacktrace": {"frames": [
        {"function": "?", "filename": "https://a/app.js", "lineno": 1, "colno": 2},
        {"function": "boom", "filename": "https://a/app.js", "lineno": 3, "colno": 4}]}}
    assert engine_for("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0") == GECKO
    assert engine_for("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15") == GECKO
    assert engine_for(CHROME_UA) == V8
    assert render_stack(ex, GECKO, header=True)[0] == "boom@https://a/app.js:3:4\n@https://a/app.js:1:2"
    assert render_stack(ex, V8, header=True)[0] == "TypeError: x\n    at boom (https://a/app.js:3:4)\n    at https://a/app.js:1:2"


def test_user_ip_cookies_and_frame_variables_are_never_read() -> None:
    """Nothing of user, request headers (beyond the UA), cookies, env, vars or source lines reaches the event."""
    secret = "leak-7f3a"
    err = _read({"platform": "python", "user": {"id": secret, "email": f"{secret}@x.example", "ip_address": "1.2.3.4"},
                 "request": {"url": "https://shop.example/p?token=" + secret, "cookies": secret,
                             "headers": {"User-Agent": CHROME_UA, "Cookie": secret}, "env": {"REMOTE_ADDR": "1.2.3.4"}},
                 "exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": [
                     {"function": "f", "abs_path": "/a.py", "lineno": 1, "vars": {"password": secret},
                      "context_line": secret, "pre_context": [secret]}]}}]},
                 "extra": {"x": secret}, "breadcrumbs": [{"message": secret}]})
    blob = msgspec.json.encode(err.event).decode() + repr(err)
    assert secret not in blob.replace("token=" + secret, "") and "1.2.3.4" not in blob
    assert err.user_agent == CHROME_UA  # the visitor's browser, for device columns only


def test_tags_fit_obsds_props_limit() -> None:
    """Hundreds of tags (object or [key, value] pairs) are kept up to limits.max_props_bytes, the rest counted."""
    many = {f"tag{i}": "v" * 150 for i in range(300)}
    for tags in (many, [[k, v] for k, v in many.items()]):
        err = _read({"message": "m", "tags": tags}, limits=LIMITS)
        assert len(msgspec.json.encode(err.event.props)) <= LIMITS.max_props_bytes
        assert 0 < len(err.event.props["tags"]) < 300
        assert err.event.props["tags_dropped"] == 300 - len(err.event.props["tags"])


def test_times_follow_relay_drift_correction_and_stay_in_range() -> None:
    """RFC 3339 or seconds; a client clock an hour off is corrected; a time outside the limits becomes now."""
    assert seconds("2026-12-01T08:44:45.502Z") == pytest.approx(1796114685.502)
    assert seconds("2026-12-01T08:44:45.123456") == seconds("2026-12-01T08:44:45.123456+00:00")
    assert seconds(1796114685.5) == 1796114685.5 and seconds("soon") is None and seconds(True) is None
    on_time = _read({"message": "m", "timestamp": NOW - 10})
    assert on_time.event.ts == pytest.approx((NOW - 10) * 1000)
    skewed = _read({"message": "m", "timestamp": NOW + 7200 - 10}, sent_at=NOW + 7200)  # the client is 2 h ahead
    assert skewed.event.ts == pytest.approx((NOW - 10) * 1000) and "timestamp_adjusted" not in skewed.event.props
    ancient = _read({"message": "m", "timestamp": "2001-01-01T00:00:00Z"})
    assert ancient.event.ts == pytest.approx(NOW * 1000) and ancient.event.props["timestamp_adjusted"] is True


def test_odd_but_valid_events_still_make_a_row() -> None:
    """No message, no exception: Sentry's '<unlabeled event>'; a bad event_id gets a fresh one; logentry counts."""
    assert _read({}).event.message == "<unlabeled event>"
    assert len(_read({"event_id": "nope"}).event_id) == 32
    assert _read({"logentry": {"message": "a %s", "formatted": "a b"}}).event.message == "a b"
    assert _read({"message": {"formatted": "hi"}}).event.message == "hi"
    odd = _read({"message": "m", "contexts": "x", "sdk": [1], "request": {"url": 5, "headers": [["User-Agent", "u"]]}},
                header_sdk={"name": "from.header", "version": "1", "extra": True})
    assert (odd.event.message, odd.session_id, odd.sdk.name, odd.event.url, odd.user_agent) == (
        "m", None, "from.header", None, "u")
