"""A small GeoLite2-City-shaped .mmdb for tests, written with mmdb-writer (what MaxMind's format needs).

Broad networks go first: mmdb-writer replaces a whole subtree when a network is inserted after a more
specific one inside it. IPv4 networks live under ::/96 (`ipv4_compatible`), where maxminddb looks IPv4
up; real MaxMind files also alias ::ffff:0:0/96, this one does not (so obsd must look up the plain
IPv4 form of an IPv4-mapped address).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet


def city(iso: str, country: str, geoname: int, sub_iso: str = "", sub_name: str = "", city_name: str = "",
         city_id: int = 0) -> dict[str, Any]:
    """A record laid out like GeoLite2-City (geoname ids as uint32, as MaxMind writes them)."""
    rec: dict[str, Any] = {"country": {"iso_code": iso, "geoname_id": MmdbU32(geoname), "names": {"en": country}},
                           "location": {"latitude": 1.5, "longitude": 2.5, "accuracy_radius": 100}}
    if sub_iso:
        rec["subdivisions"] = [{"iso_code": sub_iso, "names": {"en": sub_name}}]
    if city_name:
        rec["city"] = {"geoname_id": MmdbU32(city_id), "names": {"en": city_name}}
    return rec


# (network, record, (country, region, city) obsd keeps, an address inside)
NETWORKS: list[tuple[str, dict[str, Any], tuple[str, str, str], str]] = [
    ("81.0.0.0/8", city("DE", "Germany", 2921044), ("DE", "", ""), "81.99.1.1"),
    ("81.2.69.0/24", city("GB", "United Kingdom", 2635167, "ENG", "England", "London", 2643743),
     ("GB", "GB-ENG", "London"), "81.2.69.142"),
    ("89.160.20.0/24", city("DE", "Germany", 2921044, "BE", "Land Berlin", "Berlin", 2950159),
     ("DE", "DE-BE", "Berlin"), "89.160.20.129"),
    ("216.160.83.56/29", city("US", "United States", 6252001, "WA", "Washington", "Milton", 5803556),
     ("US", "US-WA", "Milton"), "216.160.83.60"),
    ("2001:db8::/32", city("NL", "Netherlands", 2750405, "NH", "North Holland", "Amsterdam", 2759794),
     ("NL", "NL-NH", "Amsterdam"), "2001:db8::1"),
    ("2a02:e0::/29", city("FR", "France", 3017382, "IDF", "Île-de-France", "Paris", 2988507),
     ("FR", "FR-IDF", "Paris"), "2a02:e0:1::5"),
]


def build(path: Path) -> Path:
    """Write the fixture database to `path` (about 2 KB, well under a second)."""
    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"],
                   description={"en": "obsd test fixture (GeoLite2-City layout)"})
    for net, rec, _, _ in NETWORKS:
        w.insert_network(IPSet([net]), rec)
    w.to_db_file(str(path))
    return path
