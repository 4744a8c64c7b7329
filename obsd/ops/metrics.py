"""Pipeline counters, gauges and histograms, exposed in Prometheus format (prometheus_client)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every number obsd reports about itself, in one registry per process."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("obsd_http_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=r)
        self.request_seconds = Histogram("obsd_ingest_request_seconds",
                                         "Time from request to answer for POST /v1/events",
                                         buckets=_LATENCY, registry=r)
        self.accepted = Counter("obsd_events_accepted", "Events acknowledged with 202", registry=r)
        self.accepted_bytes = Counter("obsd_events_accepted_bytes", "Encoded row bytes acknowledged",
                                      registry=r)
        self.rejected = Counter("obsd_events_rejected", "Events refused at ingest, by reason",
                                ["reason"], registry=r)
        self.refused = Counter("obsd_requests_refused", "Requests refused whole, by status and reason",
                               ["status", "reason"], registry=r)
        self.refused_events = Counter("obsd_events_refused_overload",
                                      "Events in requests refused with 503 (backpressure)", registry=r)
        self.spooled = Counter("obsd_events_spooled", "Events made durable in the spool", registry=r)
        self.spooled_bytes = Counter("obsd_spool_written_bytes", "Compressed bytes written to the spool",
                                     registry=r)
        self.replayed = Counter("obsd_events_replayed", "Events recovered from the spool at start",
                                registry=r)
        self.inserted = Counter("obsd_events_inserted", "Events committed to ClickHouse", registry=r)
        self.inserted_bytes = Counter("obsd_events_inserted_bytes", "Payload bytes sent to ClickHouse",
                                      registry=r)
        self.dead_lettered = Counter("obsd_events_dead_lettered",
                                     "Events ClickHouse refused, kept in events_rejected", registry=r)
        self.quarantined_bytes = Counter("obsd_spool_quarantined_bytes",
                                         "Corrupt spool bytes moved to quarantine", registry=r)
        self.insert_errors = Counter("obsd_store_insert_errors", "Failed insert attempts, by kind",
                                     ["kind"], registry=r)
        self.insert_seconds = Histogram("obsd_store_insert_seconds", "Duration of one ClickHouse insert",
                                        buckets=_LATENCY, registry=r)
        self.commit_seconds = Histogram("obsd_spool_commit_seconds",
                                        "Spool thread time of one group commit (compress, write, fdatasync)",
                                        buckets=_LATENCY, registry=r)
        self.commit_wait_seconds = Histogram("obsd_spool_commit_wait_seconds",
                                             "Time a request waits from the ring to its commit being durable",
                                             buckets=_LATENCY, registry=r)
        self.freshness_seconds = Histogram("obsd_freshness_seconds",
                                           "Time from spool commit to rows in ClickHouse",
                                           buckets=_LATENCY, registry=r)
        self.ring_events = Gauge("obsd_ring_events", "Events waiting in the ring buffer", registry=r)
        self.ring_bytes = Gauge("obsd_ring_bytes", "Bytes waiting in the ring buffer", registry=r)
        self.spool_bytes = Gauge("obsd_spool_bytes", "Bytes of spool segments on disk", registry=r)
        self.pending_events = Gauge("obsd_store_pending_events",
                                    "Events acknowledged but not yet in ClickHouse: in the ring, the open batch "
                                    "and the spool (or the memory log)", registry=r)
        self.store_up = Gauge("obsd_store_up", "1 when the last store operation succeeded", registry=r)
        # Operations: tail viewers, the event loop's health, reloads and admin imports.
        self.tail_viewers = Gauge("obsd_tail_viewers", "Connected `obsd tail` viewers", registry=r)
        self.tail_sent = Counter("obsd_tail_events_sent", "Events streamed to tail viewers", registry=r)
        self.tail_missed = Counter("obsd_tail_events_missed",
                                   "Events a slow tail viewer missed (its queue was full)", registry=r)
        self.loop_lag_seconds = Histogram("obsd_event_loop_lag_seconds",
                                          "How late the event loop ran a timer (watchdog probe)",
                                          buckets=_LATENCY, registry=r)
        self.reloads = Counter("obsd_config_reloads", "SIGHUP configuration reloads, by result",
                               ["result"], registry=r)
        self.imported = Counter("obsd_events_imported", "Events accepted by POST /v1/admin/import",
                                registry=r)
        # Per protocol: obsd's own SDK, Plausible's Events API, Sentry's envelope and store endpoints.
        self.protocol_accepted = Counter("obsd_protocol_events_accepted",
                                         "Events accepted, by the protocol they came by (obsd, plausible, sentry)",
                                         ["protocol"], registry=r)
        self.protocol_refused = Counter("obsd_protocol_requests_refused",
                                        "Requests refused whole, by protocol and reason", ["protocol", "reason"],
                                        registry=r)
        self.protocol_rejected = Counter("obsd_protocol_events_rejected",
                                         "Events refused one by one, by protocol and reason", ["protocol", "reason"],
                                         registry=r)
        self.sentry_items = Counter("obsd_sentry_items", "Sentry envelope items by type and what obsd did with them "
                                    "(stored, skipped, refused)", ["type", "outcome"], registry=r)
        self.sentry_discarded = Counter("obsd_sentry_client_discarded",
                                        "Events Sentry SDKs say they dropped themselves (client reports), by reason "
                                        "and category", ["reason", "category"], registry=r)
        self.started_at = Gauge("obsd_start_time_seconds", "Unix time the daemon started", registry=r)
        self.started_at.set_to_current_time()

    def bind(self, ring_events: Callable[[], float], ring_bytes: Callable[[], float],
             spool_bytes: Callable[[], float], pending: Callable[[], float]) -> None:
        """Read gauges from the live pipeline at scrape time."""
        self.ring_events.set_function(ring_events)
        self.ring_bytes.set_function(ring_bytes)
        self.spool_bytes.set_function(spool_bytes)
        self.pending_events.set_function(pending)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """The current value of one sample, for status output and tests."""
        v = self.registry.get_sample_value(name, labels or None)
        return float(v or 0.0)

    def snapshot(self) -> dict[str, float]:
        """Every sample as `name{labels}` → value."""
        out: dict[str, float] = {}
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name.endswith("_created") or s.name.endswith("_bucket"):
                    continue
                label = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{label}}}" if label else s.name] = s.value
        return out
