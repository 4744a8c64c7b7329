"""Running obsd: metrics, logging, systemd, and the live tail of ingested events."""
