"""Token-bucket rate limiting per key (project, client IP) with bounded memory."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Final

__all__ = ["TokenBucketLimiter", "client_key"]


class TokenBucketLimiter:
    """Allows `rate` units per second per key, bursts up to `burst`, remembering at most `max_keys` keys."""

    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of units per second, got {rate!r}")
        if not (burst >= 1 and math.isfinite(burst)):
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys!r}")
        self.rate: Final = float(rate)
        self.burst: Final = float(burst)
        self.max_keys: Final = max_keys
        self._clock: Final = clock
        # key -> [tokens, last refill time]; order is least recently used first.
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()
        self.refused = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, n: float = 1) -> float:
        """Take `n` units for `key`: return 0.0 when allowed, else the seconds to wait before retrying."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if n > self.burst:
                raise ValueError(f"cannot take {n} units at once from a bucket of burst {self.burst}")
            if len(self._buckets) >= self.max_keys:
                self._evict(now)
            self._buckets[key] = [self.burst - n, now]
            return 0.0
        self._buckets.move_to_end(key)
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens >= n:
            bucket[0] = tokens - n
            return 0.0
        if n > self.burst:
            raise ValueError(f"cannot take {n} units at once from a bucket of burst {self.burst}")
        bucket[0] = tokens
        self.refused += 1
        return (n - tokens) / self.rate

    def _evict(self, now: float) -> None:
        """Drop the least recently used bucket, plus any other old ones that have refilled completely."""
        buckets = self._buckets
        buckets.popitem(last=False)
        # Idle buckets are full again and equivalent to absent ones; drop a few more so eviction is amortised.
        for _ in range(16):
            if not buckets:
                break
            key, (tokens, last) = next(iter(buckets.items()))
            if tokens + (now - last) * self.rate < self.burst:
                break
            del buckets[key]


@lru_cache(maxsize=65_536)
def client_key(ip: str, ipv6_prefix: int = 64) -> str:
    """The rate-limit key of a client IP: IPv4 as is, IPv6 by its /ipv6_prefix network (a subscriber
    usually gets a whole /64 and can rotate addresses inside it at will)."""
    if ":" not in ip:
        return ip
    try:
        net = ipaddress.IPv6Network(f"{ip.split('%')[0]}/{ipv6_prefix}", strict=False)
    except ValueError:
        return ip
    return f"{net.network_address.compressed}/{ipv6_prefix}"
