"""obsd: a self-hosted web observability collector."""

__version__ = "0.1.0"
