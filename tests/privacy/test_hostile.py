"""The hostile corpus, grown with every edge of issue 12, against one real daemon: each answer has its status
and the one JSON error shape, the daemon keeps serving, and afterwards no table holds an email, a card
number, a token or a client IP."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obsd.ingest.wire import MAX_NESTING
from tests.harness import ADMIN_TOKEN, WRITE_KEY, Daemon, Response, envelope, event, http
from tests.strategies import EMAIL_RE, JWT_RE, card_numbers, deeply_nested_bodies, emails, jwts, text_with_pii

EMAIL = "victim.person@example.org"
CARD = "4012 8888 8888 1881"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ2aWN0aW0ifQ.dGhlc2lnbmF0dXJl"
BEARER = "Bearer s3cr3t-t0ken-value"
PII_TEXT = f"mail {EMAIL} card {CARD} jwt {JWT} auth {BEARER}"
NEEDLES: set[str] = {EMAIL, CARD, CARD.replace(" ", ""), JWT, "s3cr3t-t0ken-value"}
CLIENT_IPS: list[str] = []


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon behind a trusted proxy (so each request can play a distinct client IP), rate limits on."""
    d = Daemon(tmp_path_factory.mktemp("hostile"), sections={
        "pipeline": {"batch_interval_ms": 50}, "server": {"trusted_proxies": ["127.0.0.1"]},
        "rate_limit": {"per_project_rps": 2000.0, "per_project_burst": 4000.0, "per_ip_rps": 50.0,
                       "per_ip_burst": 200.0}})
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _client() -> dict[str, str]:
    ip = f"203.0.113.{len(CLIENT_IPS) % 250 + 1}" if len(CLIENT_IPS) < 250 else f"2001:db8::{len(CLIENT_IPS):x}"
    CLIENT_IPS.append(ip)
    return {"X-Forwarded-For": ip}


def _check(r: Response, status: int, code: str | None = None) -> None:
    assert r.status == status, (status, r.status, r.body[:300])
    if status >= 400:
        body = r.json()
        assert set(body) == {"status", "error", "reason"} and body["status"] == status and body["reason"], body
        if code:
            assert body["error"] == code, body


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=deeply_nested_bodies(max_depth=3000))
def test_nesting_at_any_depth_and_position_is_a_400_or_a_202_never_a_500(hostile: Daemon,
                                                                         case: tuple[bytes, int, str]) -> None:
    """Hypothesis picks depth and position; the daemon answers 400 nesting_too_deep or 202, never 500."""
    body, depth, position = case
    r = hostile.post(None, raw=body, headers=_client())
    total = depth + {"events": 2, "props": 4, "context": 2, "unknown_key": 1, "event_field": 3}[position]
    if total > MAX_NESTING + 1:
        _check(r, 400, "nesting_too_deep")
    elif r.status == 400 and r.json()["error"] == "nesting_too_deep":
        assert total > MAX_NESTING  # only at the very limit
    elif position == "context":
        _check(r, 400, "invalid_envelope")  # a title must be a string
    else:
        _check(r, 202)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pii=st.lists(text_with_pii(), min_size=4, max_size=4), mail=emails(), card=card_numbers(), jwt=jwts(),
       bad_id=st.booleans())
def test_pii_anywhere_in_good_or_bad_events_is_scrubbed(hostile: Daemon, pii: list[str], mail: str, card: str,
                                                        jwt: str, bad_id: bool) -> None:
    """Generated PII in URL, title, props and error text of accepted and refused events alike."""
    NEEDLES.update({mail, mail.replace("%40", "@"), jwt})
    if len(card.replace(" ", "").replace("-", "")) >= 15:
        NEEDLES.add(card)
    text = f"{pii[0]} {mail} {card} {jwt}"
    url = f"https://shop.example/u/{mail}/?q={mail}&utm_source={mail}"
    e = event("error", url=url, title=pii[1], message=text, stack=pii[2],
              props={"note": pii[3], mail: text}) if not bad_id else \
        event("custom", id="not-a-uuid", url=url, title=text, props={"x": pii[3], "y": [text, {mail: card}]})
    r = hostile.post(envelope([e, event()], url=url), headers=_client())
    _check(r, 202)
    assert r.json()["accepted"] == (1 if bad_id else 2)


def test_the_corpus_of_every_edge(hostile: Daemon, tmp_path: Path) -> None:
    """Each edge of issue 12 once more, end to end: answers with the one shape, and the daemon serves on."""
    d = hostile
    deep = b"[" * 1000 + b"]" * 1000
    for body in (b'{"events":' + deep + b"}", b'{"context":{"title":' + deep + b'},"events":[]}',
                 b'{"x":' + deep + b',"events":[]}',
                 b'{"events":[{"id":"0b7e6c1e-8d2a-4c1e-9f3b-2a6d5c4b3a21","type":"custom","ts":1,"props":{"a":'
                 + deep + b"}}]}"):
        _check(d.post(None, raw=body, headers=_client()), 400, "nesting_too_deep")
    _check(d.post(None, raw=b'{"events": [], "ev\\u0065nts": []}', headers=_client()), 400, "duplicate_key")
    # A refused event whose URL, title and props carry PII, next to a valid one.
    bad = event("custom", id="nope", url=f"https://shop.example/{EMAIL}?token={JWT}", title=PII_TEXT,
                props={"email": EMAIL, "card": CARD, "auth": BEARER})
    r = d.post(envelope([event(title=PII_TEXT, url=f"https://shop.example/?e={EMAIL}"), bad]), headers=_client())
    _check(r, 202)
    assert r.json()["accepted"] == 1
    # Gzip: several members are one body; a bomb stops at the cap.
    raw = json.dumps(envelope([event(), event()])).encode()
    r = d.post(None, raw=gzip.compress(raw[:40]) + gzip.compress(raw[40:]),
               headers={"Content-Encoding": "gzip", **_client()})
    _check(r, 202)
    _check(d.post(None, raw=gzip.compress(b" " * 20_000_000), headers={"Content-Encoding": "gzip", **_client()}),
           413, "decompressed_too_large")
    # The admin import: whole lines with client context and PII, good and bad.
    ip = _client()["X-Forwarded-For"]
    lines = [json.dumps({**envelope([event(title=PII_TEXT), {**event(), "id": "bad"}]),
                         "client": {"ip": ip, "user_agent": "Mozilla/5.0 Hostile"}}),
             '{"client": {"ip": "' + ip + '"}, "title": "' + EMAIL + '"',
             json.dumps({"events": "nope", "context": {"title": PII_TEXT}, "client": {"ip": ip}})]
    r = http("POST", d.base + "/v1/admin/import?project=demo", "\n".join(lines).encode(),
             {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    _check(r, 202)
    # CORS: an error for a foreign page carries no Allow-Origin.
    r = d.post(envelope([event()]), key="wrong-key-wrong-key", headers={"Origin": "https://evil.example"})
    _check(r, 401, "invalid_key")
    assert "Access-Control-Allow-Origin" not in r.headers
    # Queries: escapes refused, runaway bounded, row cap kept, relayed clients remote.
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for sql in (f"SELECT 1 INTO OUTFILE '{tmp_path}/x'", "SELECT file('/etc/hostname')", "SELECT 1; SELECT 2",
                "SELECT * FROM (SELECT 1 SETTINGS max_memory_usage = 0)", "DROP TABLE obsd.events"):
        _check(http("POST", d.base + "/v1/admin/query", json.dumps({"sql": sql}).encode(), admin), 400,
               "query_refused")
    assert list(tmp_path.iterdir()) == []
    _check(http("POST", d.base + "/v1/admin/query", json.dumps({"sql": "SELECT 1", "max_rows": -1}).encode(),
                admin), 400, "invalid_query_request")
    _check(http("GET", d.base + "/v1/admin/status", headers={**admin, "X-Forwarded-For": "198.51.100.1"}), 403,
           "admin_remote")
    _check(http("GET", d.base + "/metrics", headers={"X-Real-IP": "198.51.100.1"}), 403, "metrics_remote")
    # Still serving.
    sid = uuid.uuid4().hex[:16]
    _check(d.post(envelope([event()], session_id=sid), headers=_client()), 202)
    assert d.wait_for(f"SELECT count() FROM obsd.events WHERE session_id = '{sid}'", 1) == 1


def test_zz_no_table_holds_an_email_a_card_a_token_or_a_client_ip(hostile: Daemon) -> None:
    """After the corpus (this test runs last in the module): a scan of every table in the database."""
    d = hostile
    assert d.wait_for("SELECT count() > 0 FROM obsd.events_rejected", 1) == 1
    tables = [r["name"] for r in d.query("SELECT name FROM system.tables WHERE database = 'obsd' "
                                         "AND engine LIKE '%MergeTree'")]
    assert {"events", "events_rejected"} <= set(tables)
    # Regexes over every row of every table (the test's rows fit in the query API's row cap).
    for t in tables:
        rows = [r["r"] for r in d.query(f"SELECT toString(tuple(*)) AS r FROM obsd.{t}")]
        for row in rows:
            assert not EMAIL_RE.search(row), (t, row[:300])
            assert not JWT_RE.search(row), (t, row[:300])
            assert "s3cr3t-t0ken-value" not in row, (t, row[:300])
    # Exact needles, through the harness's scan of every table: cards and client IPs.
    for needle in sorted(NEEDLES | set(CLIENT_IPS)):
        assert d.rows_containing(needle) == {}, needle
    assert d.rows_containing("[email]").get("events_rejected", 0) > 0  # the scan does see those rows
    assert WRITE_KEY not in json.dumps(d.rows_containing(WRITE_KEY))
