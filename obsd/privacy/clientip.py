"""The client's IP address, taking X-Forwarded-For only from configured trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

__all__ = ["ClientIpResolver", "normalize_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=65_536)
def _parse(text: str) -> IPAddress | None:
    s = text.strip()
    if not s:
        return None
    if s.startswith("["):
        # "[2001:db8::1]:443" as some proxies write it.
        end = s.find("]")
        if end < 0:
            return None
        s = s[1:end]
    elif s.count(":") == 1:
        # "203.0.113.7:51234"
        s = s.partition(":")[0]
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=65_536)
def normalize_ip(text: str) -> str | None:
    """Return the canonical text of an IP address (IPv4-mapped IPv6 as IPv4, ports dropped), or None."""
    ip = _parse(text)
    return None if ip is None else ip.compressed


class ClientIpResolver:
    """Finds the client address behind a chain of trusted reverse proxies."""

    def __init__(self, trusted_proxies: Sequence[str] = ()) -> None:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in trusted_proxies:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                msg = f"trusted proxy {entry!r} is not an IP address or a CIDR like 10.0.0.0/8"
                raise ValueError(msg) from None
        self._networks: Final = tuple(networks)
        self.is_trusted: Final = lru_cache(maxsize=65_536)(self._check_trusted)

    def _check_trusted(self, address: str) -> bool:
        """Return whether an address belongs to a configured trusted proxy."""
        ip = _parse(address)
        return ip is not None and any(ip.version == n.version and ip in n for n in self._networks)

    def resolve(self, peer: str | None, x_forwarded_for: str | None) -> str:
        """Return the peer's IP, or behind trusted proxies the nearest untrusted X-Forwarded-For hop."""
        client = normalize_ip(peer) if peer else None
        if client is None:
            # A Unix socket or a broken transport: nothing to attribute, and no one vouches for XFF.
            return ""
        if not x_forwarded_for or not self._networks or not self.is_trusted(client):
            return client
        for hop in reversed(x_forwarded_for.split(",")):
            ip = normalize_ip(hop)
            if ip is None:
                continue
            client = ip
            if not self.is_trusted(ip):
                break
        return client
