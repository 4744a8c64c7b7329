"""Hypothesis strategies shared by the test suite."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import strategies as st

EVENT_TYPES = ("pageview", "click", "scroll", "error", "web_vital", "custom")

uuids = st.builds(lambda: str(uuid.uuid4())) | st.uuids().map(str)
short_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | \
    st.floats(allow_nan=False, allow_infinity=False) | short_text


def valid_event(now_ms: int) -> st.SearchStrategy[dict[str, Any]]:
    """Events that obsd must accept."""
    base = st.fixed_dictionaries({
        "id": uuids,
        "ts": st.integers(now_ms - 3_600_000, now_ms + 60_000),
        "url": st.sampled_from(["https://shop.example/", "https://shop.example/p/1?utm_source=x", None]),
    })
    per_type = st.one_of(
        st.just({"type": "pageview"}),
        st.fixed_dictionaries({"type": st.just("click"), "selector": short_text, "tag": st.just("button")}),
        st.fixed_dictionaries({"type": st.just("scroll"), "depth": st.integers(0, 100)}),
        st.fixed_dictionaries({"type": st.just("error"), "message": short_text.filter(bool),
                               "stack": short_text}),
        st.fixed_dictionaries({"type": st.just("web_vital"),
                               "name": st.sampled_from(["LCP", "INP", "CLS", "FCP", "TTFB"]),
                               "value": st.floats(0, 60_000), "rating": st.sampled_from(["good", "poor"])}),
        st.fixed_dictionaries({"type": st.just("custom"), "name": short_text.filter(bool).map(lambda s: s[:50]),
                               "props": st.dictionaries(short_text, json_scalars, max_size=5)}),
    )
    return st.builds(lambda b, t: {k: v for k, v in {**b, **t}.items() if v is not None}, base, per_type)


def invalid_event(now_ms: int) -> st.SearchStrategy[dict[str, Any]]:
    """Events that obsd must refuse, each for one reason."""
    return st.one_of(
        st.builds(lambda i: {"id": i, "type": "nope", "ts": now_ms}, uuids),
        st.builds(lambda s: {"id": s, "type": "pageview", "ts": now_ms}, short_text),
        st.builds(lambda i: {"id": i, "type": "pageview", "ts": "yesterday"}, uuids),
        st.builds(lambda i: {"id": i, "type": "web_vital", "ts": now_ms, "name": "XYZ", "value": 1}, uuids),
        st.builds(lambda i: {"id": i, "type": "pageview", "ts": 0}, uuids),
        st.builds(lambda i: {"id": i, "ts": now_ms}, uuids),
    )


chunk_sizes = st.lists(st.tuples(st.integers(1, 50), st.integers(1, 4096)), max_size=200)


def tail_comparisons() -> st.SearchStrategy[tuple[float, str, float]]:
    """(prop value, operator, threshold) for numeric `obsd tail` filter expressions."""
    numbers = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False) | st.integers(-10**6, 10**6).map(float)
    return st.tuples(numbers, st.sampled_from([">", ">=", "<", "<=", "==", "!="]), numbers)
