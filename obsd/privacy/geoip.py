"""Where a visitor is, from a MaxMind-format GeoIP database the operator provides: country, region, city.

Only those three are ever kept; the address is looked up and forgotten (obsd never stores an IP).
The database is read with `maxminddb` (MaxMind's reader: the C extension with mmap when built, pure
Python otherwise), so GeoLite2-City, GeoIP2-City and the country-only files all work, as do files made
by other tools in the same format (DB-IP, IPinfo's MMDB exports). Lookups take microseconds; a small
LRU keyed by the address string saves them for the many requests one visitor sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import maxminddb

from obsd.privacy.clientip import normalize_ip

__all__ = ["NOWHERE", "GeoIp", "Place"]

Place = tuple[str, str, str]  # (country ISO 3166-1 alpha-2, region ISO 3166-2 as "DE-BE", city name in English)
NOWHERE: Place = ("", "", "")
_CACHE = 16_384


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def place_of(record: Mapping[str, Any] | None) -> Place:
    """The country, region and city of a GeoLite2/GeoIP2 record ('' for what it does not say)."""
    if not isinstance(record, Mapping):
        return NOWHERE
    country_rec = record.get("country") or record.get("registered_country") or {}
    country = _text(country_rec.get("iso_code") if isinstance(country_rec, Mapping) else None, 3).upper()
    if len(country) != 2 or not country.isalpha():
        return NOWHERE
    region = ""
    subs = record.get("subdivisions")
    if isinstance(subs, list) and subs and isinstance(subs[0], Mapping):
        code = _text(subs[0].get("iso_code"), 3)
        region = f"{country}-{code}" if code else ""
    city_rec = record.get("city")
    names = city_rec.get("names") if isinstance(city_rec, Mapping) else None
    city = _text(names.get("en"), 100) if isinstance(names, Mapping) else ""
    return country, region, city


class GeoIp:
    """A GeoIP database opened once; `place(ip)` is safe to call from any thread."""

    def __init__(self, path: str | Path) -> None:
        """Open the database; OSError, ValueError or maxminddb.InvalidDatabaseError when it cannot be read."""
        self.path = str(path)
        self._reader = maxminddb.open_database(self.path)
        self.place = lru_cache(maxsize=_CACHE)(self._lookup)

    def _lookup(self, ip: str) -> Place:
        # Always the normalised address: IPv4-mapped IPv6 (::ffff:a.b.c.d) as plain IPv4, which is where
        # databases keep IPv4 networks; files without the ::ffff:0:0/96 alias would miss it otherwise.
        address = normalize_ip(ip)
        if address is None:
            return NOWHERE
        try:
            record = self._reader.get(address)
        except (ValueError, maxminddb.InvalidDatabaseError):  # IPv6 asked of an IPv4-only file; a corrupt record
            return NOWHERE
        return place_of(record if isinstance(record, Mapping) else None)
