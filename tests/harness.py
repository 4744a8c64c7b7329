"""Test helpers: a real `obsd serve` on a free port with an embedded store in a temp dir, and event factories."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent  # the repository
WRITE_KEY = "test-write-key-0001"
ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table (goals, funnels)
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def write_config(path: Path, data_dir: Path, port: int, sections: dict[str, dict[str, Any]] | None = None,
                 top: dict[str, Any] | None = None, projects: list[dict[str, Any]] | None = None) -> Path:
    """Write an obsd.toml for a test daemon: embedded store in `data_dir`, one project by default."""
    sections = {k: dict(v) for k, v in (sections or {}).items()}
    sections.setdefault("server", {})
    sections["server"].setdefault("listen", f"127.0.0.1:{port}")
    sections["server"].setdefault("admin_token", ADMIN_TOKEN)
    origin = f"http://127.0.0.1:{port}"
    projects = projects or [{"id": "demo", "write_key": WRITE_KEY, "allowed_origins": [origin]}]
    lines = [f"data_dir = {_toml_value(str(data_dir))}", "auto_migrate = true", 'log_format = "json"']
    lines += [f"{k} = {_toml_value(v)}" for k, v in (top or {}).items()]
    for name, values in sections.items():
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    for p in projects:
        lines.append("\n[[projects]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in p.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def now_ms() -> int:
    """The current time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def event(type_: str = "pageview", **fields: Any) -> dict[str, Any]:
    """One wire-format event with a fresh id and the current time."""
    e: dict[str, Any] = {"id": str(uuid.uuid4()), "type": type_, "ts": now_ms()}
    if type_ == "web_vital":
        e.update(name="LCP", value=1200.0, rating="good")
    elif type_ == "custom":
        e.update(name="purchase", props={"amount": 42.5})
    elif type_ == "error":
        e.update(message="x is undefined", stack="TypeError: x is undefined\n  at f (app.js:1:2)")
    elif type_ == "scroll":
        e.update(depth=50)
    elif type_ == "click":
        e.update(selector="main > button.buy", tag="button")
    e.update(fields)
    return e


def envelope(events: list[dict[str, Any]], session_id: str = "s1", url: str = "https://shop.example/p/1",
             **extra: Any) -> dict[str, Any]:
    """A wire-format batch around some events."""
    env: dict[str, Any] = {
        "sdk": {"name": "obsd-js", "version": "0.1.0"}, "sent_at": now_ms(), "session_id": session_id,
        "context": {"url": url, "referrer": "https://www.google.com/", "title": "Product",
                    "language": "en-US", "timezone": "UTC", "screen": [1920, 1080], "viewport": [1280, 720]},
        "events": events,
    }
    env.update(extra)
    return env


class Response:
    """Status, headers and parsed JSON body of an HTTP answer."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30.0) -> Response:
    """One HTTP request; error statuses are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, dict(exc.headers), exc.read())


class Daemon:
    """A real `obsd serve` subprocess on a free loopback port, with an embedded store in a temp dir."""

    running: ClassVar[set[Daemon]] = set()  # started and not yet stopped: the suite kills leftovers

    def __init__(self, root: Path, *, sections: dict[str, dict[str, Any]] | None = None,
                 top: dict[str, Any] | None = None, projects: list[dict[str, Any]] | None = None,
                 port: int | None = None, env: dict[str, str] | None = None,
                 command: list[str] | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.data_dir = root / "data"
        self.config = write_config(root / "obsd.toml", self.data_dir, self.port, sections, top, projects)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "obsd.log"
        self.env = env or {}
        # How to run obsd: this interpreter's package by default, or e.g. an installed `obsd` script.
        self.command = command or [sys.executable, "-m", "obsd.cli"]

    def start(self, timeout: float = 60.0, wait_ready: bool = True) -> Daemon:
        """Start the daemon and wait until /health answers (and /ready, unless told not to)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        env = {**os.environ, **self.env}
        env.pop("OBSD_CONFIG", None)
        self.proc = subprocess.Popen(
            [*self.command, "serve", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
        )
        Daemon.running.add(self)
        deadline = time.monotonic() + timeout
        path = "/ready" if wait_ready else "/health"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"obsd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http("GET", self.base + path, timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"obsd did not become ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """What the daemon has logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def post(self, payload: Any, *, key: str = WRITE_KEY, gzip_body: bool = False,
             headers: dict[str, str] | None = None, raw: bytes | None = None, query: str = "") -> Response:
        """POST a batch to /v1/events."""
        body = raw if raw is not None else json.dumps(payload).encode()
        h = {"Content-Type": "application/json", **({"X-Obsd-Key": key} if key else {}), **(headers or {})}
        if gzip_body:
            body = gzip.compress(body)
            h["Content-Encoding"] = "gzip"
        return http("POST", f"{self.base}/v1/events{query}", body, h)

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a read-only query, through the admin API, as dicts."""
        r = http("POST", self.base + "/v1/admin/query", json.dumps({"sql": sql}).encode(),
                 {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"})
        if r.status != 200:
            raise AssertionError(f"query failed ({r.status}): {r.body.decode()}")
        out = r.json()
        return [dict(zip(out["columns"], row, strict=True)) for row in out["rows"]]

    def scalar(self, sql: str) -> Any:
        """The single value of a one-row, one-column query."""
        rows = self.query(sql)
        return next(iter(rows[0].values()))

    def wait_for(self, sql: str, expected: Any, timeout: float = 20.0) -> Any:
        """Poll a scalar query until it equals `expected`; return the last value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.scalar(sql)
            if value == expected:
                return value
            time.sleep(0.1)
        return value

    def rows_containing(self, needle: str) -> dict[str, int]:
        """Rows of every table in the obsd database whose text rendering contains `needle`, by table."""
        tables = [r["name"] for r in self.query(
            "SELECT name FROM system.tables WHERE database = 'obsd' AND engine LIKE '%MergeTree'")]
        found: dict[str, int] = {}
        quoted = needle.replace("\\", "\\\\").replace("'", "\\'")
        for t in tables:
            n = int(self.scalar(f"SELECT count() FROM obsd.{t} WHERE position(toString(tuple(*)), '{quoted}') > 0"))
            if n:
                found[t] = n
        return found

    def metrics(self) -> str:
        """The Prometheus exposition."""
        return http("GET", self.base + "/metrics").body.decode()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send a signal and wait for the process to exit; return its exit code."""
        Daemon.running.discard(self)
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        """kill -9: no chance to drain."""
        Daemon.running.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NotifyListener:
    """A unix datagram socket standing in for systemd's notify socket; records every message."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, prefix: str, after: int = 0, timeout: float = 30.0) -> int:
        """Index of the first message from `after` on that starts with `prefix`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (_, m) in enumerate(self.messages[after:], after):
                if m.startswith(prefix):
                    return i
            time.sleep(0.02)
        raise AssertionError(f"no {prefix!r} message after #{after}; got {[m for _, m in self.messages]}")

    def kinds(self) -> list[str]:
        return [m.split("\n")[0] for _, m in self.messages]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
