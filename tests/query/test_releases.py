"""Release health (Sentry sessions) and the errors report by release and environment, over real rollups."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from obsd.query.params import ReportError, parse_params
from obsd.query.reports import Reports
from obsd.store.client import Store
from obsd.store.migrations import Migrator

NOW = datetime(2025, 3, 10, 12, 34, 56, tzinfo=UTC)
T = NOW.timestamp() - 3600
STACK = "TypeError: x is undefined\n    at render (https://shop.example/app.js:1:2)"


def _row(type_: str, **fields: Any) -> dict[str, Any]:
    return {"project_id": "demo", "event_id": str(uuid.uuid4()), "type": type_, "ts": T, "received_at": T, **fields}


def session(sid: str, status: str, *, init: bool = False, errors: int = 0, release: str = "shop@1.0",
            environment: str = "production", **extra: Any) -> dict[str, Any]:
    """A session-update row as the Sentry adapter writes it."""
    return _row("session", name=status, session_id=sid, value=errors, release=release, environment=environment,
                props=json.dumps({"init": True}) if init else "", protocol="sentry", **extra)


def aggregate(status: str, n: int, release: str = "shop@1.0") -> dict[str, Any]:
    """A pre-aggregated sessions row (server SDKs): no session id, the count as value."""
    return _row("session", name=status, value=n, release=release, environment="production", protocol="sentry")


def error(message: str, release: str, environment: str = "production", protocol: str = "sentry") -> dict[str, Any]:
    """An error row of one bug."""
    return _row("error", error_message=message, error_stack=STACK, release=release, environment=environment,
                protocol=protocol, session_id="s-" + uuid.uuid4().hex[:8])


ROWS = [
    # shop@1.0 production: A had an uncaught error (sent twice), B exited cleanly, C crashed, D handled an error.
    session("a" * 32, "ok", init=True), session("a" * 32, "unhandled", errors=1),
    session("a" * 32, "unhandled", errors=1),
    session("b" * 32, "ok", init=True), session("b" * 32, "exited"),
    session("c" * 32, "crashed", init=True, errors=1),
    session("d" * 32, "ok", init=True, errors=1),
    # a server SDK's pre-aggregated buckets for the same release
    aggregate("exited", 10), aggregate("errored", 2), aggregate("crashed", 1),
    # a bot's session is left out, like bots everywhere in the rollups
    session("e" * 32, "crashed", init=True, is_bot=True),
    # shop@2.0 in staging: one clean session
    session("f" * 32, "ok", init=True, release="shop@2.0", environment="staging"),
    # errors: one bug seen by Sentry in 1.0 and by obsd's SDK in 2.0; another only in 2.0 staging
    error("x is undefined", "shop@1.0"), error("x is undefined", "shop@1.0"),
    error("x is undefined", "shop@2.0", "staging", protocol="obsd"),
    error("y is undefined", "shop@2.0", "staging"),
]


@pytest.fixture(scope="module")
def dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One chDB data directory for the module (chDB runs one engine per process); tests use own databases."""
    return f"chdb://{tmp_path_factory.mktemp('releases')}/ch"


@pytest.fixture(scope="module")
def reports(dsn: str) -> Iterator[Reports]:
    s = Store(dsn, "obsd")
    Migrator(s).up()
    s.insert_ndjson("events", b"".join(json.dumps(r).encode() + b"\n" for r in ROWS))
    yield Reports(s, "obsd")
    s.close()


def _run(reports: Reports, name: str, **raw: str) -> dict[str, Any]:
    return reports.run(name, parse_params({"project": "demo", "since": "1d", **raw}, now=NOW)).to_json()


def test_sessions_are_counted_per_release_the_way_sentry_counts_them(reports: Reports) -> None:
    """Started from init updates plus buckets; errored, unhandled and crashed once per session; bots left out."""
    doc = _run(reports, "releases")
    one = next(r for r in doc["rows"] if r["release"] == "shop@1.0")
    # 4 browser sessions + 13 pre-aggregated; errored: A, C, D + 3 from buckets (errored 2, crashed 1)
    assert (one["sessions"], one["errored"], one["unhandled"], one["crashed"], one["abnormal"]) == (17, 6, 1, 2, 0)
    assert one["crash_free"] == round(15 / 17, 4) and one["unhandled_free"] == round(14 / 17, 4)
    assert (one["errors"], one["error_groups"]) == (2, 1)
    two = next(r for r in doc["rows"] if r["release"] == "shop@2.0")
    assert (two["environment"], two["sessions"], two["crash_free"], two["errors"], two["error_groups"]) == (
        "staging", 1, 1.0, 2, 2)
    assert doc["summary"] == {"sessions": 18, "crashed": 2, "unhandled": 1, "releases": 2, "errors": 4}


def test_release_and_environment_filter_both_reports(reports: Reports) -> None:
    """release= and environment= narrow the releases report and the error groups alike."""
    assert [r["release"] for r in _run(reports, "releases", release="shop@2.0")["rows"]] == ["shop@2.0"]
    assert _run(reports, "releases", environment="nowhere")["rows"] == []
    everything = _run(reports, "errors")
    assert everything["summary"] == {"errors": 4, "groups": 2}
    staging = _run(reports, "errors", environment="staging")
    assert staging["summary"] == {"errors": 2, "groups": 2}
    old = _run(reports, "errors", release="shop@1.0")
    assert old["summary"] == {"errors": 2, "groups": 1}
    assert old["rows"][0]["releases"] == ["shop@1.0"] and old["rows"][0]["protocols"] == ["sentry"]


def test_error_groups_show_the_protocols_and_releases_they_came_with(reports: Reports) -> None:
    """One bug reported by Sentry in one release and by obsd's SDK in the next is one group listing both."""
    rows = _run(reports, "errors")["rows"]
    x = next(r for r in rows if r["message"] == "x is undefined")
    assert (x["events"], x["protocols"], x["releases"]) == (3, ["obsd", "sentry"], ["shop@1.0", "shop@2.0"])


def test_release_filters_are_validated() -> None:
    """A filter longer than the column keeps, or with control characters, is refused with the reason."""
    with pytest.raises(ReportError, match="release must be at most 128"):
        parse_params({"project": "demo", "release": "x" * 129})
    with pytest.raises(ReportError, match="environment"):
        parse_params({"project": "demo", "environment": "a\nb"})


def test_errors_stored_before_0007_keep_their_group(dsn: str, reports: Reports) -> None:
    """A store at 0005 with error groups takes 0007: the groups stay (as obsd's), new errors carry their release."""
    s = Store(dsn, "upgrade_" + uuid.uuid4().hex[:8])
    try:
        m = Migrator(s)
        m.up(to=5)
        s.insert_ndjson("events", json.dumps(error("x is undefined", "", protocol="obsd")).encode() + b"\n")
        m.up()
        s.insert_ndjson("events", json.dumps(error("x is undefined", "shop@3.0")).encode() + b"\n")
        r = Reports(s, s.database)
        doc = r.run("errors", parse_params({"project": "demo", "since": "1d"}, now=NOW)).to_json()
        assert doc["summary"] == {"errors": 2, "groups": 1}
        assert doc["rows"][0]["protocols"] == ["obsd", "sentry"] and doc["rows"][0]["releases"] == ["shop@3.0"]
        filtered = r.run("errors", parse_params({"project": "demo", "since": "1d", "release": "shop@3.0"}, now=NOW))
        assert filtered.summary == {"errors": 1, "groups": 1}
    finally:
        s.command(f"DROP DATABASE {s.database} SYNC")
        s.close()
