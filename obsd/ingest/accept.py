"""What every ingestion route does with rows it has made: hand them to the pipeline, answer 503 when
the pipeline cannot promise them, count them, show them to `obsd tail`, and keep what was refused."""

from __future__ import annotations

from collections.abc import Iterable

from obsd.errors import Overloaded, TooLarge
from obsd.httperrors import HttpError
from obsd.ops.metrics import Metrics
from obsd.ops.tail import TailHub
from obsd.pipeline.pipeline import Pipeline
from obsd.store.rows import DeadLetter


class Acceptor:
    """The one path from encoded rows to the pipeline, shared by /v1/events and the admin import."""

    def __init__(self, pipeline: Pipeline, metrics: Metrics, tail: TailHub) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.tail = tail

    async def accept(self, rows: bytes, events: int, *, batch: int | None = None, protocol: str = "obsd") -> bool:
        """Make rows durable (or buffered, in memory mode): True when stored, False for a resent batch
        (`batch`, a batch-id fingerprint, was accepted before). Raises a 503 HttpError when obsd cannot
        promise the rows now, a 413 when they could never fit."""
        try:
            stored = await self.pipeline.submit(rows, events, batch=batch)
        except Overloaded as exc:
            self.metrics.refused_events.inc(events)
            raise HttpError(503, exc.reason, str(exc), retry_after=exc.retry_after) from exc
        except TooLarge as exc:
            raise HttpError(413, "too_large_for_buffer", str(exc)) from exc
        if stored:  # the ledger counted them accepted; this says which protocol they came by
            self.metrics.protocol_accepted.labels(protocol=protocol).inc(events)
            self.tail.publish(rows)
        return stored

    def refused(self, exc: HttpError, protocol: str = "obsd") -> None:
        """Count a request refused whole, by status and reason (and by the protocol it spoke)."""
        self.metrics.refused.labels(status=str(exc.status), reason=exc.code).inc()
        self.metrics.protocol_refused.labels(protocol=protocol, reason=exc.code).inc()

    def reject(self, codes: Iterable[str], letters: list[DeadLetter], protocol: str = "obsd") -> None:
        """Count events refused one by one, by reason, and keep them for obsd.events_rejected."""
        for code in codes:
            self.metrics.rejected.labels(reason=code).inc()
            self.metrics.protocol_rejected.labels(protocol=protocol, reason=code).inc()
        if letters:
            self.pipeline.reject(letters)
