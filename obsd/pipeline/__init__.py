"""The pipeline: ring buffer → committer (group commit into the spool) → writer thread → the store."""
