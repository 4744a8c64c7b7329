"""Hypothesis properties of the ring buffer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from obsd.pipeline.ring import Chunk, RingBuffer
from tests.strategies import chunk_sizes


@given(chunk_sizes, st.integers(1, 500), st.integers(1, 20_000), st.lists(st.booleans(), max_size=400))
def test_order_bounds_and_no_loss(sizes: list[tuple[int, int]], max_events: int, max_bytes: int,
                                  ops: list[bool]) -> None:
    """Offers and takes in any interleaving keep order, never exceed bounds, never lose or repeat a chunk."""
    ring = RingBuffer(max_events, max_bytes)
    accepted: list[int] = []
    taken: list[int] = []
    pending = iter(enumerate(sizes))
    for op in ops:
        if op:
            nxt = next(pending, None)
            if nxt is None:
                continue
            i, (events, nbytes) = nxt
            data = i.to_bytes(4, "big") * (nbytes // 4 + 1)
            fits = ring.fits(events, len(data))
            assert ring.offer(Chunk(data, events)) is fits
            if fits:
                accepted.append(i)
        else:
            had = len(ring)
            out = ring.take(max_events=37, max_bytes=5000)
            assert bool(out) == bool(had)
            if len(out) > 1:
                assert sum(c.events for c in out) <= 37 and sum(len(c.data) for c in out) <= 5000
            taken += [int.from_bytes(c.data[:4], "big") for c in out]
        assert 0 <= ring.events <= max_events and 0 <= ring.bytes <= max_bytes
    taken += [int.from_bytes(c.data[:4], "big") for c in ring.take(10**9, 10**12)]
    assert taken == accepted
    assert ring.events == 0 and ring.bytes == 0 and len(ring) == 0


def test_take_returns_one_oversized_chunk_rather_than_stall() -> None:
    """A chunk larger than the take limit still comes out, alone, so the pipeline never stalls."""
    ring = RingBuffer(100, 10_000)
    assert ring.offer(Chunk(b"x" * 900, 50))
    assert ring.offer(Chunk(b"y", 1))
    out = ring.take(max_events=10, max_bytes=100)
    assert [len(c.data) for c in out] == [900]
    assert ring.events == 1


def test_offer_refuses_what_would_exceed_either_bound() -> None:
    """The buffer says no instead of growing past its event or byte bound."""
    ring = RingBuffer(10, 100)
    assert ring.offer(Chunk(b"a" * 60, 5))
    assert not ring.offer(Chunk(b"b" * 60, 1))
    assert not ring.offer(Chunk(b"c", 6))
    assert ring.offer(Chunk(b"d" * 40, 5))
    assert (ring.events, ring.bytes) == (10, 100) and ring.fill == 1.0


def test_withdraw_takes_back_the_callers_own_chunk_not_an_equal_one() -> None:
    """Two requests with the same rows are two chunks: one giving up takes back its own, and the other stays
    in the ring with its future (before, an equal chunk ahead of it could be removed instead)."""
    ring = RingBuffer(100, 10_000)
    first, second = Chunk(b'{"a":1}\n', 1), Chunk(b'{"a":1}\n', 1)
    assert ring.offer(first) and ring.offer(second)
    assert ring.withdraw(second)
    taken = ring.take(100, 10_000)
    assert len(taken) == 1 and taken[0] is first
    assert not ring.withdraw(second) and ring.events == 0 and ring.bytes == 0
