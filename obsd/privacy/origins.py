"""Origin allowlists: exact origins, `*.example.com` wildcards and `*`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final, NamedTuple

__all__ = ["Origin", "OriginPolicy", "parse_origin"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class Origin(NamedTuple):
    """A normalised origin: lower-case scheme and host, explicit port."""

    scheme: str
    host: str
    port: int


def _idna(host: str) -> str:
    if host.isascii():
        return host.lower()
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host.lower()


@lru_cache(maxsize=1024)
def parse_origin(value: str) -> Origin | None:
    """Parse `scheme://host[:port]` (as browsers send it), or return None when it is not one."""
    scheme, sep, rest = value.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        return None
    rest = rest.rstrip("/")
    if not rest or any(c in rest for c in "/?#@ \t"):
        return None
    host, port_text = rest, ""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            return None
        host, tail = rest[: end + 1], rest[end + 1 :]
        if tail:
            if not tail.startswith(":"):
                return None
            port_text = tail[1:]
    elif ":" in rest:
        host, _, port_text = rest.rpartition(":")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    else:
        port = _DEFAULT_PORTS[scheme]
    host = _idna(host).rstrip(".")
    if not host:
        return None
    return Origin(scheme, host, port)


class OriginPolicy:
    """Decides whether a browser origin may send events to a project."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self.allow_any: Final = any(a.strip() == "*" for a in allowed)
        exact: set[Origin] = set()
        # (scheme or None for any of http/https, ".suffix", port or None for the scheme's default)
        wildcards: list[tuple[str | None, str, int | None]] = []
        for raw in allowed:
            entry = raw.strip()
            if not entry or entry == "*":
                continue
            scheme: str | None = None
            rest = entry
            if "://" in entry:
                scheme, _, rest = entry.partition("://")
                scheme = scheme.lower()
            if rest.startswith("*."):
                host, _, port_text = rest[2:].rstrip("/").partition(":")
                bad_port = bool(port_text) and not port_text.isdigit()
                if scheme not in (None, *_DEFAULT_PORTS) or not host or bad_port:
                    raise ValueError(f"origin pattern {raw!r} is not like 'https://*.example.com'")
                port = int(port_text) if port_text else None
                wildcards.append((scheme, "." + _idna(host).rstrip("."), port))
                continue
            origin = parse_origin(entry if scheme else f"https://{entry}")
            if origin is None:
                msg = f"allowed origin {raw!r} is not like 'https://shop.example' or '*.example.com'"
                raise ValueError(msg)
            exact.add(origin)
            if scheme is None:
                exact.add(Origin("http", origin.host, 80 if origin.port == 443 else origin.port))
        self._exact: Final = frozenset(exact)
        self._wildcards: Final = tuple(wildcards)
        self._cache: dict[str | None, bool] = {}

    def allows(self, origin: str | None) -> bool:
        """Return whether a request with this Origin header is accepted (a missing header is)."""
        try:
            return self._cache[origin]
        except KeyError:
            pass
        verdict = self._decide(origin)
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[origin] = verdict
        return verdict

    def _decide(self, origin: str | None) -> bool:
        # No Origin header means no browser enforcing the same-origin policy (curl, a backend, a
        # sendBeacon from an old browser): refusing it adds no protection, the write key still applies.
        if origin is None or not origin.strip():
            return True
        if self.allow_any:
            return True
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        if parsed in self._exact:
            return True
        for scheme, suffix, port in self._wildcards:
            if scheme is not None and parsed.scheme != scheme:
                continue
            expected_port = port if port is not None else _DEFAULT_PORTS[parsed.scheme]
            host = parsed.host
            if parsed.port == expected_port and host.endswith(suffix) and len(host) > len(suffix):
                return True
        return False
