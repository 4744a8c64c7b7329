"""POST /v1/events against a real daemon writing to chDB."""

from __future__ import annotations

import gzip
import json
import uuid

from tests.harness import WRITE_KEY, Daemon, envelope, event, http


def _count(d: Daemon, where: str) -> int:
    return int(d.scalar(f"SELECT count() FROM obsd.events WHERE {where}"))


def test_batch_becomes_rows_with_the_right_values(daemon: Daemon) -> None:
    """Every event type of a batch lands with the values the client sent, URL scrubbed."""
    sid = uuid.uuid4().hex[:16]
    events = [
        event("pageview", title="Home"),
        event("click", selector="main > button.buy", tag="button", href="https://shop.example/cart?x=1"),
        event("scroll", depth=75),
        event("error", message="x is undefined", stack="at f (a.js:1:2)", source="https://shop.example/a.js",
              line=10, col=5),
        event("web_vital", name="LCP", value=1834.2, rating="good"),
        event("custom", name="purchase", props={"amount": 99.99, "sku": "A1"}),
    ]
    r = daemon.post(envelope(events, session_id=sid,
                             url="https://shop.example/p/1?utm_source=news&secret=1#frag"))
    assert r.status == 202, r.body
    assert r.json() == {"accepted": 6, "rejected": []}
    assert daemon.wait_for(f"SELECT count() FROM obsd.events WHERE session_id = '{sid}'", 6) == 6
    rows = {row["type"]: row for row in daemon.query(
        "SELECT type, name, url, path, hostname, utm_source, value, rating, selector, tag, href, error_message, "
        "error_stack, error_line, error_col, props, project_id, toUnixTimestamp64Milli(ts) AS ts_ms, "
        f"language, screen_width, viewport_height, sdk FROM obsd.events WHERE session_id = '{sid}'")}
    assert set(rows) == {"pageview", "click", "scroll", "error", "web_vital", "custom"}
    pv = rows["pageview"]
    assert pv["url"] == "https://shop.example/p/1?utm_source=news"
    assert (pv["path"], pv["hostname"], pv["utm_source"]) == ("/p/1", "shop.example", "news")
    assert pv["project_id"] == "demo" and pv["ts_ms"] == events[0]["ts"]
    assert (pv["language"], pv["screen_width"], pv["viewport_height"], pv["sdk"]) == ("en-US", 1920, 720,
                                                                                       "obsd-js/0.1.0")
    assert (rows["click"]["selector"], rows["click"]["tag"]) == ("main > button.buy", "button")
    assert rows["click"]["href"] == "https://shop.example/cart"
    assert rows["scroll"]["value"] == 75
    err = rows["error"]
    assert (err["error_message"], err["error_line"], err["error_col"]) == ("x is undefined", 10, 5)
    assert "a.js:1:2" in err["error_stack"]
    assert (rows["web_vital"]["name"], rows["web_vital"]["value"], rows["web_vital"]["rating"]) == (
        "LCP", 1834.2, "good")
    assert rows["custom"]["name"] == "purchase"
    assert json.loads(rows["custom"]["props"]) == {"amount": 99.99, "sku": "A1"}


def test_release_and_all_five_utm_parameters_are_stored(daemon: Daemon) -> None:
    """The envelope's release and every utm_* parameter of the page URL land in their columns."""
    url = ("https://shop.example/p/9?utm_source=news&utm_medium=email&utm_campaign=spring&utm_content=hero"
           "&utm_term=red+shoes")
    r = daemon.post(envelope([event()], session_id="utm-release", url=url, release="shop@2.4.1"))
    assert r.status == 202
    daemon.wait_for("SELECT count() FROM obsd.events WHERE session_id = 'utm-release'", 1)
    row = daemon.query("SELECT release, protocol, utm_source, utm_medium, utm_campaign, utm_content, utm_term "
                       "FROM obsd.events WHERE session_id = 'utm-release'")[0]
    assert row == {"release": "shop@2.4.1", "protocol": "obsd", "utm_source": "news", "utm_medium": "email",
                   "utm_campaign": "spring", "utm_content": "hero", "utm_term": "red shoes"}


def test_gzip_bodies_by_header_and_by_query_flag(daemon: Daemon) -> None:
    """Gzip is read from Content-Encoding and from ?gzip=1 (the beacon path cannot set headers)."""
    sid = uuid.uuid4().hex[:16]
    assert daemon.post(envelope([event()], session_id=sid), gzip_body=True).status == 202
    body = gzip.compress(json.dumps(envelope([event()], session_id=sid)).encode())
    r = http("POST", f"{daemon.base}/v1/events?key={WRITE_KEY}&gzip=1", body, {"Content-Type": "text/plain"})
    assert r.status == 202 and r.json()["accepted"] == 1
    assert daemon.wait_for(f"SELECT count() FROM obsd.events WHERE session_id = '{sid}'", 2) == 2


def test_mixed_batch_keeps_valid_events_and_names_each_reject(daemon: Daemon) -> None:
    """Valid events of a mixed batch land; each bad one is reported by index with a reason and kept aside."""
    sid = uuid.uuid4().hex[:16]
    good = [event(), event("custom")]
    batch = [good[0], {"id": "not-a-uuid", "type": "pageview", "ts": good[0]["ts"]},
             {"id": str(uuid.uuid4()), "type": "teleport", "ts": good[0]["ts"]},
             {"id": str(uuid.uuid4()), "type": "pageview", "ts": "noon"}, good[1]]
    r = daemon.post(envelope(batch, session_id=sid))
    assert r.status == 202
    body = r.json()
    assert body["accepted"] == 2
    assert [x["index"] for x in body["rejected"]] == [1, 2, 3]
    reasons = [x["reason"] for x in body["rejected"]]
    assert "UUID" in reasons[0] and "teleport" in reasons[1] and "ts" in reasons[2]
    assert daemon.wait_for(f"SELECT count() FROM obsd.events WHERE session_id = '{sid}'", 2) == 2
    ids = {row["id"] for row in daemon.query(
        f"SELECT toString(event_id) AS id FROM obsd.events WHERE session_id = '{sid}'")}
    assert ids == {good[0]["id"], good[1]["id"]}
    assert daemon.wait_for("SELECT countIf(payload LIKE '%teleport%') FROM obsd.events_rejected", 1) == 1


def test_error_statuses_share_one_json_shape(daemon: Daemon) -> None:
    """Each refused request gets its status, a code and a reason a human can act on."""
    big = json.dumps(envelope([event(title="x" * 2_000_000)])).encode()
    cases = [
        (daemon.post(None, raw=b"{not json"), 400, "invalid_json"),
        (daemon.post({"events": "nope"}), 400, "invalid_envelope"),
        (daemon.post(envelope([])), 400, "empty_batch"),
        (daemon.post(envelope([event()]), key=""), 401, "missing_key"),
        (daemon.post(envelope([event()]), key="wrong-key-123"), 401, "invalid_key"),
        (daemon.post(None, raw=big), 413, "body_too_large"),
        (daemon.post(envelope([event()]), headers={"Content-Type": "application/xml"}), 415,
         "unsupported_media_type"),
        (daemon.post(envelope([event()] * 501)), 413, "too_many_events"),
        (daemon.post(envelope([event()]), headers={"Origin": "https://evil.example"}), 403, "origin_not_allowed"),
        (http("GET", daemon.base + "/nope"), 404, "not_found"),
        (http("GET", daemon.base + "/v1/events"), 405, "method_not_allowed"),
    ]
    for resp, status, code in cases:
        assert resp.status == status, (code, resp.body)
        body = resp.json()
        assert set(body) == {"status", "error", "reason"}, body
        assert (body["status"], body["error"]) == (status, code)
        assert len(body["reason"]) > 10
    metrics = daemon.metrics()
    assert 'obsd_requests_refused_total{reason="invalid_key",status="401"}' in metrics


def test_gzip_bomb_stops_at_the_decompressed_cap(daemon: Daemon) -> None:
    """A small gzip body that inflates past the cap is refused with 413, and the daemon keeps serving."""
    bomb = gzip.compress(b'{"events": [' + b" " * 50_000_000 + b"]}")
    assert len(bomb) < 1_000_000
    r = daemon.post(None, raw=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status == 413 and r.json()["error"] == "decompressed_too_large"
    assert daemon.post(envelope([event()])).status == 202


def test_cors_preflight_and_allowed_origin(daemon: Daemon) -> None:
    """Allowed origins get a preflight answer and an echoed origin with Vary; others get 403."""
    origin = daemon.base
    r = http("OPTIONS", f"{daemon.base}/v1/events?key={WRITE_KEY}",
             headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    r = daemon.post(envelope([event()]), headers={"Origin": origin})
    assert r.status == 202
    assert r.headers["Access-Control-Allow-Origin"] == origin and r.headers["Vary"] == "Origin"
    r = http("OPTIONS", f"{daemon.base}/v1/events", headers={"Origin": "https://evil.example"})
    assert r.status == 403


def test_health_and_ready(daemon: Daemon) -> None:
    """/health says the process is alive; /ready says the store, migrations and buffer are fine."""
    h = http("GET", daemon.base + "/health").json()
    assert h["status"] == "ok"
    r = http("GET", daemon.base + "/ready")
    assert r.status == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["store"] == "ok" and body["checks"]["migrations"] == "current"


def test_admin_query_needs_the_token(daemon: Daemon) -> None:
    """The admin API refuses requests without the admin token and refuses writes."""
    r = http("POST", daemon.base + "/v1/admin/query", b'{"sql": "SELECT 1"}')
    assert r.status == 401 and r.json()["error"] == "admin_unauthorized"
    r = http("POST", daemon.base + "/v1/admin/query", b'{"sql": "DROP TABLE obsd.events"}',
             {"Authorization": "Bearer test-admin-token"})
    assert r.status == 400
    r = http("POST", daemon.base + "/v1/admin/query",
             b'{"sql": "SELECT 1 SETTINGS readonly=0"}', {"Authorization": "Bearer test-admin-token"})
    assert r.status == 400
    assert daemon.scalar("SELECT count() FROM system.tables WHERE database = 'obsd' AND name = 'events'") == 1
