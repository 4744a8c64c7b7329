"""A small client for a running daemon's admin API, used by CLI commands while `obsd serve` runs."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from obsd.errors import ConfigError, DaemonError, QueryError
from obsd.privacy.access import TokenFileError, admin_token
from obsd.settings import Settings
from obsd.store.client import QueryResult


class DaemonClient:
    """Talks to /health and /v1/admin/* of the daemon named by the settings."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        host, port = settings.host_port
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        scheme = "https" if settings.server.tls_cert else "http"
        self.base = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
        try:
            self.token = admin_token(settings.server.admin_token, settings.data_dir, create=False)
        except TokenFileError as exc:
            raise ConfigError(str(exc)) from exc
        self.timeout = timeout
        self._ctx = ssl._create_unverified_context() if scheme == "https" else None  # loopback, own cert

    def _call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout, context=self._ctx) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("reason", exc.reason)
            except (ValueError, AttributeError):
                reason = exc.reason
            if path.startswith(("/v1/admin/query", "/v1/admin/purge")) and exc.code == 400:
                raise QueryError(str(reason)) from exc
            raise DaemonError(f"the daemon at {self.base} answered {exc.code}: {reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise DaemonError(f"cannot reach the daemon at {self.base}: {exc}") from exc

    def alive(self) -> bool:
        """True when an obsd daemon answers /health at the configured address."""
        try:
            return bool(self._call("GET", "/health", timeout=1.5).get("status") == "ok")
        except DaemonError:
            return False

    def query(self, sql: str, max_rows: int | None = None) -> QueryResult:
        """Run a read-only query through the daemon."""
        out = self._call("POST", "/v1/admin/query", {"sql": sql, "max_rows": max_rows})
        return QueryResult(out["columns"], out["types"], out["rows"], out.get("truncated", False))

    def stats(self, report: str, params: dict[str, Any]) -> dict[str, Any]:
        """A report from the daemon's query API (GET /v1/stats/<report>); list values repeat the parameter."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v}, doseq=True)
        result: dict[str, Any] = self._call("GET", f"/v1/stats/{report}" + (f"?{query}" if query else ""))
        return result

    def purge(self, project: str, before: str | None, session: str | None) -> dict[str, int]:
        """Erase rows through the daemon; rows deleted per table."""
        out = self._call("POST", "/v1/admin/purge", {"project": project, "before": before, "session": session})
        return dict(out["deleted"])

    def status(self) -> dict[str, Any]:
        """The daemon's status document."""
        result: dict[str, Any] = self._call("GET", "/v1/admin/status")
        return result
