"""The ingest side of one configuration: settings, projects, the request gate and the row encoder.

Built once per start and per reload, and swapped whole: every ingestion endpoint takes the snapshot in
force when a request starts and uses only that one to its end, so no request runs half under the old
configuration and half under the new.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from obsd.ingest.enrich import RowEncoder
from obsd.ingest.gate import RequestGate
from obsd.ingest.projects import Projects
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import Settings

if TYPE_CHECKING:
    from obsd.ingest.accept import Acceptor
    from obsd.ops.metrics import Metrics


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Everything an ingestion request needs from the configuration."""

    settings: Settings
    projects: Projects
    gate: RequestGate
    encoder: RowEncoder

    @classmethod
    def build(cls, settings: Settings, visitors: VisitorHasher, previous: IngestConfig | None = None) -> IngestConfig:
        """A snapshot of `settings`; rate-limit buckets whose rule is unchanged carry over from `previous`."""
        # Sessions seen (for older SDKs' entry pageviews) and an open GeoIP file outlive a reload.
        old = previous.encoder if previous else None
        encoder = RowEncoder(settings, visitors, entries=old.entries if old else None, geoip=old.geoip if old else None)
        return cls(settings, Projects(settings.projects), RequestGate(settings, previous.gate if previous else None),
                   encoder)


class IngestRoute:
    """What every ingestion endpoint holds: the snapshot in force, the path into the pipeline, the metrics.
    A handler reads `self.config` once when a request starts and uses that snapshot to its end."""

    def __init__(self, config: IngestConfig, acceptor: Acceptor, metrics: Metrics) -> None:
        self.config = config
        self.acceptor = acceptor
        self.metrics = metrics

    def apply(self, config: IngestConfig) -> None:
        """Take a new configuration snapshot (start and reload); requests under way keep theirs."""
        self.config = config
