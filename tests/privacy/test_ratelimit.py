"""Tests for obsd.privacy.ratelimit: token buckets, Retry-After values and bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obsd.privacy.ratelimit import TokenBucketLimiter


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_burst_is_allowed_then_refused_with_retry_after() -> None:
    """A client may send `burst` requests at once, then is told how long to wait."""
    clock = Clock()
    limiter = TokenBucketLimiter(rate=2, burst=5, clock=clock)
    assert [limiter.take("ip") for _ in range(5)] == [0.0] * 5
    assert limiter.take("ip") == pytest.approx(0.5)
    assert limiter.refused == 1


def test_tokens_refill_at_the_configured_rate() -> None:
    """After waiting the advertised Retry-After the next request is accepted."""
    clock = Clock()
    limiter = TokenBucketLimiter(rate=10, burst=1, clock=clock)
    assert limiter.take("ip") == 0.0
    wait = limiter.take("ip")
    assert wait == pytest.approx(0.1)
    clock.t += wait
    assert limiter.take("ip") == 0.0


def test_refill_is_capped_at_burst() -> None:
    """A long idle period does not bank more than `burst` tokens."""
    clock = Clock()
    limiter = TokenBucketLimiter(rate=1, burst=3, clock=clock)
    limiter.take("ip")
    clock.t += 3600
    assert [limiter.take("ip") for _ in range(4)][-1] > 0


def test_keys_are_independent() -> None:
    """One noisy client does not use up another client's allowance."""
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=Clock())
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_weighted_takes_count_events() -> None:
    """A batch of n events takes n tokens, and the wait covers the whole batch."""
    limiter = TokenBucketLimiter(rate=100, burst=200, clock=Clock())
    assert limiter.take("project", 150) == 0.0
    assert limiter.take("project", 100) == pytest.approx(0.5)


def test_take_more_than_burst_is_a_configuration_error() -> None:
    """Asking for more than a bucket can ever hold raises instead of refusing forever."""
    limiter = TokenBucketLimiter(rate=1, burst=10, clock=Clock())
    with pytest.raises(ValueError, match="burst"):
        limiter.take("project", 11)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (float("inf"), 1), (1, float("nan"))])
def test_invalid_settings_are_rejected(rate: float, burst: float) -> None:
    """Zero, negative or non-finite rates and bursts fail at startup with a message."""
    with pytest.raises(ValueError):
        TokenBucketLimiter(rate=rate, burst=burst)


def test_memory_is_bounded_by_max_keys() -> None:
    """A flood of distinct client IPs never grows the table beyond max_keys."""
    clock = Clock()
    limiter = TokenBucketLimiter(rate=1, burst=5, max_keys=100, clock=clock)
    for i in range(10_000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
        clock.t += 0.001
    assert len(limiter) <= 100


def test_eviction_drops_the_least_recently_used_key() -> None:
    """An active client keeps its (empty) bucket while idle ones are forgotten first."""
    clock = Clock()
    limiter = TokenBucketLimiter(rate=0.001, burst=1, max_keys=3, clock=clock)
    limiter.take("busy")
    limiter.take("idle1")
    limiter.take("idle2")
    assert limiter.take("busy") > 0  # touched most recently now
    limiter.take("new")
    assert limiter.take("busy") > 0  # still remembered, still limited


@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0.1, 3)), max_size=60))
def test_never_more_than_burst_plus_rate_times_elapsed(steps: list[tuple[float, float]]) -> None:
    """Over any schedule of requests, accepted units never exceed burst + rate * elapsed time."""
    clock = Clock()
    start = clock.t
    limiter = TokenBucketLimiter(rate=2, burst=4, clock=clock)
    accepted = 0.0
    for dt, n in steps:
        clock.t += dt
        wait = limiter.take("k", n)
        assert wait >= 0
        if wait == 0:
            accepted += n
    assert accepted <= 4 + 2 * (clock.t - start) + 1e-9


def test_ipv6_clients_share_a_bucket_per_prefix() -> None:
    """Addresses inside one /64 are one client; another /64 is another; IPv4 stays per address."""
    from obsd.privacy.ratelimit import client_key

    a = client_key("2001:db8:1:2:aaaa::1")
    assert a == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != a
    assert client_key("2001:db8:1:2::1", 48) == client_key("2001:db8:1:ffff::1", 48)
    assert client_key("203.0.113.7") == "203.0.113.7"
    limiter = TokenBucketLimiter(rate=1, burst=2, max_keys=3)
    # Rotating through a /64 neither escapes the limit nor evicts other clients' buckets.
    limiter.take(client_key("198.51.100.1"))
    results = [limiter.take(client_key(f"2001:db8:0:1::{i:x}")) for i in range(1, 50)]
    assert results[:2] == [0.0, 0.0] and all(w > 0 for w in results[2:])
    assert len(limiter) == 2
