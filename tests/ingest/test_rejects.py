"""Dead letters keep why an event was refused, never the personal data in it: unit properties and a real
daemon (the /v1/events path, the admin import, retention and purge)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from obsd.ingest.rejects import MAX_DEAD_STRING, rejected_letter, scrubbed_payload
from obsd.privacy.scrub import UrlScrubber
from tests.harness import ADMIN_TOKEN, Daemon, envelope, event, http
from tests.strategies import contains_pii, json_like, text_with_pii

URLS = UrlScrubber(("utm_*",))
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"
CLIENT_IP = "203.0.113.99"


@settings(max_examples=200, deadline=None)
@given(json_like(text_with_pii(), text_with_pii()))
def test_a_scrubbed_payload_holds_no_pii_whatever_its_shape(value: object) -> None:
    """Any JSON value with PII in keys and strings at any depth comes out without it."""
    text, _ = scrubbed_payload(json.dumps(value).encode(), URLS)
    assert not contains_pii(text), text


@given(st.sampled_from(["url", "referrer", "href", "source"]))
def test_url_fields_keep_only_allowlisted_parameters(field: str) -> None:
    """URL fields of a refused event are reduced like accepted ones: no fragment, no foreign parameters."""
    raw = json.dumps({field: f"https://shop.example/u/{EMAIL}?token=s3cret&utm_source=news#access_token=x"})
    text, _ = scrubbed_payload(raw.encode(), URLS)
    assert json.loads(text)[field] == "https://shop.example/u/[email]?utm_source=news"


def test_strings_are_capped_and_the_client_context_is_dropped() -> None:
    """Long strings are cut after scrubbing; an import line's client (IP, user agent) is never kept."""
    line = {"session_id": "sess-1", "client": {"ip": CLIENT_IP, "user_agent": "Mozilla/5.0 X"},
            "events": [{"title": "x " * 25_000 + EMAIL}]}
    letter = rejected_letter(1.0, "demo", "import", "bad", json.dumps(line).encode(), URLS)
    kept = json.loads(letter.payload)
    assert "client" not in kept and CLIENT_IP not in letter.payload and "Mozilla" not in letter.payload
    assert len(kept["events"][0]["title"]) == MAX_DEAD_STRING + 1 and letter.session_id == "sess-1"
    junk = rejected_letter(1.0, "demo", "import", "bad", b'{"client": {"ip": "' + CLIENT_IP.encode() + b'"', URLS)
    assert CLIENT_IP not in junk.payload and "not valid JSON" in junk.payload


def _import(d: Daemon, body: bytes) -> dict[str, object]:
    r = http("POST", f"{d.base}/v1/admin/import?project=demo", body,
             {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/x-ndjson"})
    assert r.status == 202, r.body
    out: dict[str, object] = r.json()
    return out


def test_dead_letters_in_a_real_daemon_hold_no_pii_and_purge_reaches_them(tmp_path: Path) -> None:
    """The accepted event is scrubbed, the refused one too; no IP lands; TTL 30 days; purge --session erases."""
    with Daemon(tmp_path, sections={"pipeline": {"batch_interval_ms": 50},
                                    "server": {"trusted_proxies": ["127.0.0.1"]}}) as d:
        sid = uuid.uuid4().hex[:16]
        pii_url = f"https://shop.example/account/{EMAIL}?email={EMAIL}&utm_source=news"
        bad = event("custom", id="not-a-uuid", url=pii_url, title=f"Orders of {EMAIL} {CARD}",
                    props={"email": EMAIL, "card": CARD, "auth": f"Bearer {JWT}", EMAIL: "key"})
        r = d.post(envelope([event(url=pii_url, title=f"Hi {EMAIL}"), bad], session_id=sid),
                   headers={"X-Forwarded-For": CLIENT_IP})
        assert r.status == 202 and r.json()["accepted"] == 1 and r.json()["rejected"][0]["index"] == 1
        lines = [
            json.dumps({**envelope([{**event(), "id": "nope", "title": EMAIL}], session_id=sid),
                        "client": {"ip": CLIENT_IP, "user_agent": "Mozilla/5.0 SecretAgent"}}),
            '{"session_id": "' + sid + '", "client": {"ip": "' + CLIENT_IP + '"}, "events": [',  # not JSON
            json.dumps({**envelope([event()], session_id=sid), "context": {"url": pii_url, "screen": "big"},
                        "client": {"ip": CLIENT_IP}}),  # a wrong envelope: refused whole
        ]
        assert _import(d, "\n".join(lines).encode())["rejected"] == 3
        assert d.wait_for(f"SELECT count() FROM obsd.events_rejected WHERE session_id = '{sid}'", 3) == 3
        assert d.wait_for("SELECT count() FROM obsd.events_rejected", 4) == 4
        assert d.wait_for(f"SELECT count() FROM obsd.events WHERE session_id = '{sid}'", 1) == 1
        rows = d.query("SELECT stage, reason, payload FROM obsd.events_rejected ORDER BY stage")
        assert any("UUID" in r["reason"] for r in rows)
        assert any(r["payload"].startswith("(not kept") for r in rows)
        for needle in (EMAIL, "jane.doe%40example.com", CARD, "4111111111111111", JWT, CLIENT_IP, "SecretAgent",
                       "email=" + EMAIL):
            assert d.rows_containing(needle) == {}, needle
        assert d.rows_containing("[email]").get("events_rejected", 0) >= 2  # the scan finds what is there
        ddl = d.scalar("SELECT create_table_query FROM system.tables WHERE database='obsd' AND name='events_rejected'")
        assert "toIntervalDay(30)" in ddl
        r = http("POST", f"{d.base}/v1/admin/purge", json.dumps({"project": "demo", "session": sid}).encode(),
                 {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status == 200 and r.json()["deleted"]["events_rejected"] == 3
        assert d.scalar("SELECT count() FROM obsd.events_rejected") == 1


def test_rejected_retention_never_outlives_the_events(tmp_path: Path) -> None:
    """rejected_retention_days is capped by retention_days; 0 and 0 keep dead letters forever."""
    with Daemon(tmp_path / "a", sections={"clickhouse": {"retention_days": 7, "rejected_retention_days": 90}}) as d:
        ddl = d.scalar("SELECT create_table_query FROM system.tables WHERE database='obsd' AND name='events_rejected'")
        assert "toIntervalDay(7)" in ddl
    with Daemon(tmp_path / "b", sections={"clickhouse": {"rejected_retention_days": 0}}) as d:
        ddl = d.scalar("SELECT create_table_query FROM system.tables WHERE database='obsd' AND name='events_rejected'")
        assert "TTL" not in ddl
