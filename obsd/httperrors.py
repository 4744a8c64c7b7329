"""One JSON error shape for every HTTP error: {"status": N, "error": code, "reason": text}."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from aiohttp import web

log = structlog.get_logger("obsd.http")
_encode = msgspec.json.encode


class HttpError(Exception):
    """An HTTP error answered with the JSON error shape."""

    def __init__(self, status: int, code: str, reason: str, *, retry_after: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.extra_headers = dict(headers or {})
        if retry_after is not None:
            self.extra_headers["Retry-After"] = str(retry_after)


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response encoded by msgspec."""
    return web.Response(body=_encode(body), status=status, headers=headers, content_type="application/json")


def error_response(status: int, code: str, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    """The one error shape."""
    return json_response({"status": status, "error": code, "reason": reason}, status=status, headers=headers)


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
          429: "rate_limited", 503: "unavailable"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn HttpError, aiohttp's HTTP exceptions and crashes into the JSON error shape."""
    try:
        return await handler(request)
    except HttpError as exc:
        return error_response(exc.status, exc.code, exc.reason, exc.extra_headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        reason = exc.reason if exc.text is None or exc.text.startswith(f"{exc.status}:") else exc.text
        if exc.status == 404 and reason == "Not Found":
            reason = (f"nothing at {request.method} {request.path[:200]}; obsd answers POST /v1/events, "
                      "GET /health, /ready, /metrics, /sdk.js, /demo, /dashboard and /v1/admin/*")
        elif exc.status == 405:
            allowed = headers.get("Allow", "")
            reason = f"{request.method} is not allowed on {request.path[:200]}; use {allowed or 'another method'}"
        return error_response(exc.status, _CODES.get(exc.status, "error"), reason or "error", headers)
    except Exception:
        log.exception("http.unhandled", path=request.path)
        return error_response(500, "internal_error", "obsd failed to handle this request; see its log")
