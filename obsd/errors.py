"""Domain errors: each tells the user what to do next; the CLI maps them to exit codes."""

from __future__ import annotations


class ObsdError(Exception):
    """Base of every error obsd raises on purpose."""

    exit_code = 1


class ConfigError(ObsdError):
    """The configuration is wrong; the message names the key and the fix."""

    exit_code = 2


class StoreError(ObsdError):
    """The ClickHouse store failed or cannot be reached."""

    exit_code = 3


class StoreLockedError(StoreError):
    """The embedded store is held by another process (usually a running `obsd serve`)."""


class MigrationError(ObsdError):
    """A migration failed or the store's migration state needs attention."""

    exit_code = 4


class PendingMigrationsError(MigrationError):
    """The store has migrations that are not applied yet."""


class DaemonError(ObsdError):
    """The running daemon could not be reached or refused the request."""

    exit_code = 5


class QueryError(ObsdError):
    """A query was refused or failed."""

    exit_code = 6


class SpoolError(ObsdError):
    """The durable spool cannot be written or read; `full` when the disk (or its quota) is out of space."""

    exit_code = 7

    def __init__(self, message: str, *, full: bool = False, kept: bool = False) -> None:
        super().__init__(message)
        self.full = full
        # The record was written whole but its sync failed and could not be cut off: it stays in the
        # spool and will be stored, so a resend of its batches must be recognised.
        self.kept = kept


class Overloaded(ObsdError):
    """obsd cannot promise to keep more events right now; the client should retry after `retry_after` s."""

    exit_code = 8

    def __init__(self, reason: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class TooLarge(ObsdError):
    """A request is larger than obsd could ever hold at once; retrying it unchanged cannot help."""

    exit_code = 8
