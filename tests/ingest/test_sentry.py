"""Sentry's envelope and store endpoints against a real daemon: captured SDK traffic and a corpus of edge cases."""

from __future__ import annotations

import gzip
import json
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import brotli
import pytest
import zstandard

from tests.harness import Daemon, Response, envelope, event, http
from tests.ingest.captured import CAPTURED_KEY, CAPTURED_ORIGIN, sentry

KEY = CAPTURED_KEY
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
PROJECTS = [{"id": "shop", "write_key": KEY, "allowed_origins": [CAPTURED_ORIGIN, "http://compat.test:8787"],
             "sentry_id": 42},
            {"id": "other", "write_key": "other_write_key_01", "sentry_id": 7},
            {"id": "plain", "write_key": "plain-write-key-01"}]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("sentry"), sections={"pipeline": {"batch_interval_ms": 50}},
                projects=PROJECTS) as d:
        yield d


def post(d: Daemon, body: bytes, *, path: str = "/api/42/envelope/", query: str = f"sentry_key={KEY}&sentry_version=7",
         headers: dict[str, str] | None = None) -> Response:
    h = {"Content-Type": "text/plain;charset=UTF-8", "User-Agent": CHROME, **(headers or {})}
    return http("POST", f"{d.base}{path}{'?' + query if query else ''}", body, h)


def error_envelope(message: str, *, length: bool = False, newline: bool = False, extra: bytes = b"",
                   event_id: str | None = None, **fields: Any) -> bytes:
    """An envelope with one error event (and maybe more items), in the shapes SDKs write."""
    eid = event_id or uuid.uuid4().hex
    payload = json.dumps({"event_id": eid, "platform": "javascript", "level": "error", "release": "shop@9.9.9",
                          "environment": "corpus", "message": message, **fields}).encode()
    head = {"type": "event", **({"length": len(payload)} if length else {})}
    body = json.dumps({"event_id": eid}).encode() + b"\n" + json.dumps(head).encode() + b"\n" + payload + extra
    return body + (b"\n" if newline else b"")


def stored(d: Daemon, message: str, n: int = 1) -> list[dict[str, Any]]:
    assert d.wait_for(f"SELECT count() FROM obsd.events WHERE error_message = '{message}'", n) == n, message
    return d.query("SELECT project_id, release, environment, protocol, props, event_id FROM obsd.events "
                   f"WHERE error_message = '{message}'")


def test_captured_sdk_traffic_is_stored(daemon: Daemon) -> None:
    """Every envelope @sentry/browser and sentry-sdk (br and gzip) sent, and the store bodies, answer 200."""
    for c in sentry():
        r = http("POST", f"{daemon.base}{c.path}{'?' + c.query if c.query else ''}", c.body, c.headers)
        assert r.status == 200, (c.name, r.body)
        if c.name.endswith("event") or "store" in c.name:
            assert len(r.json()["id"]) == 32
        else:
            assert r.json() == {}
        if "Origin" in c.headers:
            assert r.headers["Access-Control-Allow-Origin"] == c.headers["Origin"]
            assert "X-Sentry-Rate-Limits" in r.headers["Access-Control-Expose-Headers"]
    n = daemon.wait_for("SELECT count() FROM obsd.events WHERE protocol = 'sentry' AND type = 'error'", 13)
    assert n == 13
    rows = daemon.query("SELECT DISTINCT release, environment, sdk FROM obsd.events WHERE protocol = 'sentry' "
                        "AND type = 'error' ORDER BY release")
    assert [(r["release"], r["environment"]) for r in rows] == [
        ("backend@1.2.3", "staging"), ("legacy@0.9.0", "production"), ("shop@2.3.4", "staging")]
    sessions = daemon.query("SELECT name, value, release FROM obsd.events WHERE type = 'session' ORDER BY received_at")
    assert [(s["name"], s["value"]) for s in sessions] == [("ok", 0), ("unhandled", 1), ("exited", 1), ("exited", 1)]
    assert 'obsd_sentry_client_discarded_total{category="error",reason="before_send"} 1.0' in daemon.metrics()


@pytest.mark.parametrize("shape", ["length", "no-length", "trailing-newline", "no-trailing-newline"])
def test_items_with_and_without_length_and_trailing_newline(daemon: Daemon, shape: str) -> None:
    """Both item framings and both envelope endings are read the same."""
    msg = f"corpus shape {shape}"
    body = error_envelope(msg, length=shape == "length", newline=shape == "trailing-newline")
    r = post(daemon, body)
    assert r.status == 200, r.body
    [row] = stored(daemon, msg)
    assert (row["project_id"], row["release"], row["environment"], row["protocol"]) == (
        "shop", "shop@9.9.9", "corpus", "sentry")


def test_unknown_and_unstored_items_are_skipped_not_refused(daemon: Daemon) -> None:
    """A transaction, an attachment with binary bytes and an item type nobody knows ride along with an error."""
    attachment = bytes(range(256)) + b"\n\n"
    extra = (b'\n{"type":"transaction"}\n{"type":"transaction","spans":[]}'
             + b'\n{"type":"attachment","length":' + str(len(attachment)).encode() + b'}\n' + attachment
             + b'\n{"type":"from-the-future","length":3}\nabc')
    r = post(daemon, error_envelope("corpus with riders", length=True, extra=extra))
    assert r.status == 200, r.body
    stored(daemon, "corpus with riders")
    metrics = daemon.metrics()
    for kind in ("transaction", "attachment", "other"):
        assert f'obsd_sentry_items_total{{outcome="skipped",type="{kind}"}}' in metrics


@pytest.mark.parametrize("encoding, compress", [
    ("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress),
    ("zstd", lambda b: zstandard.ZstdCompressor().compress(b))])
def test_compressed_envelopes(daemon: Daemon, encoding: str, compress: Any) -> None:
    """gzip, deflate, br and zstd bodies, as Sentry's SDKs and Relay use them."""
    msg = f"corpus {encoding}"
    r = post(daemon, compress(error_envelope(msg)), headers={"Content-Encoding": encoding,
                                                             "Content-Type": "application/x-sentry-envelope"})
    assert r.status == 200, r.body
    stored(daemon, msg)


def test_an_oversized_item_is_413_and_nothing_of_it_is_kept(daemon: Daemon) -> None:
    """An event item over 1 MiB (inside a body within the size caps, thanks to gzip) is refused whole."""
    body = error_envelope("corpus oversized", extra_field="x" * 1_100_000)
    r = post(daemon, gzip.compress(body), headers={"Content-Encoding": "gzip"})
    assert (r.status, r.json()["error"]) == (413, "item_too_large") and "1048576 bytes" in r.json()["reason"]
    assert r.headers["X-Sentry-Error"] == r.json()["reason"]
    assert int(daemon.scalar("SELECT count() FROM obsd.events WHERE error_message = 'corpus oversized'")) == 0


def test_too_large_bodies_are_413(daemon: Daemon) -> None:
    """Over server.max_body_bytes as sent, or over max_decompressed_bytes once inflated."""
    assert post(daemon, b"{}\n" + b"x" * 1_100_000).status == 413
    bomb = gzip.compress(b"{}\n" + b" " * 20_000_000)
    r = post(daemon, bomb, headers={"Content-Encoding": "gzip"})
    assert (r.status, r.json()["error"]) == (413, "decompressed_too_large")


@pytest.mark.parametrize("path, query, headers, status, code", [
    ("/api/42/envelope/", "sentry_key=0000000000000000ffffffffffffffff", {}, 401, "invalid_key"),
    ("/api/43/envelope/", f"sentry_key={KEY}", {}, 403, "wrong_project"),
    ("/api/7/envelope/", f"sentry_key={KEY}", {}, 403, "wrong_project"),
    ("/api/42/envelope/", "sentry_key=plain-write-key-01", {}, 403, "sentry_disabled"),
    ("/api/42/envelope/", "", {}, 401, "missing_auth"),
    ("/api/42/envelope/", f"sentry_key={KEY}", {"X-Sentry-Auth": f"Sentry sentry_key={KEY}"}, 400, "multiple_auth"),
    ("/api/42/envelope/", f"sentry_key={KEY}", {"Content-Type": "image/png"}, 415, "unsupported_media_type"),
    ("/api/42/envelope/", f"sentry_key={KEY}", {"Origin": "https://evil.example"}, 403, "origin_not_allowed"),
])
def test_bad_credentials_and_wrong_projects_are_refused(daemon: Daemon, path: str, query: str,
                                                        headers: dict[str, str], status: int, code: str) -> None:
    """A bad DSN key, a wrong project id, a project without sentry_id, no or double credentials: each named."""
    r = post(daemon, error_envelope("corpus refused"), path=path, query=query, headers=headers)
    assert (r.status, r.json()["error"]) == (status, code), r.body
    assert r.headers["X-Sentry-Error"] and "Access-Control-Allow-Origin" not in r.headers
    assert f'obsd_protocol_requests_refused_total{{protocol="sentry",reason="{code}"}}' in daemon.metrics()


def test_the_envelope_header_dsn_authenticates_and_must_agree(daemon: Daemon) -> None:
    """Tunnels forward envelopes with only a dsn in the header; a dsn naming another project is refused."""
    eid = uuid.uuid4().hex
    item = b'\n{"type":"event"}\n{"message":"corpus via dsn","platform":"javascript"}'
    good = json.dumps({"event_id": eid, "dsn": f"https://{KEY}@obsd.example/42"}).encode() + item
    r = post(daemon, good, query="")
    assert (r.status, r.json()) == (200, {"id": eid})
    stored(daemon, "corpus via dsn")
    wrong = json.dumps({"dsn": f"https://{KEY}@obsd.example/41"}).encode() + item
    assert post(daemon, wrong, query="").json()["error"] == "wrong_project"
    mismatch = json.dumps({"dsn": "https://other_write_key_01@obsd.example/42"}).encode() + item
    assert post(daemon, mismatch).json()["error"] == "auth_mismatch"


def test_malformed_envelopes_and_items_are_400_with_the_reason(daemon: Daemon) -> None:
    """A broken envelope is refused; a broken item is refused and kept in events_rejected, with its reason."""
    r = post(daemon, b'{}\n{"type":"event","length":99}\n{}')
    assert (r.status, r.json()["error"]) == (400, "invalid_envelope")
    r = post(daemon, b'{}\n{"type":"event"}\n{"message": "corpus broken item", ')
    assert (r.status, r.json()["error"]) == (400, "invalid_event")
    # Kept with its reason, but not its content: a Sentry item may hold user fields and IPs anywhere.
    kept = daemon.wait_for("SELECT count() FROM obsd.events_rejected WHERE stage = 'sentry' "
                           "AND position(reason, 'not JSON') > 0 AND position(payload, 'event') > 0", 1)
    assert kept == 1
    assert daemon.rows_containing("corpus broken item") == {}


def test_store_endpoint_takes_one_event(daemon: Daemon) -> None:
    """/store/ with a JSON event (plain, and base64 of zlib as very old SDKs sent it) answers its id."""
    for i, encode in enumerate((lambda b: b, lambda b: base64_zlib(b))):
        eid = uuid.uuid4().hex
        doc = json.dumps({"event_id": eid, "message": f"corpus store {i}", "platform": "javascript"}).encode()
        r = post(daemon, encode(doc), path="/api/42/store/", headers={"Content-Type": "application/json"})
        assert (r.status, r.json()) == (200, {"id": eid}), r.body
        stored(daemon, f"corpus store {i}")


def base64_zlib(b: bytes) -> bytes:
    import base64
    return base64.b64encode(zlib.compress(b))


def test_cors_preflight_exposes_sentry_headers(daemon: Daemon) -> None:
    """Preflight from an allowed origin lists Sentry's headers; another origin gets no CORS at all."""
    r = http("OPTIONS", f"{daemon.base}/api/42/envelope/", headers={"Origin": CAPTURED_ORIGIN,
                                                                    "Access-Control-Request-Method": "POST"})
    assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == CAPTURED_ORIGIN
    assert "X-Sentry-Auth" in r.headers["Access-Control-Allow-Headers"]
    assert r.headers["Access-Control-Expose-Headers"] == "X-Sentry-Rate-Limits, X-Sentry-Error, Retry-After"
    r = http("OPTIONS", f"{daemon.base}/api/42/envelope/", headers={"Origin": "https://evil.example"})
    assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers


def test_privacy_user_and_ip_never_reach_the_store(daemon: Daemon) -> None:
    """user fields, cookies, IPs and non-allowlisted query parameters are not stored anywhere."""
    secret = "sentryleak" + uuid.uuid4().hex[:6]
    body = error_envelope("corpus privacy", user={"id": secret, "email": f"{secret}@x.example",
                                                  "ip_address": "203.0.113.9"},
                          request={"url": f"https://shop.example/p?session={secret}&utm_source=ad",
                                   "cookies": secret, "headers": {"Cookie": secret, "User-Agent": CHROME}})
    assert post(daemon, body, headers={"X-Forwarded-For": "203.0.113.9"}).status == 200
    stored(daemon, "corpus privacy")
    assert daemon.rows_containing(secret) == {}
    assert daemon.rows_containing("203.0.113.9") == {}


def test_rate_limits_answer_429_with_sentry_headers(tmp_path: Path) -> None:
    """The shared per-IP bucket refuses with Retry-After and X-Sentry-Rate-Limits, which SDKs honour."""
    with Daemon(tmp_path, sections={"rate_limit": {"per_ip_rps": 0.5}}, projects=PROJECTS) as d:
        assert d.post(envelope([event()]), key="other_write_key_01").status == 202  # /v1/events takes the one token
        r = post(d, error_envelope("corpus limited"), headers={"Origin": CAPTURED_ORIGIN})
        assert (r.status, r.json()["error"]) == (429, "rate_limited")
        wait = int(r.headers["Retry-After"])
        assert wait >= 1 and r.headers["X-Sentry-Rate-Limits"] == f"{wait}::key:rate_limited"
        assert r.headers["Access-Control-Allow-Origin"] == CAPTURED_ORIGIN


def test_backpressure_answers_429_so_sdks_back_off(tmp_path: Path) -> None:
    """A full spool is a 503 on /v1/events; Sentry SDKs get 429 with Retry-After and X-Sentry-Rate-Limits."""
    fault = tmp_path / "fault"
    fault.write_text("store_down")
    with Daemon(tmp_path, sections={"spool": {"max_spool_bytes": 200_000, "segment_bytes": 50_000},
                                    "pipeline": {"batch_interval_ms": 20}},
                projects=PROJECTS, env={"OBSD_FAULT_FILE": str(fault)}) as d:
        for _ in range(400):
            if d.post(envelope([event() for _ in range(100)]), key="other_write_key_01").status == 503:
                break
        else:
            pytest.fail("the spool never filled")
        r = post(d, error_envelope("corpus backpressure"))
        assert (r.status, r.json()["error"]) == (429, "spool_full")
        wait = int(r.headers["Retry-After"])
        assert wait >= 1 and r.headers["X-Sentry-Rate-Limits"] == f"{wait}::organization:spool_full"
        assert 'obsd_requests_refused_total{reason="spool_full",status="429"} 1.0' in d.metrics()
        fault.unlink()


def test_a_tunnel_keeps_the_browser_not_the_forwarding_server(daemon: Daemon) -> None:
    """Through a Sentry tunnel the request comes from a server library; the rows still describe the browser."""
    tunnel_ua = {"User-Agent": "python-requests/2.31.0", "Content-Type": "application/x-sentry-envelope"}
    session = json.dumps({"sid": uuid.uuid4().hex, "init": True, "status": "ok", "started": time.time(),
                          "attrs": {"release": "tunnel@1", "user_agent": CHROME}}).encode()
    event = json.dumps({"message": "corpus tunnel", "platform": "javascript", "release": "tunnel@1",
                        "request": {"url": "https://shop.example/", "headers": {"User-Agent": CHROME}}}).encode()
    head = json.dumps({"dsn": f"https://{KEY}@obsd.example/42"}).encode()
    for item in (b'{"type":"event"}\n' + event, b'{"type":"session"}\n' + session):
        assert post(daemon, head + b"\n" + item, query="", headers=tunnel_ua).status == 200
    assert daemon.wait_for("SELECT count() FROM obsd.events WHERE release = 'tunnel@1'", 2) == 2
    rows = daemon.query("SELECT type, is_bot, browser FROM obsd.events WHERE release = 'tunnel@1' ORDER BY type")
    assert [(r["type"], r["is_bot"], r["browser"]) for r in rows] == [("error", False, "Chrome"),
                                                                      ("session", False, "Chrome")]


@pytest.mark.parametrize("where", ["envelope header", "item header", "event item", "session item"])
def test_nesting_at_any_depth_is_a_400_not_a_500(daemon: Daemon, where: str) -> None:
    """1,000 levels of arrays in any JSON part of an envelope: a 400 with a reason, and the daemon serves on."""
    deep = b"[" * 1000 + b"]" * 1000
    parts = {"envelope header": [b'{"x": ' + deep + b"}", b'{"type":"event"}', b'{"message": "ok"}'],
             "item header": [b"{}", b'{"type": "event", "x": ' + deep + b"}", b'{"message": "ok"}'],
             "event item": [b"{}", b'{"type":"event"}', b'{"message": "deep", "extra": ' + deep + b"}"],
             "session item": [b"{}", b'{"type":"session"}', b'{"sid": "s", "attrs": ' + deep + b"}"]}[where]
    r = post(daemon, b"\n".join(parts))
    assert r.status == 400, r.body
    assert r.json()["error"] in ("invalid_envelope", "nesting_too_deep"), r.json()
    assert "200" in r.json()["reason"] or "JSON" in r.json()["reason"]
    assert http("GET", daemon.base + "/health").status == 200
