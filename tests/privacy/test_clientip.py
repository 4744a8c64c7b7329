"""Tests for obsd.privacy.clientip: X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obsd.privacy.clientip import ClientIpResolver, normalize_ip

RESOLVER = ClientIpResolver(["10.0.0.0/8", "192.168.1.1", "fd00::/8"])


def test_untrusted_peer_xff_is_ignored() -> None:
    """A client talking to obsd directly cannot pick its address with a forged header."""
    assert RESOLVER.resolve("203.0.113.9", "1.2.3.4") == "203.0.113.9"


def test_trusted_peer_forwards_the_client() -> None:
    """Behind a trusted reverse proxy the address it appended is the client."""
    assert RESOLVER.resolve("10.0.0.2", "198.51.100.7") == "198.51.100.7"


def test_spoofed_left_entries_are_skipped() -> None:
    """Entries the client wrote itself (left of the first untrusted hop) are never used."""
    assert RESOLVER.resolve("10.0.0.2", "6.6.6.6, 198.51.100.7") == "198.51.100.7"


def test_chains_of_trusted_proxies_are_walked() -> None:
    """Several trusted hops (CDN, then load balancer) are skipped from the right."""
    assert RESOLVER.resolve("192.168.1.1", "6.6.6.6, 198.51.100.7, 10.1.2.3, 10.9.9.9") == "198.51.100.7"


def test_invalid_entries_are_ignored() -> None:
    """Garbage such as "unknown" or empty items between commas does not stop the walk."""
    assert RESOLVER.resolve("10.0.0.2", "198.51.100.7, unknown, , not-an-ip") == "198.51.100.7"


def test_all_trusted_hops_give_the_leftmost() -> None:
    """When every hop is one of ours, the farthest known address is the client."""
    assert RESOLVER.resolve("10.0.0.2", "10.0.0.5, 10.0.0.4") == "10.0.0.5"


def test_only_garbage_falls_back_to_the_peer() -> None:
    """An XFF header with no usable address leaves the trusted peer as the client."""
    assert RESOLVER.resolve("10.0.0.2", "unknown, ") == "10.0.0.2"


def test_ports_brackets_and_mapped_addresses_are_normalised() -> None:
    """Proxies that add ports or IPv4-mapped IPv6 peers give the same canonical address."""
    assert RESOLVER.resolve("::ffff:10.0.0.1", "198.51.100.7:51234") == "198.51.100.7"
    assert RESOLVER.resolve("fd00::1", "[2001:DB8::1]:443") == "2001:db8::1"
    assert normalize_ip("::ffff:203.0.113.9") == "203.0.113.9"


def test_no_trusted_proxies_means_peer_only() -> None:
    """The default configuration never reads X-Forwarded-For."""
    assert ClientIpResolver().resolve("10.0.0.2", "1.2.3.4") == "10.0.0.2"


def test_missing_or_unparsable_peer_gives_empty_string() -> None:
    """A Unix-socket peer has no address, and XFF is not trusted in its place."""
    assert RESOLVER.resolve(None, "1.2.3.4") == ""
    assert RESOLVER.resolve("unix:/run/obsd.sock", "1.2.3.4") == ""


def test_bad_proxy_entries_fail_at_startup() -> None:
    """A typo in trusted_proxies raises naming the entry."""
    with pytest.raises(ValueError, match=r"10\.0\.0\.300"):
        ClientIpResolver(["10.0.0.300"])


ipv4 = st.ip_addresses(v=4).map(str)
any_ip = st.ip_addresses().map(str)


@given(any_ip, st.text(max_size=80))
def test_untrusted_peers_always_win(peer: str, xff: str) -> None:
    """Whatever the header says, an untrusted peer's own address is used."""
    resolver = ClientIpResolver(["10.0.0.0/8"])
    if resolver.is_trusted(peer):
        return
    assert resolver.resolve(peer, xff) == normalize_ip(peer)


@given(st.lists(st.one_of(any_ip, st.text(max_size=10)), max_size=6), ipv4)
def test_result_is_the_peer_or_an_xff_entry(entries: list[str], client: str) -> None:
    """Behind a trusted peer the answer is a valid address taken from the header or the peer."""
    xff = ", ".join([*entries, client])
    got = RESOLVER.resolve("10.0.0.1", xff)
    candidates = {normalize_ip(e) for e in [*entries, client]} | {"10.0.0.1"}
    assert got in candidates
    if not RESOLVER.is_trusted(client):
        assert got == normalize_ip(client)
