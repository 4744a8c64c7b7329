"""Tests for obsd.privacy.visitor: daily salted visitor ids, rotation, persistence and destruction."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obsd.privacy.visitor import DAY_SECONDS, SALT_BYTES, VisitorHasher, salt_file_name, utc_day

NOON = 1_764_331_200.0  # 2025-11-28 12:00:00 UTC
IP = "203.0.113.77"
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"


class Clock:
    """A settable clock standing in for time.time."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def salt_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_same_visitor_same_day_gets_same_id(tmp_path: Path) -> None:
    """Two events of one visitor on one UTC day count as one unique visitor."""
    clock = Clock(NOON)
    hasher = VisitorHasher(tmp_path, now=clock)
    first = hasher.visitor_id("shop", IP, UA)
    clock.t += 6 * 3600
    assert hasher.visitor_id("shop", IP, UA) == first
    assert 0 <= first < 2**64


def test_ids_differ_by_project_ip_and_user_agent(tmp_path: Path) -> None:
    """The same person on another project, or another person, gets another id."""
    hasher = VisitorHasher(tmp_path, now=Clock(NOON))
    ids = {
        hasher.visitor_id("shop", IP, UA),
        hasher.visitor_id("blog", IP, UA),
        hasher.visitor_id("shop", "203.0.113.78", UA),
        hasher.visitor_id("shop", IP, UA + " Edg/1"),
        hasher.visitor_id("shop\0" + IP, "", UA),
    }
    assert len(ids) == 5


def test_next_day_gives_a_new_id(tmp_path: Path) -> None:
    """After midnight UTC the same visitor cannot be joined with yesterday's id."""
    clock = Clock(NOON)
    hasher = VisitorHasher(tmp_path, now=clock)
    today = hasher.visitor_id("shop", IP, UA)
    clock.t += DAY_SECONDS
    assert hasher.visitor_id("shop", IP, UA) != today


def test_rotation_happens_exactly_at_midnight_utc(tmp_path: Path) -> None:
    """The id holds until 23:59:59.999 and changes at 00:00:00 UTC."""
    midnight = (utc_day(NOON) + 1) * DAY_SECONDS
    clock = Clock(midnight - 0.001)
    hasher = VisitorHasher(tmp_path, now=clock)
    before = hasher.visitor_id("shop", IP, UA)
    assert hasher.seconds_until_rotation() < 0.01
    clock.t = midnight
    assert hasher.visitor_id("shop", IP, UA) != before
    assert hasher.seconds_until_rotation() == DAY_SECONDS


def test_late_event_from_yesterday_keeps_yesterdays_id(tmp_path: Path) -> None:
    """An event sent just before midnight and received after it counts toward yesterday's visitor."""
    clock = Clock(NOON)
    hasher = VisitorHasher(tmp_path, now=clock)
    yesterday = hasher.visitor_id("shop", IP, UA)
    clock.t += DAY_SECONDS
    assert hasher.visitor_id("shop", IP, UA, at=NOON + 3600) == yesterday
    assert hasher.visitor_id("shop", IP, UA, at=clock.t) != yesterday


def test_events_older_than_yesterday_never_recreate_old_salts(tmp_path: Path) -> None:
    """A week-old timestamp is hashed with yesterday's salt; no salt for that day is created."""
    clock = Clock(NOON)
    hasher = VisitorHasher(tmp_path, now=clock)
    week_old = hasher.visitor_id("shop", IP, UA, at=NOON - 7 * DAY_SECONDS)
    assert week_old == hasher.visitor_id("shop", IP, UA, at=NOON - DAY_SECONDS)
    assert salt_files(tmp_path) == sorted([salt_file_name(utc_day(NOON)), salt_file_name(utc_day(NOON) - 1)])


def test_restart_on_the_same_day_keeps_counting_the_same_visitors(tmp_path: Path) -> None:
    """A restarted daemon reloads today's salt, so uniques are not double counted."""
    clock = Clock(NOON)
    before = VisitorHasher(tmp_path, now=clock).visitor_id("shop", IP, UA)
    clock.t += 3600
    assert VisitorHasher(tmp_path, now=clock).visitor_id("shop", IP, UA) == before


def test_restart_the_next_day_does_not_reuse_the_salt(tmp_path: Path) -> None:
    """A daemon that was down over midnight starts the new day with a new salt."""
    clock = Clock(NOON)
    before = VisitorHasher(tmp_path, now=clock).visitor_id("shop", IP, UA)
    clock.t += DAY_SECONDS
    assert VisitorHasher(tmp_path, now=clock).visitor_id("shop", IP, UA) != before


def test_salts_older_than_48_hours_are_destroyed_on_disk(tmp_path: Path) -> None:
    """Only today's and yesterday's salt files exist after rotation; older ones are gone."""
    clock = Clock(NOON)
    hasher = VisitorHasher(tmp_path, now=clock)
    day0 = utc_day(NOON)
    hasher.visitor_id("shop", IP, UA)
    clock.t += DAY_SECONDS
    hasher.visitor_id("shop", IP, UA)
    assert salt_files(tmp_path) == sorted([salt_file_name(day0), salt_file_name(day0 + 1)])
    clock.t += DAY_SECONDS
    hasher.rotate()
    assert salt_files(tmp_path) == sorted([salt_file_name(day0 + 1), salt_file_name(day0 + 2)])


def test_stale_salt_files_are_destroyed_at_startup(tmp_path: Path) -> None:
    """Salt files left behind by a daemon stopped days ago are deleted when the next one starts."""
    day = utc_day(NOON)
    for old in (day - 2, day - 30):
        (tmp_path / salt_file_name(old)).write_bytes(os.urandom(SALT_BYTES))
    (tmp_path / f".{salt_file_name(day - 5)}.123.tmp").write_bytes(b"x")
    (tmp_path / "README").write_text("not a salt")
    VisitorHasher(tmp_path, now=Clock(NOON))
    assert salt_files(tmp_path) == sorted(["README", salt_file_name(day)])


def test_no_salt_is_ever_older_than_48_hours(tmp_path: Path) -> None:
    """Hour by hour over five days, every salt on disk belongs to today or yesterday."""
    clock = Clock(NOON)
    hasher = VisitorHasher(tmp_path, now=clock)
    for _ in range(5 * 24):
        clock.t += 3600
        hasher.visitor_id("shop", IP, UA, at=clock.t - 7200)
        allowed = {salt_file_name(utc_day(clock.t)), salt_file_name(utc_day(clock.t) - 1)}
        assert set(salt_files(tmp_path)) <= allowed


def test_salt_files_are_private_and_hold_no_ip(tmp_path: Path) -> None:
    """The only file on disk is today's salt: owner-only, and exactly the key of the visitor hash (so it holds
    no IP or user agent: the id is the key's BLAKE2b of project, IP and user agent)."""
    hasher = VisitorHasher(tmp_path / "salts", now=Clock(NOON))
    vid = hasher.visitor_id("shop", IP, UA)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [salt_file_name(utc_day(NOON))]
    key = files[0].read_bytes()
    assert len(key) == SALT_BYTES and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    expected = hashlib.blake2b(f"shop\0{IP}\0{UA}".encode(), key=key, digest_size=8).digest()
    assert vid == int.from_bytes(expected, "big")
    assert stat.S_IMODE((tmp_path / "salts").stat().st_mode) == 0o700


def test_in_memory_hasher_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a salt directory the hasher works, across a rotation too, and writes no file anywhere near."""
    monkeypatch.chdir(tmp_path)
    clock = Clock(NOON)
    hasher = VisitorHasher(None, now=clock)
    assert hasher.visitor_id("shop", IP, UA) == hasher.visitor_id("shop", IP, UA)
    clock.t += DAY_SECONDS
    hasher.visitor_id("shop", IP, UA)
    assert list(tmp_path.iterdir()) == []


def test_separate_installations_do_not_share_ids(tmp_path: Path) -> None:
    """Two daemons with their own salt directories give the same visitor unrelated ids."""
    a = VisitorHasher(tmp_path / "a", now=Clock(NOON))
    b = VisitorHasher(tmp_path / "b", now=Clock(NOON))
    assert a.visitor_id("shop", IP, UA) != b.visitor_id("shop", IP, UA)


@given(st.text(max_size=30), st.text(max_size=40), st.text(max_size=200))
def test_any_input_hashes_to_an_unsigned_64_bit_int(project: str, ip: str, ua: str) -> None:
    """Arbitrary (even invalid Unicode) inputs give a stable UInt64 without raising."""
    hasher = VisitorHasher(None, now=Clock(NOON))
    vid = hasher.visitor_id(project, ip, ua)
    assert 0 <= vid < 2**64
    assert hasher.visitor_id(project, ip, ua) == vid


def test_rotation_under_concurrent_hashing_never_hashes_without_a_key(tmp_path: Path) -> None:
    """Threads hash while midnight passes and salts are destroyed: never an unkeyed (or zeroed) digest."""
    import threading

    clock = Clock(NOON)
    hasher = VisitorHasher(tmp_path, now=clock)
    msg = f"shop\0{IP}\0{UA}".encode()
    unkeyed = int.from_bytes(hashlib.blake2b(msg, digest_size=8).digest(), "big")
    zeroed = int.from_bytes(hashlib.blake2b(msg, key=bytes(SALT_BYTES), digest_size=8).digest(), "big")
    seen: set[int] = set()
    stop = threading.Event()

    def hash_forever() -> None:
        while not stop.is_set():
            seen.add(hasher.visitor_id("shop", IP, UA, at=clock.t - DAY_SECONDS / 2))

    threads = [threading.Thread(target=hash_forever) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(200):
            clock.t += DAY_SECONDS / 2
            hasher.rotate()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen and unkeyed not in seen and zeroed not in seen


def test_a_destroyed_salt_never_comes_back(tmp_path: Path) -> None:
    """Once a day's salt is destroyed, neither a late request nor a clock stepping back makes it again."""
    clock = Clock(NOON)
    hasher = VisitorHasher(tmp_path, now=clock)
    day0 = utc_day(NOON)
    first = hasher.visitor_id("shop", IP, UA)
    clock.t += 2 * DAY_SECONDS
    hasher.visitor_id("shop", IP, UA)
    assert salt_file_name(day0) not in salt_files(tmp_path)
    # A request stamped with the destroyed day is hashed with yesterday's salt, not a new day-0 salt.
    late = hasher.visitor_id("shop", IP, UA, at=NOON)
    assert late != first and salt_file_name(day0) not in salt_files(tmp_path)
    clock.t = NOON  # the clock steps back two days
    hasher.rotate()
    again = hasher.visitor_id("shop", IP, UA)
    assert again != first and salt_file_name(day0) not in salt_files(tmp_path)
    assert salt_files(tmp_path) == sorted([salt_file_name(day0 + 1), salt_file_name(day0 + 2)])


def test_workers_borrow_the_owners_salts_and_write_nothing(tmp_path: Path) -> None:
    """A borrowed hasher hashes like its owner, today and yesterday, and never touches the salt files."""
    clock = Clock(NOON)
    owner = VisitorHasher(tmp_path / "salts", now=clock)
    worker = VisitorHasher.borrowed(owner.snapshot())  # the owner makes yesterday's salt if it had none
    files = salt_files(tmp_path / "salts")
    for at in (None, NOON - DAY_SECONDS / 2, NOON - 30 * DAY_SECONDS):
        assert worker.visitor_id("shop", IP, UA, at=at) == owner.visitor_id("shop", IP, UA, at=at)
    assert salt_files(tmp_path / "salts") == files == sorted([salt_file_name(utc_day(NOON) - 1),
                                                              salt_file_name(utc_day(NOON))])
    with pytest.raises(ValueError):
        VisitorHasher.borrowed({})
