"""Plausible's Events API body (`POST /api/event`), read the way Plausible's server reads it, as an obsd event.

Field names may be short or long (`n`/`name`, `u`/`url`, `d`/`domain`, `r`/`referrer`,
`p`/`props` (also the legacy `m`/`meta`), `$`/`revenue`, `i`/`interactive`, `h`/`hashMode`),
props and revenue may be objects or JSON strings. The rules and limits below are Plausible's
(lib/plausible/ingestion/request.ex and props.ex); obsd's own limits apply after them.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import msgspec

from obsd.ingest.wire import Event, WireError, gate
from obsd.vocabulary import site_domain

MAX_NAME = 120  # characters
MAX_URL_BYTES = 2000
MAX_REFERRER = 2000
MAX_PROPS = 30
MAX_PROP_KEY_BYTES = 300
MAX_PROP_VALUE_BYTES = 2000
MAX_ENGAGED_MS = 30 * 86_400_000  # Plausible ignores engaged times of 30 days or more
ENGAGEMENT_NAMES = frozenset({"engagement", "pageleave"})  # pageleave: older trackers' name for it
_CURRENCY = re.compile(r"[A-Z]{3}")
_decode = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class PlausibleEvent:
    """One tracker request: the obsd event it becomes and where it belongs."""

    event: Event
    domains: tuple[str, ...]  # canonical (see vocabulary.site_domain), in the order sent
    referrer: str | None
    hash_mode: bool
    version: str


def _first(body: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        v = body.get(k)
        if v is not None:
            return v
    return None


def _json_object(v: Any) -> dict[str, Any] | None:
    """An object, or a JSON string holding one (Plausible's decode_or_fallback); anything else is none."""
    if isinstance(v, str):
        try:
            v = _decode.decode(v)
        except msgspec.DecodeError:
            return None
    return v if isinstance(v, dict) else None


def _prop_text(v: Any) -> str | None:
    """A prop value as Plausible stores it (text), or None when Plausible drops it."""
    if isinstance(v, dict | list) or v is None:
        return None
    if isinstance(v, bool):
        text = "true" if v else "false"
    elif isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        text = str(int(v))
    else:
        text = str(v)
    return text if text.lstrip() else None


def read_props(raw: Any) -> dict[str, str]:
    """Plausible's props rules: maps and lists dropped, blanks dropped, text kept, at most 30, size-checked."""
    obj = _json_object(raw)
    if not obj:
        return {}
    out: dict[str, str] = {}
    for key, value in obj.items():
        text = _prop_text(value)
        if text is None or not key.lstrip():
            continue
        if len(key.encode()) > MAX_PROP_KEY_BYTES or len(text.encode()) > MAX_PROP_VALUE_BYTES:
            raise WireError("invalid_props", f"props: keys should have at most {MAX_PROP_KEY_BYTES} bytes and values "
                            f"{MAX_PROP_VALUE_BYTES} bytes (prop {key[:40]!r})")
        if len(out) < MAX_PROPS:
            out[key] = text
    return out


def read_revenue(raw: Any) -> tuple[float, str, str] | None:
    """(amount, amount as sent, currency) of a revenue object, or None: Plausible ignores invalid revenue."""
    obj = _json_object(raw)
    if not obj:
        return None
    amount, currency = obj.get("amount"), obj.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        return None
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        return None
    try:
        exact = Decimal(str(amount).strip())
    except InvalidOperation:
        return None
    value = float(exact)
    if not math.isfinite(value):
        return None
    return value, str(exact), currency


def _int(v: Any) -> int | None:
    """An integer or a numeric string as an integer (sd and e may be either), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"-?\d{1,12}", v.strip()):
        return int(v)
    return None


def read_domains(raw: Any, url_host: str) -> tuple[str, ...]:
    """The sites an event is for: `d` split on commas (multi-site roll-ups), else the URL's host."""
    if raw is None:
        one = site_domain(url_host)
        return (one,) if one else ()
    if not isinstance(raw, str) or not raw.strip():
        raise WireError("missing_domain", "domain can't be blank: send d (or domain) with the site's domain")
    out: list[str] = []
    for part in raw.split(","):
        d = site_domain(part)
        if d and d not in out:
            out.append(d)
    return tuple(out)


def parse_event(body: bytes, now: float, *, reject_duplicate_keys: bool = True) -> PlausibleEvent:
    """Read one tracker request into an obsd event; WireError (a 400) says what Plausible would refuse."""
    gate(body, duplicate_keys=reject_duplicate_keys)
    try:
        doc = _decode.decode(body)
    except msgspec.DecodeError as exc:
        raise WireError("invalid_json", f"Unable to parse request body as json: {exc}") from exc
    if not isinstance(doc, dict):
        raise WireError("invalid_json", "the body must be a JSON object like {\"n\": \"pageview\", \"u\": …, \"d\": …}")
    name = _first(doc, "n", "name")
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)  # "404" is often sent as a number
    if not isinstance(name, str) or not name:
        raise WireError("missing_name", "name can't be blank: send n (or name), e.g. \"pageview\"")
    if len(name) > MAX_NAME:
        raise WireError("field_too_long", f"name should be at most {MAX_NAME} characters")
    url = _first(doc, "u", "url")
    if not isinstance(url, str) or not url:
        raise WireError("missing_url", "url can't be blank: send u (or url) with the page's URL")
    if len(url.encode()) > MAX_URL_BYTES:
        raise WireError("field_too_long", f"url should be at most {MAX_URL_BYTES} bytes")
    scheme, sep, _ = url.partition(":")
    if not sep or scheme.lower() == "data":
        raise WireError("invalid_url", "url must be an absolute http(s) URL, not a data: URL")
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    domains = read_domains(_first(doc, "d", "domain"), host)
    referrer = _first(doc, "r", "referrer")
    referrer = referrer[:MAX_REFERRER] if isinstance(referrer, str) and referrer else None
    props: dict[str, Any] = dict(read_props(_first(doc, "m", "meta", "p", "props")))
    interactive = _first(doc, "i", "interactive")
    if interactive is False:
        props["interactive"] = False
    revenue = read_revenue(_first(doc, "$", "revenue"))
    value = None
    if revenue is not None:
        value = revenue[0]
        props["revenue_amount"], props["revenue_currency"] = revenue[1], revenue[2]
    fields: dict[str, Any] = {}
    if name == "pageview":
        type_ = "pageview"
    elif name in ENGAGEMENT_NAMES:
        type_, fields = _engagement(doc, props)
    else:
        type_, fields = "custom", {"name": name}
    event = Event(id=str(uuid.uuid4()), type=type_, ts=now * 1000, url=url, value=value, props=props or None,
                  **fields)
    version = _first(doc, "v")
    return PlausibleEvent(event, domains, referrer, _int(_first(doc, "h", "hashMode")) == 1,
                          str(version) if isinstance(version, int) and not isinstance(version, bool) else "")


def _engagement(doc: dict[str, Any], props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Engagement: scroll depth (sd, 0-100) and engaged time (e, ms); at least one must be valid."""
    depth, engaged = _int(doc.get("sd")), _int(doc.get("e"))
    if depth is not None and depth < 0:
        depth = None
    if engaged is not None and not 0 <= engaged < MAX_ENGAGED_MS:
        engaged = None
    if depth is None and engaged is None:
        raise WireError("invalid_engagement", "engagement event requires a valid integer value for at least one of "
                        "'sd' or 'e' fields")
    if engaged is not None:
        props["engaged_ms"] = engaged
    if depth is None:  # engaged time without a depth: kept as a named event, not as a 0% scroll
        return "custom", {"name": "engagement"}
    return "scroll", {"depth": float(min(depth, 100))}
