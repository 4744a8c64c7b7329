"""Envelope decoding and per-event validation, as properties over generated batches."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from obsd.ingest.wire import MAX_NESTING, Validator, WireDecoder, WireError
from obsd.settings import LimitsSettings
from obsd.vocabulary import is_uuid
from tests.strategies import deeply_nested_bodies, invalid_event, nested_body, valid_event

decode = WireDecoder(LimitsSettings()).decode  # the default limits

NOW_MS = int(time.time() * 1000)


def _env(events: list[object]) -> bytes:
    return json.dumps({"session_id": "s1", "context": {"url": "https://a.example/"}, "events": events}).encode()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.data()), max_size=30))
def test_every_event_is_either_accepted_or_rejected_by_its_own_index(plan: list[tuple[bool, st.DataObject]]) -> None:
    """Good events survive decoding and validation; each bad one is reported at its index, none twice."""
    events = [data.draw(valid_event(NOW_MS) if good else invalid_event(NOW_MS)) for good, data in plan]
    decoded = decode(_env(events))
    validator = Validator(LimitsSettings())
    now = NOW_MS / 1000
    accepted = [decoded.index(i) for i, e in enumerate(decoded.envelope.events) if validator.check(e, now) is None]
    rejected = [r.index for r in decoded.rejected] + [
        decoded.index(i) for i, e in enumerate(decoded.envelope.events) if validator.check(e, now) is not None]
    assert sorted(accepted + rejected) == list(range(len(events)))
    assert accepted == [i for i, (good, _) in enumerate(plan) if good]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(body: bytes) -> None:
    """Any body either decodes or raises WireError with a reason, nothing else."""
    try:
        decode(body)
    except WireError as exc:
        assert exc.code in {"invalid_json", "invalid_envelope"} and str(exc)


def test_fast_path_keeps_client_indexes() -> None:
    """When every event decodes, indexes are the client's own."""
    d = decode(_env([{"id": "0b7e6c1e-1111-4222-8333-444455556666", "type": "pageview", "ts": NOW_MS}]))
    assert d.indexes is None and d.index(0) == 0 and d.rejected == []


@pytest.mark.parametrize("body, code", [
    (b"[1, 2]", "invalid_envelope"),
    (b'{"events": {}}', "invalid_envelope"),
    (b'{"events": [], "context": {"screen": "big"}}', "invalid_envelope"),
    (b'{"events": [NaN]}', "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
    (b'{"events": [{"id": "\xff\xfe", "type": "pageview", "ts": 1}]}', "invalid_json"),
    (b'{"events": [{"id": "a", "type": "b", "type": "c", "ts": 1}]}', "duplicate_key"),
    (b'{"events": [{"id": "a", "type": "web_vital", "ts": NaN}]}', "invalid_json"),  # invalid field, then bad JSON
    (b'{"events": [], "events": []}', "duplicate_key"),
])
def test_envelope_errors_name_the_problem(body: bytes, code: str) -> None:
    """Envelope-level problems refuse the whole body with a code."""
    with pytest.raises(WireError) as info:
        decode(body)
    assert info.value.code == code


def test_limits_refuse_oversized_and_deep_props() -> None:
    """Props over the key count, depth or size limits are refused with a reason naming the limit."""
    v = Validator(LimitsSettings(max_props_keys=3, max_props_depth=2, max_props_bytes=100))
    base = {"id": "0b7e6c1e-1111-4222-8333-444455556666", "type": "custom", "ts": NOW_MS, "name": "n"}
    now = NOW_MS / 1000
    for props, needle in [({"a": 1, "b": 2, "c": 3, "d": 4}, "keys"), ({"a": {"b": {"c": 1}}}, "deeper"),
                          ({"a": "x" * 200}, "bytes")]:
        ev = decode(_env([{**base, "props": props}])).envelope.events[0]
        problem = v.check(ev, now)
        assert problem is not None and needle in problem[1]
    ok = decode(_env([{**base, "props": {"a": {"b": 1}}}])).envelope.events[0]
    assert v.check(ok, now) is None


def test_null_is_accepted_wherever_a_string_may_be_absent() -> None:
    """Senders that write null for an absent context string, session or sdk field are not refused."""
    body = (b'{"session_id": null, "environment": null, "dropped": null, "sdk": {"name": null}, '
            b'"context": {"url": null, "referrer": null, "title": null, "language": null}, '
            b'"events": [{"id": "0b7e6c1e-1111-4222-8333-444455556666", "type": "pageview", "ts": 1, "url": null}]}')
    d = decode(body)
    assert d.rejected == [] and len(d.envelope.events) == 1
    assert d.envelope.context.referrer is None and d.envelope.session_id is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(valid_event(NOW_MS), invalid_event(NOW_MS)), min_size=1, max_size=5),
       st.integers(0, 10_000), st.sampled_from([b"NaN", b"\xff\xfe", b"}", b"[", b'"', b",,", b"\\u12", b""]),
       st.booleans())
def test_a_corrupted_body_is_refused_as_a_whole_never_a_crash(events: list[dict[str, object]], pos: int,
                                                              junk: bytes, dup_check: bool) -> None:
    """Junk spliced anywhere into a batch (after good or bad fields alike) decodes or raises WireError."""
    body = _env(events)
    at = pos % (len(body) + 1)
    broken = body[:at] + junk + body[at:]
    try:
        WireDecoder(LimitsSettings(reject_duplicate_keys=dup_check)).decode(broken)
    except WireError as exc:
        assert exc.code in {"invalid_json", "invalid_envelope", "duplicate_key", "nesting_too_deep"}


# The containers around the nested value at each position of deeply_nested_bodies(): the body's object, then
# `events` and the event (and `props`), or `context`.
WRAPPING = {"events": 2, "props": 4, "context": 2, "unknown_key": 1, "event_field": 3}


@settings(max_examples=150, deadline=None)
@given(deeply_nested_bodies())
@example((nested_body(197, "props"), 197, "props"))  # Hypothesis found it when the oracle assumed 2 levels
def test_nesting_at_any_depth_and_position_decodes_or_is_a_reason_never_recursion(case: tuple[bytes, int, str]) -> None:
    """Deep nesting anywhere is refused with nesting_too_deep exactly when the whole document nests deeper than
    MAX_NESTING; nothing reaches Python recursion."""
    body, depth, position = case
    total = depth + WRAPPING[position]
    try:
        decoded = decode(body)
    except WireError as exc:
        assert exc.code in {"nesting_too_deep", "invalid_envelope"}, (exc.code, str(exc))
        if exc.code == "nesting_too_deep":
            assert total > MAX_NESTING and str(MAX_NESTING) in str(exc)
        else:
            assert total <= MAX_NESTING
        return
    # Accepted bodies went through msgspec and the per-event checks without a RecursionError.
    assert total <= MAX_NESTING
    now = NOW_MS / 1000
    problems = [Validator(LimitsSettings()).check(e, now) for e in decoded.envelope.events]
    if position == "props":
        assert problems == [("invalid_props", "props nest deeper than 3 levels")] or depth <= 2


@pytest.mark.parametrize("depth", [MAX_NESTING - 5, MAX_NESTING + 1, 1000, 100_000])
def test_nesting_past_the_limit_is_one_reason_whatever_the_depth(depth: int) -> None:
    """1,000 or 100,000 levels cost the same: the gate stops at the limit (no recursion, no stack)."""
    body = b'{"events":' + b"[" * depth + b"]" * depth + b"}"
    if depth + 1 <= MAX_NESTING:
        decoded = decode(body)  # shallow enough to parse: the one "event" is refused by its index
        assert [r.index for r in decoded.rejected] == [0] and decoded.envelope.events == []
        return
    with pytest.raises(WireError) as info:
        decode(body)
    assert info.value.code == "nesting_too_deep" and "send flatter JSON" in str(info.value)


def test_duplicate_keys_are_found_through_escapes_and_at_any_depth() -> None:
    """A key spelled with a \\u escape is the same key; duplicates deep inside props are found too."""
    for body in (b'{"events": [], "ev\\u0065nts": []}',
                 b'{"events": [{"id": "a", "type": "custom", "ts": 1, "props": {"a": {"b": 1, "b": 2}}}]}'):
        with pytest.raises(WireError) as info:
            decode(body)
        assert info.value.code == "duplicate_key"
    relaxed = WireDecoder(LimitsSettings(reject_duplicate_keys=False))
    assert relaxed.decode(b'{"events": [], "events": []}').envelope.events == []


@pytest.mark.parametrize("tail", ["\n", "\r\n", " ", "0"])
def test_an_id_with_anything_after_the_uuid_is_refused_not_stored(tail: str) -> None:
    """Python's $ also matches before a final newline: an id or batch_id of a UUID plus a newline must be refused
    here with its index, not accepted and then refused by ClickHouse at insert after the 202."""
    good = "0b7e6c1e-8d2a-4c1e-9f3b-2a6d5c4b3a21"
    body = json.dumps({"session_id": "s1", "events": [{"id": good + tail, "type": "pageview", "ts": NOW_MS},
                                                      {"id": good, "type": "pageview", "ts": NOW_MS}]}).encode()
    decoded = decode(body)
    assert [(r.index, r.code) for r in decoded.rejected] == [(0, "invalid_id")]
    assert [e.id for e in decoded.envelope.events] == [good]
    with pytest.raises(WireError):
        decode(json.dumps({"session_id": "s1", "batch_id": good + tail, "events": []}).encode())
    assert not is_uuid(good + tail) and is_uuid(good)
