"""Body decompression: every accepted Content-Encoding round-trips, and none inflates past the cap."""

from __future__ import annotations

import gzip
import json
import resource
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from obsd.httperrors import HttpError
from obsd.ingest.body import decompress_capped
from tests.harness import Daemon, envelope, event

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflate-raw": lambda b: zlib.compress(b)[2:-4],  # what some clients send as "deflate"
    "br": lambda b: brotli.compress(b, quality=4),
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


def _encoding(name: str) -> str:
    return name.split("-")[0]


@pytest.mark.parametrize("name", COMPRESSORS)
@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5000))
def test_each_encoding_round_trips(name: str, data: bytes) -> None:
    """What a client compressed is exactly what obsd reads back."""
    assert decompress_capped(COMPRESSORS[name](data), _encoding(name), 10_000) == data


@pytest.mark.parametrize("name", COMPRESSORS)
def test_a_bomb_stops_at_the_cap_without_inflating(name: str) -> None:
    """200 MB of zeros compressed to a few KB is refused with 413 while memory stays far below 200 MB."""
    bomb = COMPRESSORS[name](bytes(200_000_000))
    assert len(bomb) < 300_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(HttpError) as info:
        decompress_capped(bomb, _encoding(name), 1_000_000)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert (info.value.status, info.value.code) == (413, "decompressed_too_large")
    assert "server.max_decompressed_bytes" in info.value.reason
    assert grown_kib < 50_000, f"peak memory grew by {grown_kib} KiB"


@pytest.mark.parametrize("name", COMPRESSORS)
def test_truncated_and_garbage_bodies_are_400(name: str) -> None:
    """A cut-off stream or bytes that are not the encoding at all name the encoding in a 400."""
    whole = COMPRESSORS[name](b"hello obsd " * 200)
    for broken in (whole[: len(whole) // 2], b"definitely not compressed"):
        with pytest.raises(HttpError) as info:
            decompress_capped(broken, _encoding(name), 100_000)
        assert info.value.status == 400 and info.value.code == f"invalid_{_encoding(name)}"


def test_unknown_encoding_is_415_naming_the_accepted_ones() -> None:
    """An encoding obsd cannot read is refused, and the answer says which ones it can."""
    with pytest.raises(HttpError) as info:
        decompress_capped(b"x", "compress", 100)
    assert info.value.status == 415 and "gzip, deflate, br, zstd" in info.value.reason


@pytest.mark.parametrize("name", ["br", "deflate", "zstd"])
def test_events_endpoint_reads_every_encoding(daemon: Daemon, name: str) -> None:
    """POST /v1/events with Content-Encoding br, deflate or zstd stores the batch."""
    sid = f"enc-{name}"
    body = COMPRESSORS[name](json.dumps(envelope([event()], session_id=sid)).encode())
    r = daemon.post(None, raw=body, headers={"Content-Encoding": name})
    assert r.status == 202, r.body
    assert daemon.wait_for(f"SELECT count() FROM obsd.events WHERE session_id = '{sid}'", 1) == 1
