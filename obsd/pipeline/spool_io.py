"""The operating-system calls the spool makes, behind one small interface so that tests (and the chaos
switches in obsd.faults) can make any of them fail the way a full or broken disk does."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from obsd import faults


class SpoolIO:
    """Plain os calls: positional writes, data syncs, truncation, preallocation, renames, unlinks."""

    def open_segment(self, path: Path) -> int:
        """Create a new segment file for writing."""
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def preallocate(self, fd: int, size: int) -> None:
        """Reserve `size` bytes on disk for the segment, so a full disk shows up here and not mid-record."""
        os.posix_fallocate(fd, 0, size)

    def write_at(self, fd: int, data: bytes, offset: int) -> None:
        """Write all of `data` at `offset`; a short write is reported as ENOSPC."""
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, offset)
            if n == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[n:]
            offset += n

    def fdatasync(self, fd: int) -> None:
        """Make what was written durable."""
        os.fdatasync(fd)

    def truncate(self, fd: int, size: int) -> None:
        """Cut the file back to `size` bytes."""
        os.ftruncate(fd, size)

    def close(self, fd: int) -> None:
        """Close a file descriptor."""
        os.close(fd)

    def replace_file(self, path: Path, data: bytes) -> None:
        """Write `data` to `path` atomically (write a temp file, rename it over the old one)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def sync_dir(self, directory: Path) -> None:
        """Make a directory's entries (new or renamed files) durable."""
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def unlink(self, path: Path) -> None:
        """Delete a file (a missing one is not an error)."""
        path.unlink(missing_ok=True)


class ChaosIO(SpoolIO):
    """SpoolIO that fails as the fault file says (obsd.faults), for the daemon's fault tests."""

    def write_at(self, fd: int, data: bytes, offset: int) -> None:
        """Stop half way with ENOSPC while `spool_enospc` is on: a torn record on disk."""
        if faults.active("spool_enospc"):
            os.pwrite(fd, data[: len(data) // 2], offset)
            raise OSError(errno.ENOSPC, "fault injected: " + os.strerror(errno.ENOSPC))
        super().write_at(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        """Fail with EIO while `spool_eio_fsync` is on; take 3 s while `spool_stall` is on (a hanging disk)."""
        if faults.active("spool_eio_fsync"):
            raise OSError(errno.EIO, "fault injected: " + os.strerror(errno.EIO))
        if faults.active("spool_stall"):
            time.sleep(3.0)
        super().fdatasync(fd)

    def replace_file(self, path: Path, data: bytes) -> None:
        """Fail with EIO while `spool_eio_checkpoint` is on."""
        if faults.active("spool_eio_checkpoint"):
            raise OSError(errno.EIO, "fault injected: " + os.strerror(errno.EIO))
        super().replace_file(path, data)


def default_io() -> SpoolIO:
    """ChaosIO when the process runs under a fault file (a test), plain SpoolIO otherwise."""
    return ChaosIO() if faults.enabled() else SpoolIO()
