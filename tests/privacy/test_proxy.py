"""Behind a real reverse proxy (Debian's nginx) on the same host: the documented sample keeps admin, stats,
metrics and the dashboard private, and obsd itself treats relayed internet clients as remote."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ADMIN_TOKEN, ROOT, WRITE_KEY, Daemon, envelope, event, free_port, http
from tests.needs import NGINX, missing_nginx, need

INTERNET = "203.0.113.7"  # a documentation address standing in for a visitor on the internet


def sample_server_block(obsd_port: int, listen_port: int) -> str:
    """The nginx sample of docs/security.md, on loopback without TLS, pointed at the test's obsd."""
    doc = (ROOT / "docs" / "security.md").read_text()
    block = re.search(r"```nginx\n(.*?)```", doc, re.S)
    assert block, "docs/security.md has no nginx sample"
    lines = []
    for line in block.group(1).splitlines():
        if re.match(r"\s*(ssl_certificate|http2|server_name)", line):
            continue
        line = re.sub(r"listen 443 ssl;", f"listen 127.0.0.1:{listen_port};", line)
        lines.append(line.replace("127.0.0.1:8080", f"127.0.0.1:{obsd_port}"))
    return "\n".join(lines)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Daemon, str, str]]:
    """obsd behind nginx: (daemon, URL of the documented sample, URL of a proxy that forwards everything)."""
    need(missing_nginx())
    d = Daemon(tmp_path / "obsd", sections={"pipeline": {"batch_interval_ms": 50},
                                            "server": {"trusted_proxies": ["127.0.0.1"]}})
    d.start()
    sample_port, open_port = free_port(), free_port()
    ng = tmp_path / "nginx"
    ng.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = ng / "nginx.conf"
    conf.write_text(f"""{user}worker_processes 1;
daemon off;
pid {ng}/nginx.pid;
error_log {ng}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {ng}/access.log;
    client_body_temp_path {ng}/body; proxy_temp_path {ng}/proxy; fastcgi_temp_path {ng}/fastcgi;
    uwsgi_temp_path {ng}/uwsgi; scgi_temp_path {ng}/scgi;
    # The test plays internet visitors: nginx takes the client address from this header, exactly as
    # if the TCP connection had come from there.
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Test-Client;
{sample_server_block(d.port, sample_port)}
    server {{
        listen 127.0.0.1:{open_port};
        location / {{
            proxy_pass http://127.0.0.1:{d.port};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Host $host;
        }}
    }}
}}
""")
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(ng), "-e", str(ng / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if http("GET", f"http://127.0.0.1:{sample_port}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (ng / "error.log").read_text()
            time.sleep(0.1)
        else:
            raise TimeoutError((ng / "error.log").read_text())
        yield d, f"http://127.0.0.1:{sample_port}", f"http://127.0.0.1:{open_port}"
    finally:
        proc.terminate()
        proc.wait(10)
        d.stop()


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PRIVATE = [("POST", "/v1/admin/query", json.dumps({"sql": "SELECT 1"}).encode()), ("GET", "/v1/admin/status", None),
           ("GET", "/v1/stats", None), ("GET", "/v1/stats/overview", None), ("GET", "/metrics", None),
           ("GET", "/v1/admin/tail", None)]


def test_the_documented_nginx_sample_keeps_private_routes_private(proxied: tuple[Daemon, str, str]) -> None:
    """Through the sample: ingestion works, and admin, stats, metrics and the dashboard are 404, also
    when the path is disguised."""
    d, sample, _ = proxied
    visitor = {"X-Test-Client": INTERNET, "Content-Type": "application/json", "X-Obsd-Key": WRITE_KEY}
    r = http("POST", sample + "/v1/events", json.dumps(envelope([event()], session_id="via-nginx")).encode(),
             visitor)
    assert r.status == 202
    assert http("GET", sample + "/sdk.js").status == 200
    for method, path, body in [*PRIVATE, ("GET", "/dashboard", None), ("GET", "//v1/admin/status", None),
                               ("GET", "/v1/%61dmin/status", None), ("GET", "/v1/x/../admin/status", None),
                               ("GET", "/metrics/", None)]:
        r = http(method, sample + path, body, {**ADMIN, "X-Test-Client": INTERNET})
        assert r.status == 404 and b"obsd" not in r.body.lower(), (path, r.status)  # nginx's, not obsd's
    assert d.wait_for("SELECT count() FROM obsd.events WHERE session_id = 'via-nginx'", 1) == 1
    assert d.rows_containing(INTERNET) == {}


def test_obsd_refuses_relayed_internet_clients_even_when_the_proxy_forwards_everything(
        proxied: tuple[Daemon, str, str]) -> None:
    """A proxy that forwards every path: a relayed internet client gets 403 for admin, stats, tail and
    metrics, with the right token; a client on the host itself still gets through."""
    d, _, everything = proxied
    for method, path, body in PRIVATE:
        r = http(method, everything + path, body, {**ADMIN, "X-Test-Client": INTERNET})
        assert r.status == 403, (path, r.status, r.body[:200])
        assert r.json()["error"] in ("admin_remote", "metrics_remote")
    for method, path, body in PRIVATE[:5]:
        r = http(method, everything + path, body, {**ADMIN, "X-Test-Client": "127.0.0.1"})
        assert r.status == 200, (path, r.status, r.body[:200])
    # Ingestion through the same proxy counts each visitor by the forwarded address.
    for ip in (INTERNET, "198.51.100.9"):
        r = http("POST", everything + "/v1/events", json.dumps(envelope([event()], session_id="fwd")).encode(),
                 {"X-Test-Client": ip, "Content-Type": "application/json", "X-Obsd-Key": WRITE_KEY})
        assert r.status == 202
    assert d.wait_for("SELECT count() FROM obsd.events WHERE session_id = 'fwd'", 2) == 2
    assert d.scalar("SELECT uniqExact(visitor_id) FROM obsd.events WHERE session_id = 'fwd'") == 2
