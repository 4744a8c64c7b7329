"""A Sentry `event` item as an obsd error event, so a Sentry error and an obsd SDK error of one bug group together.

obsd's error fingerprint hashes the message, the first three frame lines of the stack and the
source file (migrations/0002, errors_hourly). obsd's SDK sends the browser's own `error.stack`;
Sentry's browser SDK parses that same string into frames (oldest first). Rendering the frames
back, newest first and in the sending engine's format, gives the string the browser printed,
byte for byte for V8 (checked against captures of @sentry/browser), so both land in one group.
Server SDKs (Python, …) are rendered in the V8 layout with `module.function`, so their frames are
frames to the fingerprint too. Never read: `user`, IP addresses, request headers other than
User-Agent, cookies, query strings outside the URL allowlist, frame variables and source lines.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from obsd.ingest.wire import Event, Sdk, WireError, gate
from obsd.settings import LimitsSettings
from obsd.vocabulary import is_session_id

V8 = "v8"  # Chrome, Edge, Opera, Node: "    at fn (url:line:col)", after a "Type: message" line
GECKO = "gecko"  # Firefox and Safari: "fn@url:line:col", no header line
NON_ERROR = "Non-Error promise rejection captured with value: "  # Sentry's words
OBSD_NON_ERROR = "Non-Error promise rejection: "  # obsd's SDK's words for the same thing
MAX_TAG_KEY, MAX_TAG_VALUE = 32, 200  # Sentry's own tag limits
CLOCK_DRIFT_S = 55 * 60  # Relay corrects an event's time only when the sender's clock is off by this much
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


_NULL = msgspec.Raw(b"null")


class SentryEvent(msgspec.Struct):
    """The parts of a Sentry event obsd reads; everything else (user, breadcrumbs, …) is never decoded.

    request, contexts and sdk stay raw bytes until the few fields obsd wants are read from them."""

    event_id: Any = None
    timestamp: Any = None
    platform: Any = None
    level: Any = None
    logger: Any = None
    release: Any = None
    environment: Any = None
    message: Any = None
    logentry: Any = None
    exception: Any = None
    tags: Any = None
    request: msgspec.Raw = _NULL
    contexts: msgspec.Raw = _NULL
    sdk: msgspec.Raw = _NULL


class _Request(msgspec.Struct):
    url: Any = None
    headers: Any = None  # an object, or [name, value] pairs; only User-Agent is read


class _Trace(msgspec.Struct):
    trace_id: Any = None


class _Contexts(msgspec.Struct):
    trace: _Trace | None = None


class _Sdk(msgspec.Struct):
    name: Any = None
    version: Any = None


_decode_event = msgspec.json.Decoder(SentryEvent)
_decode_request = msgspec.json.Decoder(_Request | None)
_decode_contexts = msgspec.json.Decoder(_Contexts | None)
_decode_sdk = msgspec.json.Decoder(_Sdk | None)
T = TypeVar("T")


def _part(decoder: msgspec.json.Decoder[T | None], raw: msgspec.Raw) -> T | None:
    """A sub-object decoded into the few fields obsd reads; None when it is absent or not that shape."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError:
        return None


@dataclass(frozen=True, slots=True)
class SentryError:
    """An obsd error event and the envelope fields it carries (release, environment, SDK, trace as session)."""

    event: Event
    event_id: str  # 32 hex, as Sentry answers it
    release: str | None
    environment: str | None
    sdk: Sdk
    session_id: str | None
    user_agent: str | None  # the visitor's browser as the event's request saw it
    server_side: bool


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def seconds(v: Any) -> float | None:
    """A Sentry timestamp (float seconds or RFC 3339) as seconds since the epoch, or None."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v) if 0 < v < 1e11 else None
    if isinstance(v, str) and v:
        text = v.strip().replace("Z", "+00:00")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return seconds(float(text))
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            return None
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()  # Sentry's times without a zone are UTC
    return None


def engine_for(user_agent: str) -> str:
    """Which stack format the sending browser writes: Firefox and every WebKit browser (Safari, iOS) use fn@url."""
    if "Firefox/" in user_agent or "FxiOS" in user_agent or "CriOS" in user_agent:
        return GECKO
    if "Safari/" in user_agent and not any(m in user_agent for m in ("Chrome/", "Chromium/", "HeadlessChrome/")):
        return GECKO
    return V8


def _location(frame: dict[str, Any]) -> str:
    loc = _str(frame.get("abs_path")) or _str(frame.get("filename"))
    line, col = _int(frame.get("lineno")), _int(frame.get("colno"))
    if line is not None:
        loc += f":{line}"
        if col is not None:
            loc += f":{col}"
    return loc


def render_frame(frame: dict[str, Any], engine: str, *, qualify: bool = False) -> str:
    """One frame as the engine prints it (`qualify`: prefix the module, for server SDKs)."""
    fn = _str(frame.get("function")) or "?"
    module = _str(frame.get("module"))
    if qualify and module:
        fn = f"{module}.{fn}"
    loc = _location(frame)
    if engine == GECKO:
        return f"{'' if fn == '?' else fn}@{loc}"
    return f"    at {loc}" if fn == "?" else f"    at {fn} ({loc})"  # V8 prints no name for anonymous code


def _frames(exc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """An exception's stack frames as Sentry sends them, oldest first (the ones that are objects)."""
    return [f for f in (_dict((exc or {}).get("stacktrace")).get("frames") or []) if isinstance(f, dict)]


def render_stack(exc: dict[str, Any], engine: str, *, header: bool, qualify: bool = False) -> tuple[str, list[int]]:
    """The stack a runtime would print for an exception (newest frame first), and the indexes of the
    frames the SDK marked as not the app's own code (in_app: false)."""
    frames = _frames(exc)[::-1]
    if not frames:
        return "", []  # obsd's SDK sends no stack either when the runtime gave none (a rejected string)
    lines = [render_frame(f, engine, qualify=qualify) for f in frames]
    library = [i for i, f in enumerate(frames) if f.get("in_app") is False]
    if header and engine == V8:
        t, v = _str(exc.get("type")), _str(exc.get("value"))
        lines.insert(0, f"{t}: {v}" if t and v else (t or v))
    return "\n".join(lines), library


def _message_text(ev: SentryEvent) -> str:
    for m in (ev.logentry, ev.message):
        if isinstance(m, str) and m:
            return m
        if isinstance(m, dict):
            text = _str(m.get("formatted")) or _str(m.get("message"))
            if text:
                return text
    return ""


def _tags(raw: Any) -> dict[str, str]:
    """Tags as an object or as [key, value] pairs (both are Sentry's), stringified within Sentry's limits."""
    pairs: list[Any] = []
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [p for p in raw if isinstance(p, list) and len(p) == 2]
    out: dict[str, str] = {}
    for k, v in pairs:
        if isinstance(k, str) and isinstance(v, str | int | float | bool) and k:
            out[k[:MAX_TAG_KEY]] = str(v)[:MAX_TAG_VALUE]
    return out


def _fit(props: dict[str, Any], tags: dict[str, str], budget: int) -> None:
    """Add tags to props while the encoded props stay within `budget` bytes (obsd's props limit)."""
    used = len(msgspec.json.encode(props)) + len(b',"tags":{}')
    kept: dict[str, str] = {}
    for k, v in tags.items():
        size = len(msgspec.json.encode(k)) + len(msgspec.json.encode(v)) + 2
        if used + size > budget:
            props["tags_dropped"] = len(tags) - len(kept)
            break
        kept[k] = v
        used += size
    if kept:
        props["tags"] = kept


def gated(payload: bytes, code: str, what: str, *, duplicate_keys: bool = False) -> None:
    """The JSON gate for an envelope item: nesting and repeated keys keep their codes, any other fault is
    `code` ("… is not JSON")."""
    try:
        gate(payload, duplicate_keys=duplicate_keys)
    except WireError as exc:
        if exc.code != "invalid_json":
            raise
        raise WireError(code, f"{what} is not JSON: {exc}") from exc


def read_event(payload: bytes, *, now: float, sent_at: float | None, request_ua: str, limits: LimitsSettings,
               header_sdk: Any = None) -> SentryError:
    """Turn one event item into an obsd error event; WireError when the item is not a JSON object."""
    gated(payload, "invalid_event", "an event item", duplicate_keys=limits.reject_duplicate_keys)
    try:
        ev = _decode_event.decode(payload)
    except msgspec.DecodeError as exc:
        raise WireError("invalid_event", f"an event item is not a JSON object: {exc}") from exc
    platform = _str(ev.platform) or "other"
    request = _part(_decode_request, ev.request) or _Request()
    headers = request.headers
    if isinstance(headers, list):
        headers = {h[0]: h[1] for h in headers if isinstance(h, list) and len(h) == 2 and isinstance(h[0], str)}
    event_ua = _str(headers.get("User-Agent")) if isinstance(headers, dict) else ""
    server_side = platform != "javascript" or request_ua.startswith("sentry")
    engine = V8 if server_side else engine_for(request_ua or event_ua)
    values = [v for v in (_dict(ev.exception).get("values") or []) if isinstance(v, dict)]
    main = values[-1] if values else None  # the main exception comes last; linked causes precede it
    mechanism = _dict((main or {}).get("mechanism"))
    mtype = _str(mechanism.get("type"))
    synthetic = main is None or mechanism.get("synthetic") is True
    stack, library = render_stack(main, engine, header=not synthetic, qualify=server_side) if main else ("", [])
    text = _message_text(ev)
    if not synthetic and main is not None:
        message = _str(main.get("value")) or _str(main.get("type"))
        if mtype.endswith("onunhandledrejection") and message.startswith(NON_ERROR):
            message = OBSD_NON_ERROR + message[len(NON_ERROR):]
    else:
        message = text or _str((main or {}).get("value"))
    message = (message or text or "<unlabeled event>")[: limits.max_string_length]
    frames = _frames(main)
    top = frames[-1] if frames else {}
    # obsd's SDK knows a source file only for window errors (ErrorEvent.filename), never for rejections.
    source = "" if synthetic or mtype.endswith("onunhandledrejection") else \
        _str(top.get("abs_path")) or _str(top.get("filename"))
    if source.startswith("<"):  # <anonymous>, <data:…>: not a file
        source = ""
    props: dict[str, Any] = {"level": _str(ev.level) or "error"}
    if mtype:
        props["mechanism"] = mtype[:100]
    if isinstance(mechanism.get("handled"), bool):
        props["handled"] = mechanism["handled"]
    if main is not None and _str(main.get("type")):
        props["exception_type"] = _str(main.get("type"))[:200]
    if _str(ev.logger):
        props["logger"] = _str(ev.logger)[:200]
    if library:
        props["frames_not_in_app"] = library[:100]
    ts = _event_time(ev.timestamp, now, sent_at, limits, props)
    _fit(props, _tags(ev.tags), limits.max_props_bytes)
    event_id = _str(ev.event_id).replace("-", "").lower()
    if not _HEX32.fullmatch(event_id):
        event_id = uuid.uuid4().hex
    url = _str(request.url)[: limits.max_string_length] or None
    event = Event(id=str(uuid.UUID(event_id)), type="error", ts=ts * 1000, url=url, message=message,
                  stack=stack or None, source=source[: limits.max_string_length] or None,
                  line=_int(top.get("lineno")), col=_int(top.get("colno")), props=props)
    fallback = _dict(header_sdk)
    sdk = _part(_decode_sdk, ev.sdk) or _Sdk(fallback.get("name"), fallback.get("version"))
    contexts = _part(_decode_contexts, ev.contexts)
    trace_id = _str(contexts.trace.trace_id) if contexts and contexts.trace else ""
    return SentryError(event, event_id, _str(ev.release) or None, _str(ev.environment) or None,
                       Sdk(_str(sdk.name) or None, _str(sdk.version) or None),
                       trace_id if trace_id and is_session_id(trace_id) else None,
                       event_ua or None, server_side)


def _event_time(raw: Any, now: float, sent_at: float | None, limits: LimitsSettings, props: dict[str, Any]) -> float:
    """The event's time: as sent, shifted when the sender's clock is far off (as Relay does), kept in range."""
    ts = seconds(raw) or now
    if sent_at is not None and abs(now - sent_at) >= CLOCK_DRIFT_S:
        ts += now - sent_at
    if not now - limits.max_event_age_s < ts < now + limits.max_future_s:
        props["timestamp_adjusted"] = True  # Relay also clamps rather than drop: the error still happened
        ts = now
    return ts
