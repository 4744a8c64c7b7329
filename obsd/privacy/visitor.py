"""Anonymous visitor ids: a keyed hash under a random salt that rotates every UTC day."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import structlog

__all__ = ["SALT_BYTES", "VisitorHasher", "keep_rotated", "salt_file_name", "utc_day"]

log = structlog.get_logger("obsd.privacy.visitor")

SALT_BYTES: Final = 32
DAY_SECONDS: Final = 86_400
_SALT_FILE_RE: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})\.salt$")
_EPOCH_ORDINAL: Final = datetime.date(1970, 1, 1).toordinal()


def utc_day(t: float) -> int:
    """Return the UTC day number (days since the epoch) of a Unix time in seconds."""
    return int(t // DAY_SECONDS)


def salt_file_name(day: int) -> str:
    """Return the file name of a day's salt, the UTC date in ISO form (`2025-11-28.salt`)."""
    return f"{datetime.date.fromordinal(day + _EPOCH_ORDINAL).isoformat()}.salt"


def _day_of_file(name: str) -> int | None:
    m = _SALT_FILE_RE.match(name)
    if m is None:
        return None
    try:
        return datetime.date.fromisoformat(m.group(1)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a file readable by the owner only, replacing any old one atomically and durably."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _shred(path: Path) -> None:
    """Overwrite a salt file with zeros, flush it and unlink it."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        os.write(fd, b"\0" * size)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)


class _DaySalt:
    """One day's salt and a keyed BLAKE2b state derived from it, ready to be copied per event."""

    __slots__ = ("day", "key", "state")

    def __init__(self, day: int, key: bytes) -> None:
        self.day = day
        self.key = bytearray(key)
        self.state: hashlib.blake2b | None = hashlib.blake2b(key=self.key, digest_size=8)

    def destroy(self) -> None:
        """Zero the salt bytes in memory and drop the derived hash state (never replaced by an unkeyed one)."""
        for i in range(len(self.key)):
            self.key[i] = 0
        self.state = None


class VisitorHasher:
    """Turns (project, IP, user agent) into a 64-bit visitor id that cannot be joined across days.

    The one owner of a process's salts. Every salt lookup, creation and destruction happens under one
    lock, so a request never hashes with a salt being destroyed (there is no unkeyed moment), and the
    oldest day still kept only moves forward: a destroyed day's salt is never made again, not by a late
    request and not by a clock that steps back.
    """

    def __init__(self, salt_dir: Path | str | None, *, now: Callable[[], float] = time.time,
                 _borrowed: dict[int, bytes] | None = None) -> None:
        self._dir: Final = Path(salt_dir) if salt_dir is not None else None
        self._now: Final = now
        self._lock: Final = threading.Lock()
        self._salts: dict[int, _DaySalt] = {}
        self._today: _DaySalt | None = None
        self._next_rotation = float("-inf")
        self._floor = -(2**62)  # the oldest day whose salt may exist; only ever raised
        self._borrowed = _borrowed is not None
        if _borrowed is not None:
            for day, key in _borrowed.items():
                self._salts[day] = _DaySalt(day, key)
            newest = max(self._salts)
            self._today = self._salts[newest]
            self._floor = min(self._salts)
            self._next_rotation = float("inf")  # a borrower never rotates: its owner does
            return
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.rotate()

    @classmethod
    def borrowed(cls, keys: dict[int, bytes]) -> VisitorHasher:
        """A hasher over salts another process owns (`owner.snapshot()`): it hashes exactly like the owner
        did when the snapshot was taken and never creates, writes, rotates or destroys a salt."""
        if not keys:
            raise ValueError("a borrowed hasher needs at least one day's salt")
        return cls(None, _borrowed=keys)

    def snapshot(self) -> dict[int, bytes]:
        """Today's and yesterday's salt bytes, for worker processes that hash on this owner's behalf."""
        with self._lock:
            self._rotate_if_due()
            assert self._today is not None
            today = self._today.day
            yesterday = self._salts.get(today - 1) or self._load_or_create(today - 1)
            return {today: bytes(self._today.key), today - 1: bytes(yesterday.key)}

    def seconds_until_rotation(self) -> float:
        """Return how long until the next midnight UTC, when the server should call rotate()."""
        return max(0.0, self._next_rotation - self._now())

    def visitor_id(self, project_id: str, ip: str, ua: str, at: float | None = None) -> int:
        """Return the visitor id for an event, using the salt of the event's UTC day (`at`, seconds)."""
        with self._lock:
            self._rotate_if_due()
            salt = self._today
            assert salt is not None
            if at is not None and at < salt.day * DAY_SECONDS and salt.day - 1 >= self._floor:
                # Late events of yesterday keep yesterday's identity; anything older is clamped to it.
                salt = self._salts.get(salt.day - 1) or self._load_or_create(salt.day - 1)
            state = salt.state
            assert state is not None, "a live salt always has its keyed state"
            h = state.copy()
        h.update(f"{project_id}\0{ip}\0{ua}".encode("utf-8", "surrogatepass"))
        return int.from_bytes(h.digest(), "big")

    def rotate(self) -> None:
        """Load or create today's salt and destroy every salt older than yesterday, on disk and in memory."""
        with self._lock:
            self._rotate()

    def _rotate_if_due(self) -> None:
        if not self._borrowed and self._now() >= self._next_rotation:
            self._rotate()

    def _rotate(self) -> None:
        # A clock that steps back never brings back a day whose salt was destroyed.
        today = max(utc_day(self._now()), self._floor + 1)
        self._floor = max(self._floor, today - 1)
        for day in [d for d in self._salts if d < self._floor]:
            self._salts.pop(day).destroy()
        self._purge_disk(keep=(today, today - 1))
        self._today = self._salts.get(today) or self._load_or_create(today)
        self._next_rotation = (utc_day(self._now()) + 1) * DAY_SECONDS

    def _load_or_create(self, day: int) -> _DaySalt:
        """A day's salt from disk, or a new one; never for a day before the floor. Hold the lock."""
        if day < self._floor:
            raise ValueError(f"the salt of day {day} was destroyed and is never made again")
        key: bytes | None = None
        path = self._dir / salt_file_name(day) if self._dir is not None else None
        if path is not None:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = b""
            if len(data) == SALT_BYTES:
                key = data
        if key is None:
            key = secrets.token_bytes(SALT_BYTES)
            if path is not None:
                _write_atomic(path, key)
        salt = _DaySalt(day, key)
        self._salts[day] = salt
        return salt

    def _purge_disk(self, keep: tuple[int, ...]) -> None:
        if self._dir is None:
            return
        for entry in self._dir.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                _shred(entry)
                continue
            day = _day_of_file(entry.name)
            if day is not None and day not in keep:
                _shred(entry)


async def keep_rotated(hasher: VisitorHasher) -> None:
    """At each midnight UTC make the new day's salt and destroy salts older than yesterday, traffic or not."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(hasher.seconds_until_rotation() + 1)
        await loop.run_in_executor(None, hasher.rotate)
        log.info("salts.rotated")
