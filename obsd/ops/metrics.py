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
        self.accepted = Counter("obsd_events_accepted", "Events acknowledged: durable in the spool (fsync) or "
                                "taken into the ring (memory)", registry=r)
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
                                           "Time from acknowledgement (the batch's first rows) to rows in ClickHouse",
                                           buckets=_LATENCY, registry=r)
        self.ring_events = Gauge("obsd_ring_events", "Events waiting in the ring buffer", registry=r)
        self.ring_bytes = Gauge("obsd_ring_bytes", "Bytes waiting in the ring buffer", registry=r)
        self.spool_bytes = Gauge("obsd_spool_bytes", "Bytes of spool segments on disk", registry=r)
        self.pending_events = Gauge("obsd_store_pending_events",
                                    "Events acknowledged but not yet in ClickHouse: the spool's open and closed "
                                    "batches (fsync), or the ring and the memory log (memory)", registry=r)
        self.batch_ids = Gauge("obsd_batch_ids", "Batch ids remembered to recognise resent batches",
                               registry=r)
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
        self.stage_failures = Counter("obsd_stage_failures", "Unexpected failures of a pipeline stage, "
                                      "caught and retried", ["stage"], registry=r)
        self.spool_errors = Counter("obsd_spool_errors", "Spool writes the disk refused, by kind "
                                    "(spool_full: no space; spool_error: I/O error)", ["kind"], registry=r)
        self.duplicate_batches = Counter("obsd_batches_duplicate", "Resent batches recognised by batch_id "
                                         "and not stored again", registry=r)
        self.batch_ids_evicted = Counter("obsd_batch_ids_evicted", "Batch ids forgotten before their "
                                         "window ended because spool.max_batch_ids was reached", registry=r)
        self.dead_letters_spooled = Counter("obsd_dead_letters_spooled", "Ingest-time rejects made durable "
                                            "for events_rejected", registry=r)
        self.dead_letters_inserted = Counter("obsd_dead_letters_inserted", "Ingest-time rejects stored in "
                                             "events_rejected", registry=r)
        self.dead_letters_dropped = Counter("obsd_dead_letters_dropped", "Rejects not kept for events_rejected, "
                                            "by reason (full: over spool.max_rejected_bytes)", ["reason"],
                                            registry=r)
        self.sdk_dropped = Counter("obsd_sdk_dropped_events", "Events SDKs report they dropped before sending "
                                   "(queue full, retries exhausted), by project", ["project"], registry=r)
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
             spool_bytes: Callable[[], float], pending: Callable[[], float], batch_ids: Callable[[], float]) -> None:
        """Read gauges from the live pipeline at scrape time."""
        self.ring_events.set_function(ring_events)
        self.ring_bytes.set_function(ring_bytes)
        self.spool_bytes.set_function(spool_bytes)
        self.pending_events.set_function(pending)
        self.batch_ids.set_function(batch_ids)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """The current value of one sample, for status output and tests."""
        v = self.registry.get_sample_value(name, labels or None)
        return float(v or 0.0)

    def quantiles(self, name: str, qs: tuple[float, ...]) -> dict[str, float | int | None]:
        """Estimated quantiles of a histogram (linear within buckets, as Prometheus' histogram_quantile),
        keyed `p50`, `p99`…, with `count`; None where there are no observations."""
        buckets: list[tuple[float, float]] = []
        for metric in self.registry.collect():
            if metric.name == name:
                buckets = sorted((float(s.labels["le"]), s.value) for s in metric.samples
                                 if s.name == name + "_bucket")
        total = buckets[-1][1] if buckets else 0.0
        out: dict[str, float | int | None] = {"count": int(total)}
        for q in qs:
            key = f"p{q * 100:g}"
            if not total:
                out[key] = None
                continue
            rank, lower, below = q * total, 0.0, 0.0
            for upper, cumulative in buckets:
                if cumulative >= rank:
                    if upper == float("inf"):
                        out[key] = lower
                    else:
                        share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
                        out[key] = round(lower + (upper - lower) * share, 4)
                    break
                lower, below = upper, cumulative
        return out

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
