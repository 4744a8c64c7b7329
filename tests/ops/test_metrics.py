"""GET /metrics: Prometheus text that a Prometheus parser reads, with counters that move as events flow."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Daemon, envelope, event, http


def samples(d: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed by prometheus_client's own parser."""
    out = {}
    for fam in text_string_to_metric_families(d.metrics()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(snap: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return snap.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_counters_move(daemon: Daemon) -> None:
    """Accepted, spooled and inserted counters and the request histogram grow by what was posted."""
    before = samples(daemon)
    for _ in range(3):
        assert daemon.post(envelope([event(), event("click"), event("error")])).status == 202
    daemon.post(envelope([event(type_="nope")]))
    daemon.post(envelope([event()]), key="wrong-key-123")
    deadline = time.monotonic() + 20
    after = samples(daemon)
    while time.monotonic() < deadline and (value(after, "obsd_events_inserted_total")
                                           < value(before, "obsd_events_inserted_total") + 9):
        time.sleep(0.1)
        after = samples(daemon)
    for name in ("obsd_events_accepted_total", "obsd_events_spooled_total", "obsd_events_inserted_total"):
        assert value(after, name) - value(before, name) == 9, name
    assert value(after, "obsd_ingest_request_seconds_count") - value(before, "obsd_ingest_request_seconds_count") == 5
    assert value(after, "obsd_events_rejected_total", reason="unknown_type") - \
        value(before, "obsd_events_rejected_total", reason="unknown_type") == 1
    assert value(after, "obsd_requests_refused_total", status="401", reason="invalid_key") - \
        value(before, "obsd_requests_refused_total", status="401", reason="invalid_key") == 1
    assert value(after, "obsd_store_up") == 1


def test_gauges_and_histograms_for_operations_are_exposed(daemon: Daemon) -> None:
    """Fill levels, tail viewers, loop lag and start time are there for dashboards and alerts."""
    time.sleep(1.2)  # the loop-lag probe samples once a second
    snap = samples(daemon)
    names = {n for n, _ in snap}
    for name in ("obsd_ring_events", "obsd_ring_bytes", "obsd_spool_bytes", "obsd_store_pending_events",
                 "obsd_tail_viewers", "obsd_freshness_seconds_bucket", "obsd_store_insert_seconds_bucket",
                 "obsd_start_time_seconds"):
        assert name in names, name
    assert value(snap, "obsd_event_loop_lag_seconds_count") >= 1
    assert abs(value(snap, "obsd_start_time_seconds") - time.time()) < 3600


def test_metrics_answer_loopback_only_and_status_needs_the_token(daemon: Daemon) -> None:
    """/metrics is open on loopback; /v1/admin/status wants the admin token."""
    assert http("GET", daemon.base + "/metrics").status == 200
    r = http("GET", daemon.base + "/v1/admin/status")
    assert r.status == 401 and r.json()["error"] == "admin_unauthorized"
