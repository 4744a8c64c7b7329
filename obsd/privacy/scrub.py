"""Masking of personal data in URLs, free text and JSON-like props."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from functools import lru_cache
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = ["UrlScrubber", "scrub_props", "scrub_text"]

EMAIL_MASK: Final = "[email]"
CARD_MASK: Final = "[card]"
JWT_MASK: Final = "[jwt]"
TOKEN_MASK: Final = "[token]"

# The local part starts only where a run of local-part characters starts (the lookbehind), which keeps
# the search linear on hostile input; a match swallowed by a previous one is caught by the next pass.
_EMAIL_RE: Final = re.compile(r"(?<![\w.%+'-])[\w.%+'-]+(?:@|%40)[\w.-]+\.[A-Za-z]{2,}")
# A JWT is masked together with the whole base64url run it starts in, so the scan never re-enters a run.
_B64: Final = "[A-Za-z0-9_-]"
_JWT_RE: Final = re.compile(rf"(?<!{_B64})(?={_B64}*?eyJ){_B64}*+\.eyJ{_B64}*+\.{_B64}*+")
_BEARER_RE: Final = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/-]+=*")
# Runs of ASCII digits joined by at most one space or dash, long enough to hold a card number.
_DIGIT_RUN_RE: Final = re.compile(r"[0-9](?:[ -]?[0-9]){12,}")
# A cheaper superset of those runs (separators unchecked), so ordinary text with digits costs one scan.
_DIGIT_AREA_RE: Final = re.compile(r"[0-9][0-9 -]{11,}[0-9]")
_GROUP_SPLIT_RE: Final = re.compile(r"[ -]")
_MAX_EMAIL_PASSES: Final = 16


def luhn_valid(digits: str) -> bool:
    """Return whether a string of ASCII digits passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _mask_cards_in_run(run: str) -> str:
    """Mask, left to right, every group sequence of 13-19 digits in one digit run that passes Luhn."""
    if "-" not in run and " " not in run:
        return CARD_MASK if len(run) <= 19 and luhn_valid(run) else run
    groups = _GROUP_SPLIT_RE.split(run)
    seps = _GROUP_SPLIT_RE.findall(run)
    digits = "".join(groups)
    # Prefix sums of Luhn contributions for both parities make each window's checksum O(1), which
    # keeps hostile runs like "1 1 1 1 ..." linear.
    even = [0]
    odd = [0]
    for k, ch in enumerate(digits):
        d = ord(ch) - 48
        plain, doubled = (d, _DOUBLED[d]) if k & 1 == 0 else (_DOUBLED[d], d)
        even.append(even[-1] + plain)
        odd.append(odd[-1] + doubled)
    bounds = [0]
    for g in groups:
        bounds.append(bounds[-1] + len(g))
    out: list[str] = []
    i, n = 0, len(groups)
    while i < n:
        start = bounds[i]
        hit = -1
        j = bisect_right(bounds, start + 19, i + 1) - 1
        while j > i and bounds[j] - start >= 13:
            end = bounds[j]
            sums = even if (end - 1) & 1 == 0 else odd
            if (sums[end] - sums[start]) % 10 == 0:
                hit = j - 1
                break
            j -= 1
        if hit < 0:
            out.append(groups[i])
            if i < n - 1:
                out.append(seps[i])
            i += 1
            continue
        out.append(CARD_MASK)
        if hit < n - 1:
            out.append(seps[hit])
        i = hit + 1
    return "".join(out)


def _card_sub(m: re.Match[str]) -> str:
    return _mask_cards_in_run(m.group(0))


def _card_area_sub(m: re.Match[str]) -> str:
    return _DIGIT_RUN_RE.sub(_card_sub, m.group(0))


def scrub_text(s: str) -> str:
    """Mask emails, Luhn-valid card numbers, JWTs and bearer tokens in free text."""
    if "eyJ" in s:
        s = _JWT_RE.sub(JWT_MASK, s)
    if "@" in s or "%40" in s:
        for _ in range(_MAX_EMAIL_PASSES):
            masked = _EMAIL_RE.sub(EMAIL_MASK, s)
            if masked == s:
                break
            s = masked
    if len(s) >= 13:
        s = _DIGIT_AREA_RE.sub(_card_area_sub, s)
    # Last, because masking a card can put a word boundary in front of "bearer".
    if "earer" in s or "EARER" in s:
        s = _BEARER_RE.sub(r"\1\2" + TOKEN_MASK, s)
    return s


def scrub_props(obj: object) -> object:
    """Return a copy of a JSON-like value with every string key and value scrubbed."""
    if isinstance(obj, str):
        return scrub_text(obj)
    if isinstance(obj, dict):
        return {scrub_text(k) if isinstance(k, str) else k: scrub_props(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub_props(v) for v in obj]
    return obj


_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}


class UrlScrubber:
    """Reduces page URLs to scheme, host, path and allowlisted query parameters, with PII masked."""

    def __init__(
        self,
        allowed_params: Iterable[str] = ("utm_*",),
        *,
        cache_size: int = 8192,
        max_cached_len: int = 2048,
    ) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in allowed_params:
            p = pattern.strip().lower()
            if p.endswith("*"):
                prefixes.append(p[:-1])
            elif p:
                exact.add(p)
        self.allowed_params: Final = tuple(sorted(exact)) + tuple(p + "*" for p in prefixes)
        self._exact: Final = frozenset(exact)
        self._prefixes: Final = tuple(prefixes)
        self._max_cached_len: Final = max_cached_len
        self._split_cached: Final = lru_cache(maxsize=cache_size)(self._split)

    def scrub(self, url: str) -> str:
        """Return the URL without fragment, userinfo, non-allowlisted params and PII."""
        return self.split(url)[0]

    def split(self, url: str) -> tuple[str, str, str]:
        """Return (scrubbed URL, host, scrubbed path); host and path are empty for non-HTTP URLs."""
        if len(url) > self._max_cached_len:
            return self._split(url)
        return self._split_cached(url)

    def param_allowed(self, name: str) -> bool:
        """Return whether a (percent-encoded) query parameter name is on the allowlist."""
        key = (unquote(name) if "%" in name else name).lower()
        return key in self._exact or key.startswith(self._prefixes)

    def _split(self, url: str) -> tuple[str, str, str]:
        head = url[:8].lower()
        if not (head.startswith("https://") or head.startswith("http://")):
            return scrub_text(url), "", ""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return scrub_text(url), "", ""
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if port is not None and str(port) != _DEFAULT_PORTS.get(scheme):
            host = f"{host}:{port}"
        path = scrub_text(parts.path)
        query = self._filter_query(parts.query) if parts.query else ""
        scrubbed = f"{scheme}://{host}{path}?{query}" if query else f"{scheme}://{host}{path}"
        return scrubbed, host, path

    def _filter_query(self, query: str) -> str:
        kept = [scrub_text(pair) for pair in query.split("&") if pair and self.param_allowed(pair.partition("=")[0])]
        return "&".join(kept)
