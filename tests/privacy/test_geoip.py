"""GeoIP: country, region and city from a MaxMind-format file, looked up once per request, the IP never kept."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from obsd.errors import ConfigError
from obsd.ingest.enrich import Client, RowEncoder
from obsd.ingest.wire import WireDecoder
from obsd.privacy.geoip import NOWHERE, GeoIp, place_of
from obsd.privacy.visitor import VisitorHasher
from obsd.settings import Settings, load_settings
from tests import geoip
from tests.harness import Daemon, envelope, event, http


@pytest.fixture(scope="module")
def mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return geoip.build(tmp_path_factory.mktemp("geo") / "city.mmdb")


@pytest.mark.parametrize(("network", "want", "address"), [(n, w, a) for n, _, w, a in geoip.NETWORKS])
def test_lookups_keep_only_country_region_and_city(mmdb: Path, network: str, want: tuple[str, str, str],
                                                    address: str) -> None:
    """IPv4 and IPv6, a country-only network under a city one, non-ASCII names: three strings come back."""
    assert GeoIp(mmdb).place(address) == want


def test_ipv4_mapped_addresses_unknown_and_garbage(mmdb: Path) -> None:
    """::ffff:a.b.c.d is looked up as IPv4 (the fixture, like some files, has no alias for it); what the file
    does not hold, or what is no address, is nowhere."""
    g = GeoIp(mmdb)
    assert g.place("::ffff:81.2.69.142") == ("GB", "GB-ENG", "London")
    assert g.place("10.0.0.1") == NOWHERE
    assert g.place("not-an-ip") == NOWHERE
    assert g.place("") == NOWHERE
    assert place_of({"country": {"iso_code": "xx1"}}) == NOWHERE
    assert place_of({"country": {"iso_code": "de"}, "subdivisions": "bad"}) == ("DE", "", "")


def test_a_missing_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    """The setting names a file that must exist and be a MaxMind database; the error says what to do."""
    with pytest.raises(ConfigError, match=r"privacy\.geoip_db"):
        load_settings(None, environ={"OBSD_PRIVACY__GEOIP_DB": str(tmp_path / "nope.mmdb")})
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    settings = load_settings(None, environ={"OBSD_PRIVACY__GEOIP_DB": str(bad)})
    with pytest.raises(ConfigError, match="cannot be read as a MaxMind database"):
        RowEncoder(settings, VisitorHasher(None))


def _rows(settings: Settings, client: Client) -> list[dict[str, object]]:
    enc = RowEncoder(settings, VisitorHasher(None))
    body = json.dumps(envelope([event()])).encode()
    out = enc.encode("demo", WireDecoder(settings.limits).decode(body), client, time.time())
    return [json.loads(line) for line in out.data.splitlines()]


def test_the_encoder_fills_the_place_and_the_header_country_wins(mmdb: Path) -> None:
    """With geoip_db set every row gets the place; a CDN header's country wins (without the file's region)."""
    s = load_settings(None, environ={"OBSD_PRIVACY__GEOIP_DB": str(mmdb)})
    ua = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
    row = _rows(s, Client("89.160.20.129", ua))[0]
    assert (row["country"], row["region"], row["city"]) == ("DE", "DE-BE", "Berlin")
    assert "89.160.20.129" not in json.dumps(row)
    row = _rows(s, Client("89.160.20.129", ua, country="FR"))[0]
    assert (row["country"], row.get("region", ""), row.get("city", "")) == ("FR", "", "")
    row = _rows(s, Client("89.160.20.129", ua, server_side=True))[0]  # a server's own address: no lookup
    assert "country" not in row and "city" not in row


def test_every_protocol_gets_the_place_through_one_daemon(tmp_path: Path, mmdb: Path) -> None:
    """obsd's SDK and Plausible's tracker behind a trusted proxy: rows carry the place, no table holds the IP."""
    ip = "2001:db8::77"
    with Daemon(tmp_path, sections={"privacy": {"geoip_db": str(mmdb)},
                                    "server": {"trusted_proxies": ["127.0.0.1"]}},
                projects=[{"id": "demo", "write_key": "demo_write_key_0001", "domains": ["shop.example"]}]) as d:
        fwd = {"X-Forwarded-For": ip}
        assert d.post(envelope([event()], session_id="geo1"), key="demo_write_key_0001", headers=fwd).status == 202
        r = http("POST", d.base + "/api/event", json.dumps({"n": "pageview", "u": "https://shop.example/x",
                                                            "d": "shop.example"}).encode(),
                 {"Content-Type": "text/plain", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0", **fwd})
        assert r.status == 202
        assert d.wait_for("SELECT count() FROM obsd.events WHERE city = 'Amsterdam' AND region = 'NL-NH'", 2) == 2
        assert d.scalar("SELECT arraySort(groupUniqArray(protocol)) FROM obsd.events") == ["obsd", "plausible"]
        assert d.rows_containing(ip) == {}
