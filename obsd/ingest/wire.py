"""The wire contract: the envelope the SDK sends, decoded by msgspec and validated per event."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, cast

import jiter
import msgspec

from obsd.settings import LimitsSettings
from obsd.vocabulary import EVENT_TYPES, SESSION_ID_RULE, UUID_PATTERN, UUID_RULE, VITALS, EventType, is_session_id

T = TypeVar("T")
Rating = Literal["good", "needs-improvement", "poor", ""]
# What a field-level decode error means for the sender, by the field it is about.
_FIELD_REASONS = {
    "id": ("invalid_id", f"id must be {UUID_RULE}"),
    "type": ("unknown_type", f"unknown event type; expected one of {', '.join(sorted(EVENT_TYPES))}"),
    "rating": ("invalid_rating", "rating must be good, needs-improvement or poor"),
    "depth": ("invalid_depth", "scroll depth must be a percentage from 0 to 100"),
    "ts": ("invalid_ts", "ts must be a number of milliseconds since the epoch"),
}


class Sdk(msgspec.Struct, frozen=True):
    """Which SDK sent the batch."""

    name: str | None = None
    version: str | None = None


class Context(msgspec.Struct, frozen=True):
    """Page and device context shared by every event of a batch."""

    url: str | None = None
    referrer: str | None = None
    title: str | None = None
    language: str | None = None
    timezone: str | None = None
    screen: tuple[int, int] | None = None
    viewport: tuple[int, int] | None = None


class Event(msgspec.Struct, frozen=True):
    """One event; which fields matter depends on `type`."""

    id: str
    type: str
    ts: float
    url: str | None = None
    referrer: str | None = None
    title: str | None = None
    name: str | None = None
    value: float | None = None
    rating: str | None = None
    selector: str | None = None
    tag: str | None = None
    href: str | None = None
    depth: float | None = None
    message: str | None = None
    stack: str | None = None
    source: str | None = None
    line: int | None = None
    col: int | None = None
    props: dict[str, Any] | None = None
    entry: bool | None = None  # the first pageview of a visit (SDK 0.2+)


class _EnvelopeFields(msgspec.Struct, frozen=True, kw_only=True):
    """What a batch says besides its events."""

    sdk: Sdk = Sdk()
    sent_at: float | None = None
    session_id: str | None = None
    context: Context = Context()
    environment: str | None = None
    release: str | None = None
    dropped: int | None = None
    batch_id: str | None = None  # a UUID the SDK keeps across retries of one batch: a resend stores nothing
    session_start: float | None = None  # ms: when the session began (SDK 0.2+); its events' `entry` flags count


class Envelope(_EnvelopeFields, frozen=True, kw_only=True):
    """A batch of events as POSTed to /v1/events."""

    events: list[Event]


class _LooseEnvelope(_EnvelopeFields, frozen=True, kw_only=True):
    """The envelope with each event left undecoded, to find which events are bad."""

    events: list[msgspec.Raw]


class WireError(ValueError):
    """The body as a whole cannot be read; the message says why in the client's terms."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event refused at ingest: its index in the batch, a reason code and a human reason."""

    index: int
    code: str
    reason: str
    raw: bytes = b""


_encode = msgspec.json.encode
# jiter (pydantic's Rust JSON parser) refuses nesting deeper than this, in its own code, before any
# recursion in Python or in msgspec can happen; it is not configurable there, so it is named here.
MAX_NESTING = 200
# String fields of an event bounded by limits.max_string_length; checked by msgspec, in C, while decoding.
EVENT_STRINGS = ("url", "referrer", "title", "name", "rating", "selector", "tag", "href", "message", "source")
CONTEXT_STRINGS = ("url", "referrer", "title", "language", "timezone")


def _explain(exc: msgspec.ValidationError) -> tuple[str, str]:
    """A reason code and a sentence for an event that failed to decode, naming the field."""
    text = str(exc)
    m = re.search(r" - at `\$\.(\w+)", text)
    detail = text.split(" - at ")[0]
    field = m.group(1) if m else ""
    if field in _FIELD_REASONS:
        code, reason = _FIELD_REASONS[field]
        return code, f"{reason} ({detail})"
    if "length <=" in detail:
        return "field_too_long", f"{field} is too long: {detail}"
    return "invalid_field", _where(exc)


def _where(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    return text.replace("$.events", "events").replace(" - at `$`", "").replace("`$.", "`")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded body: the envelope with its well-formed events, and the events that were not."""

    envelope: Envelope
    indexes: list[int] | None  # the client's index of each event when some were dropped
    rejected: list[Rejected]

    def index(self, i: int) -> int:
        """The client's index of the i-th well-formed event."""
        return i if self.indexes is None else self.indexes[i]


class WireDecoder:
    """Decodes bodies into Envelopes, with string limits enforced by msgspec while it parses."""

    def __init__(self, limits: LimitsSettings) -> None:
        bounded = Annotated[str, msgspec.Meta(max_length=limits.max_string_length)]
        stack = Annotated[str, msgspec.Meta(max_length=max(limits.max_stack_length * 4, 65_536))]
        # The length too: msgspec searches the pattern with Python's re, whose $ also matches before a final
        # newline, and ClickHouse would refuse "<uuid>\n" at insert, after the 202.
        uuid = Annotated[str, msgspec.Meta(pattern=UUID_PATTERN, min_length=36, max_length=36)]
        depth = Annotated[float, msgspec.Meta(ge=0, le=100)]
        event = msgspec.defstruct(
            "Event", [("id", uuid), ("type", EventType), *((f, bounded | None, None) for f in EVENT_STRINGS),
                      ("rating", Rating | None, None), ("depth", depth | None, None),
                      ("stack", stack | None, None)], bases=(Event,), frozen=True)
        context = msgspec.defstruct("Context", [(f, bounded | None, None) for f in CONTEXT_STRINGS], bases=(Context,),
                                    frozen=True)
        envelope = msgspec.defstruct("Envelope", [("events", list[event]),  # type: ignore[valid-type]
                                                  ("context", context, Context()),
                                                  ("batch_id", uuid | None, None)],
                                     bases=(Envelope,), frozen=True, kw_only=True)
        loose = msgspec.defstruct("Envelope", [("context", context, Context()), ("batch_id", uuid | None, None)],
                                  bases=(_LooseEnvelope,), kw_only=True,
                                  frozen=True)
        # The built types subclass Envelope/_LooseEnvelope/Event, so they are read as those.
        self._envelope = msgspec.json.Decoder(cast(type[Envelope], envelope))
        self._loose = msgspec.json.Decoder(cast(type[_LooseEnvelope], loose))
        self._event = msgspec.json.Decoder(cast(type[Event], event))
        self.reject_duplicate_keys = limits.reject_duplicate_keys

    def _gate(self, body: bytes) -> None:
        gate(body, duplicate_keys=self.reject_duplicate_keys)

    def decode(self, body: bytes) -> Decoded:
        """The gate, then one msgspec call when all is well; per-event decoding only to locate bad events."""
        # msgspec and every Python walk after it recurse; only bodies the gate let through reach them.
        self._gate(body)
        try:
            env = _malformed_is_400(self._envelope.decode, body)
        except msgspec.ValidationError:
            pass
        else:
            return Decoded(env, None, [])
        try:
            loose = _malformed_is_400(self._loose.decode, body)
        except msgspec.ValidationError as exc:
            raise WireError("invalid_envelope", f"the envelope does not match the wire format: {_where(exc)}") from exc
        events: list[Event] = []
        rejected: list[Rejected] = []
        indexes: list[int] = []
        for i, raw in enumerate(loose.events):
            try:
                events.append(_malformed_is_400(self._event.decode, raw))
                indexes.append(i)
            except msgspec.ValidationError as exc:
                code, reason = _explain(exc)
                rejected.append(Rejected(i, code, f"event {i}: {reason}", bytes(raw)))
        fields = {f: getattr(loose, f) for f in _EnvelopeFields.__struct_fields__}
        env = Envelope(events=events, **fields)
        return Decoded(env, indexes, rejected)


def gate(body: bytes, *, duplicate_keys: bool = False) -> None:
    """One pass in Rust over a JSON document before msgspec (or any Python walk) sees it: syntax, nesting
    depth and, with `duplicate_keys`, keys repeated inside one object, each a WireError with a reason.
    Every protocol's JSON goes through it, so no input can reach Python recursion."""
    try:
        jiter.from_json(body, allow_inf_nan=False, cache_mode="keys", catch_duplicate_keys=duplicate_keys)
    except ValueError as exc:
        raise _gate_error(exc) from None


def _malformed_is_400(decode: Callable[[Any], T], data: Any) -> T:
    """Run a msgspec decode; malformed JSON or bad UTF-8 anywhere is the body's fault: WireError."""
    try:
        return decode(data)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError as exc:
        raise WireError("invalid_json", f"the body is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise WireError("invalid_json", f"the body is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc


_JITER_WHERE = re.compile(r" at (line \d+ column \d+)$")


def _gate_error(exc: ValueError) -> WireError:
    """jiter's message as a WireError: the code says what is wrong, the reason where."""
    text = str(exc)
    m = _JITER_WHERE.search(text)
    where = f" (at {m.group(1)})" if m else ""
    what = text[: m.start()] if m else text
    if what.startswith("recursion limit exceeded"):
        return WireError("nesting_too_deep", f"the body nests arrays or objects deeper than {MAX_NESTING} "
                         f"levels{where}; send flatter JSON")
    dup = re.match(r'Detected duplicate key "(.*)"$', what, re.S)
    if dup:
        return WireError("duplicate_key", f"the body repeats the key {dup.group(1)[:100]!r} inside one object"
                         f"{where}; each key may appear once")
    return WireError("invalid_json", f"the body is not valid JSON: {what[:200]}{where}")


class Validator:
    """Per-event checks against the configured limits; returns None for a good event, else a reason."""

    def __init__(self, limits: LimitsSettings) -> None:
        self.limits = limits

    def check_envelope(self, env: Envelope) -> None:
        """Raise WireError for envelope-level problems."""
        if env.session_id and not is_session_id(env.session_id):
            raise WireError("invalid_session_id", f"session_id must be {SESSION_ID_RULE}")

    def check(self, e: Event, now: float) -> tuple[str, str] | None:
        """None when the event is good, else (reason code, human reason)."""
        # id, type, rating, depth and string lengths were checked by WireDecoder while parsing.
        lim = self.limits
        age = now - e.ts / 1000
        if age > lim.max_event_age_s:
            return "ts_too_old", f"ts is more than {lim.max_event_age_s} s in the past (limits.max_event_age_s)"
        if age < -lim.max_future_s:
            return "ts_in_future", f"ts is more than {lim.max_future_s} s in the future; check the client clock"
        t = e.type
        if t == "web_vital":
            if e.name not in VITALS:
                return "invalid_vital", f"web_vital name must be one of {sorted(VITALS)}"
            if e.value is None or e.value < 0:
                return "invalid_value", "web_vital value must be a finite number ≥ 0"
        elif t == "custom":
            if not e.name:
                return "missing_name", "custom events need a name"
            if len(e.name) > 200:
                return "field_too_long", "custom event names are at most 200 characters"
        elif t == "error":
            if not e.message:
                return "missing_message", "error events need a message"
        elif t == "scroll" and e.depth is None:
            return "invalid_depth", "scroll events need a depth from 0 to 100"
        if e.props is not None:
            problem = self._check_props(e.props)
            if problem:
                return "invalid_props", problem
        return None

    def _check_props(self, props: dict[str, Any]) -> str | None:
        lim = self.limits
        if len(props) > lim.max_props_keys:
            return f"props has {len(props)} keys; the limit is {lim.max_props_keys}"
        if _depth(props) > lim.max_props_depth:
            return f"props nest deeper than {lim.max_props_depth} levels"
        if len(_encode(props)) > lim.max_props_bytes:
            return f"props are larger than {lim.max_props_bytes} bytes"
        return None


def _depth(v: Any, level: int = 1) -> int:
    if isinstance(v, dict):
        return max((_depth(x, level + 1) for x in v.values()), default=level)
    if isinstance(v, list):
        return max((_depth(x, level + 1) for x in v), default=level)
    return level - 1
