"""Sentry's envelope format and its authentication, read exactly as Sentry's Relay reads them.

Grammar (Sentry develop docs, "Envelopes"; Relay relay-server/src/envelope):

    Envelope = Headers { "\\n" Item } [ "\\n" ] ;
    Item     = Headers "\\n" Payload ;

- the envelope header line is required (it may be `{}`); an envelope may end right after it;
- an item with an integer `length` has exactly that many payload bytes, then "\\n" or the end;
- an item without `length` runs to the next "\\n" or the end; "\\r" is payload, never a newline;
- a header is a one-line JSON object; the byte after it must be "\\n" or the end.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from obsd.ingest.wire import WireError, gate

_decode = msgspec.json.Decoder()
_HEADER_END = b"}"
MAX_PROTOCOL_VERSION = 7


def _invalid(reason: str) -> WireError:
    return WireError("invalid_envelope", f"the envelope is malformed: {reason}")


@dataclass(frozen=True, slots=True)
class Item:
    """One envelope item: its headers (`type`, maybe `length`) and its payload bytes."""

    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        """The item type (`event`, `session`, …), '' when it has none."""
        t = self.headers.get("type")
        return t if isinstance(t, str) else ""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The envelope header (`event_id`, `dsn`, `sent_at`, `sdk`, …) and the items, in order."""

    headers: dict[str, Any]
    items: list[Item]


def _header(data: bytes, start: int, what: str) -> tuple[dict[str, Any], int]:
    """The JSON object on the line starting at `start`, and where that line ends."""
    nl = data.find(b"\n", start)
    end = len(data) if nl < 0 else nl
    line = data[start:end].lstrip(b" \t\r\n")
    if not line:
        raise _invalid(f"the {what} is missing" if what == "envelope header" else "unexpected end of file")
    try:
        gate(line)
        obj = _decode.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, WireError) as exc:
        raise _invalid(f"the {what} is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise _invalid(f"the {what} is not a JSON object")
    if not line.endswith(_HEADER_END):  # even a space or "\r" after the object: Relay wants "\n" or the end
        raise _invalid(f"missing newline after the {what}")
    return obj, end


def parse_envelope(data: bytes) -> Envelope:
    """Split an envelope into its header and items; WireError (a 400) where Relay would refuse it."""
    headers, offset = _header(data, 0, "envelope header")
    offset += 1
    items: list[Item] = []
    n = len(data)
    while offset < n:
        item_headers, header_end = _header(data, offset, "item header")
        start = min(header_end + 1, n)
        length = item_headers.get("length")
        if length is not None:
            if isinstance(length, bool) or not isinstance(length, int) or length < 0:
                raise _invalid(f"item length {str(length)[:20]!r} is not a byte count")
            end = start + length
            if end > n:
                raise _invalid(f"an item says it has {length} bytes but the envelope ends after {n - start}")
            if end < n and data[end:end + 1] != b"\n":
                raise _invalid("missing newline after an item's payload")
        else:
            nl = data.find(b"\n", start)
            end = n if nl < 0 else nl
        items.append(Item(item_headers, data[start:end]))
        offset = end + 1
    return Envelope(headers, items)


@dataclass(frozen=True, slots=True)
class SentryAuth:
    """Who sent a request: the DSN's public key (obsd's write key), and the protocol version and client."""

    key: str
    version: str = ""
    client: str = ""
    dsn_project: str = ""  # the project id of the envelope header's DSN, when that is how it authenticated


def _pairs(value: str) -> dict[str, str]:
    """`Sentry sentry_key=…, sentry_version=7, sentry_client=…` as a dict."""
    out: dict[str, str] = {}
    for part in value.strip()[7:].split(","):
        k, eq, v = part.partition("=")
        if eq:
            out[k.strip()] = v.strip()
    return out


def _found(headers: Mapping[str, str], query: Mapping[str, str]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for name in ("X-Sentry-Auth", "Authorization"):
        value = headers.get(name, "")
        if value[:7].lower() == "sentry ":
            found.append(_pairs(value))
    value = headers.get("Authorization", "")
    if value[:6].lower() == "basic ":
        try:
            found.append({"sentry_key": base64.b64decode(value[6:], validate=True).decode().partition(":")[0]})
        except (binascii.Error, UnicodeDecodeError):
            raise WireError("invalid_auth", "the Authorization header is not Basic base64(<key>:)") from None
    if any(k.startswith("sentry_") for k in query):
        found.append({k: v for k, v in query.items() if k.startswith("sentry_")})
    return found


def dsn_key(dsn: str) -> tuple[str, str] | None:
    """(public key, project id) of a DSN such as https://KEY@obsd.example/42, or None."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return None
    key = (parts.username or "").strip()
    project = parts.path.rstrip("/").rpartition("/")[2]
    return (key, project) if key and project.isdigit() else None


def request_auth(headers: Mapping[str, str], query: Mapping[str, str], envelope_dsn: Any = None) -> SentryAuth | None:
    """The request's credentials as Relay finds them: one of X-Sentry-Auth, Authorization or the query string,
    else (envelopes only) the envelope header's `dsn`. None when there are none; WireError when they conflict."""
    found = _found(headers, query)
    if len(found) > 1:
        raise WireError("multiple_auth", "the request carries credentials in more than one place (X-Sentry-Auth, "
                        "Authorization, query string); send them once")
    auth = found[0] if found else {}
    version = auth.get("sentry_version", "")
    if version and (not version.isdigit() or int(version) > MAX_PROTOCOL_VERSION):
        raise WireError("unsupported_version", f"sentry_version {version[:10]!r} is not supported; obsd speaks "
                        f"version {MAX_PROTOCOL_VERSION} and below")
    key = auth.get("sentry_key", "")
    dsn_project = ""
    if isinstance(envelope_dsn, str) and envelope_dsn:
        parsed = dsn_key(envelope_dsn)
        if parsed is None:
            raise WireError("invalid_auth", "the envelope header's dsn is not a DSN like https://KEY@host/42")
        if key and key != parsed[0]:
            raise WireError("auth_mismatch", "the envelope header's dsn names another key than the request")
        key, dsn_project = parsed
    if not key:
        return None
    return SentryAuth(key, version, auth.get("sentry_client", ""), dsn_project)
