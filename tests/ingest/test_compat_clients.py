"""The real clients against a real `obsd serve`: Plausible's tracker and Sentry's browser SDK in headless
Chromium (bundled unmodified from sdk/node_modules), and Python's sentry-sdk; then ClickHouse is checked.

The browser part runs tests/ingest/compat/drive.mjs once per module (about 10 s), the Python part
tests/ingest/compat/backend.py; each test below checks one promise of the compatibility layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import ADMIN_TOKEN, ROOT, Daemon, free_port, http
from tests.needs import CHROMIUM, missing_browser, missing_node, need

HERE = ROOT / "tests" / "ingest" / "compat"
KEY = "compat_write_key"  # also a Sentry DSN's public key: letters, digits and _
SENTRY_ID = 42
CLIENTS = ("@plausible-analytics/tracker", "@sentry/browser", "esbuild")


class Run:
    """The daemon and what the clients reported."""

    def __init__(self, daemon: Daemon, browser: dict[str, Any], backend: dict[str, Any]) -> None:
        self.daemon = daemon
        self.browser = browser
        self.backend = backend

    def rows(self, where: str, columns: str = "*") -> list[dict[str, Any]]:
        return self.daemon.query(f"SELECT {columns} FROM obsd.events WHERE {where} ORDER BY ts, received_at")

    def report(self, name: str, **params: str) -> dict[str, Any]:
        query = "&".join(f"{k}={v}" for k, v in {"project": "shop", **params}.items())
        r = http("GET", f"{self.daemon.base}/v1/stats/{name}?{query}",
                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status == 200, r.body
        return dict(r.json())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Start obsd, let the browser clients and the Python SDK send, wait until it has all landed."""
    need(missing_browser() or missing_node(*CLIENTS))
    page_port = free_port()
    d = Daemon(tmp_path_factory.mktemp("compat"), sections={"pipeline": {"batch_interval_ms": 50}},
               projects=[{"id": "shop", "write_key": KEY, "allowed_origins": [f"http://shop.test:{page_port}"],
                          "domains": ["shop.test"], "sentry_id": SENTRY_ID}])
    d.start()
    try:
        drive = subprocess.run(["node", str(HERE / "drive.mjs"), "--obsd", d.base, "--key", KEY, "--sentry-id",
                                str(SENTRY_ID), "--page-port", str(page_port)], capture_output=True, text=True,
                               timeout=150, env={**os.environ, "CHROMIUM": CHROMIUM, "SDK_DIR": str(ROOT / "sdk")})
        assert drive.returncode == 0, f"the browser driver failed:\n{drive.stderr}\n{drive.stdout}"
        dsn = f"http://{KEY}@127.0.0.1:{d.port}/{SENTRY_ID}"
        backend = subprocess.run([sys.executable, str(HERE / "backend.py"), dsn], capture_output=True, text=True,
                                 timeout=60)
        assert backend.returncode == 0, backend.stderr
        r = Run(d, json.loads(drive.stdout), json.loads(backend.stdout))
        # Everything has landed when the last of each client's events is in the store and in the rollups
        # the reports read (a view's rows become visible just after its insert's events rows).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            [counts] = d.query(
                "SELECT countIf(protocol = 'plausible' AND type = 'scroll') AS leave, "
                "countIf(error_message = 'checkout slow') AS msg, "
                "countIf(error_message = 'payment retry exhausted') AS py, countIf(type = 'error') AS errors, "
                "(SELECT sum(events) FROM obsd.errors_hourly) AS grouped, "
                "(SELECT uniqExact(release) FROM obsd.release_sessions_hourly) AS releases FROM obsd.events")
            if (counts["leave"] >= 2 and counts["msg"] and counts["py"] and counts["grouped"] == counts["errors"]
                    and counts["releases"] == 2):
                break
            time.sleep(0.2)
        yield r
    finally:
        d.stop()


def test_tracker_pageviews_spa_navigation_and_referrer(run: Run) -> None:
    """The tracker's landing pageview (UTM, referrer) and its SPA navigation are pageview rows of one visit."""
    assert run.browser["plausible"]["webdriver"] is False  # the tracker would ignore an automated browser
    pv = run.rows("protocol = 'plausible' AND type = 'pageview'", "path, url, referrer_host, utm_source, "
                  "utm_campaign, session_id, hostname, is_bot, sdk, browser")
    assert [p["path"] for p in pv] == ["/app/home", "/app/pricing"]
    home = pv[0]
    assert (home["referrer_host"], home["utm_source"], home["utm_campaign"]) == ("www.google.com", "newsletter",
                                                                                   "spring")
    assert "secret" not in home["url"]  # only allowlisted query parameters are kept
    assert (home["hostname"], home["is_bot"], home["sdk"], home["browser"]) == (
        f"shop.test:{run.browser['site'].rsplit(':', 1)[1]}", False, "plausible-tracker/36", "Chrome")
    sessions = {r["session_id"] for r in run.rows("protocol = 'plausible'", "session_id")}
    assert len(sessions) == 1 and len(sessions.pop()) == 16


def test_tracker_custom_event_props_and_revenue(run: Run) -> None:
    """track('Purchase', {props, revenue}) is a custom event with its props, amount and currency; 202 to the page."""
    assert run.browser["plausible"]["purchase"] == {"status": 202}  # CORS let the tracker read the answer
    [purchase] = run.rows("protocol = 'plausible' AND type = 'custom'", "name, value, props, path")
    assert (purchase["name"], purchase["value"], purchase["path"]) == ("Purchase", 15.99, "/app/pricing")
    assert json.loads(purchase["props"]) == {"plan": "pro", "seats": "3", "revenue_amount": "15.99",
                                             "revenue_currency": "EUR"}


def test_tracker_engagement_on_navigation_and_on_leaving(run: Run) -> None:
    """Engagement for the page left by the SPA navigation and for the page closed: scroll depth and engaged time."""
    scrolls = run.rows("protocol = 'plausible' AND type = 'scroll'", "path, value, props")
    assert [s["path"] for s in scrolls] == ["/app/home", "/app/pricing"]
    assert scrolls[0]["value"] > 0  # the driver scrolled the landing page
    assert all(json.loads(s["props"])["engaged_ms"] > 0 for s in scrolls)


def test_sentry_and_obsd_report_the_same_bug_as_one_error_group(run: Run) -> None:
    """An uncaught error and an unhandled rejection, seen by both SDKs on one page, make one group each."""
    groups = {g["message"]: g for g in run.report("errors", since="1h")["rows"]}
    for message in ("Cannot read properties of undefined (reading 'featureFlags')",
                    "payment service unavailable (order 12345)"):
        g = groups[message]
        assert g["protocols"] == ["obsd", "sentry"] and g["events"] == 2, g
        assert g["releases"] == ["shop@2.3.4"]
    crash = groups["Cannot read properties of undefined (reading 'featureFlags')"]
    assert "at explodeInNamedFunction (" in crash["stack"] and crash["source"].endswith("/sentry-page.js")


def test_sentry_captures_with_release_environment_and_level(run: Run) -> None:
    """captureException and captureMessage land as errors with release, environment, level and handled."""
    rows = {r["error_message"]: r for r in run.rows(
        "protocol = 'sentry' AND type = 'error' AND release = 'shop@2.3.4'",
        "error_message, error_stack, release, environment, props, sdk, is_bot")}
    assert len(rows) == 4
    assert all(r["environment"] == "staging" and r["sdk"] == "sentry.javascript.browser/11.12.0"
               and not r["is_bot"] for r in rows.values())
    caught = rows["Expected property name or '}' in JSON at position 1 (line 1 column 2)"]
    assert json.loads(caught["props"])["handled"] is True
    assert "captureInNamedFunction" in caught["error_stack"].split("\n")[2]
    message = json.loads(rows["checkout slow"]["props"])
    assert (message["level"], message["tags"]) == ("warning", {"page": "compat-test"})


def test_sentry_sessions_give_release_health(run: Run) -> None:
    """The browser SDK's session (started, then unhandled) counts in the releases report."""
    [rel] = run.report("releases", since="1h", release="shop@2.3.4")["rows"]
    assert (rel["environment"], rel["sessions"], rel["unhandled"], rel["crashed"]) == ("staging", 1, 1, 0)
    # obsd's SDK sends no release here, so only the four Sentry errors count for it
    assert (rel["crash_free"], rel["unhandled_free"], rel["errors"]) == (1.0, 0.0, 4)


def test_python_backend_error_lands_next_to_the_browsers(run: Run) -> None:
    """sentry-sdk's capture_exception: frames with module and file, no visitor, not a bot, brotli on the wire."""
    assert run.backend["compression"] == "br"
    [err] = run.rows("error_message = 'float division by zero'", "error_stack, error_source, error_line, release, "
                     "environment, visitor_id, is_bot, protocol, sdk, event_id, props")
    lines = err["error_stack"].split("\n")
    here = str(HERE / "backend.py")
    source = (HERE / "backend.py").read_text().splitlines()
    bug, caller = (next(i for i, line in enumerate(source, 1) if line.startswith(text))
                   for text in ("    return total / parts", "    return divide_order_total("))
    assert lines[:3] == ["ZeroDivisionError: float division by zero",
                         f"    at __main__.divide_order_total ({here}:{bug})",
                         f"    at __main__.checkout ({here}:{caller})"]
    assert (err["error_source"], err["error_line"]) == (here, bug)
    assert (err["release"], err["environment"], err["protocol"]) == ("backend@1.0.0", "staging", "sentry")
    assert (err["visitor_id"], err["is_bot"]) == (0, False)  # a server's error is not bot traffic
    assert err["sdk"].startswith("sentry.python") and err["event_id"].replace("-", "") == run.backend["ids"][
        "exception"]
    groups = run.report("errors", since="1h", environment="staging")["rows"]
    assert {"float division by zero", "payment retry exhausted"} <= {g["message"] for g in groups}
    assert any(g["protocols"] == ["obsd", "sentry"] for g in groups)  # the browser's groups, side by side
    [backend] = run.report("releases", since="1h", release="backend@1.0.0")["rows"]
    assert backend["sessions"] == 1 and backend["errored"] == 1


def test_no_user_fields_or_ips_are_stored(run: Run) -> None:
    """Both SDKs were given a user (id, email, IP); none of it is anywhere in the store."""
    for needle in ("jane@example.com", "user-42", "203.0.113.9"):
        assert run.daemon.rows_containing(needle) == {}, needle


def test_every_client_request_was_answered_with_success(run: Run) -> None:
    """The browser saw only 2xx answers from /api/event and /api/42/envelope/, and no CORS failure."""
    statuses = run.browser["apiStatuses"]
    assert {s["path"] for s in statuses} == {"/api/event", "/api/42/envelope/"}
    assert all(200 <= s["status"] < 300 for s in statuses), statuses
    assert not [m for m in run.browser["console"] if "CORS" in m["text"] or "Sentry" in m["text"]]
