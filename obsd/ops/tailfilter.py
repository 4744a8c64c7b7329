"""What `obsd tail` shows: flag filters plus a small expression language over row fields and props.

Expressions compare a field with a literal and combine comparisons with `and`, `or`, `not` and
parentheses:

    props.amount > 50
    type == "error" and path ~ "/checkout"
    not (browser == "Safari" or device_type == "mobile")
    props.plan                      (a bare field is true when present and not empty, 0 or false)

Fields are the columns of the events table (`type`, `name`, `path`, `value`, `country`, ...) and
`props.a.b` reaches into an event's props. Operators: `==` `!=` `>` `>=` `<` `<=`, `~` (contains)
and `!~` (does not contain). Numbers compare as numbers (a numeric string field is read as a
number); anything else compares as text. A comparison with a missing field is false, except `!=`
and `!~`, which are true.
"""

from __future__ import annotations

import fnmatch
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from obsd.errors import ObsdError
from obsd.store.rows import Common, EventPart, row_fields

Value = str | float | bool | None
Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>==|!=|>=|<=|!~|>|<|~|=)
    | (?P<paren>[()])
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)
    )""", re.X)
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_ROW_FIELDS = row_fields()
# Numeric columns default to 0 and text columns to "" when a row omits them (rows omit defaults).
_NUMERIC_FIELDS = frozenset(f.name for struct in (EventPart, Common) for f in msgspec.structs.fields(struct)
                            if f.type in (int, float))
_MISSING = object()
# Columns whose empty value is stored as a default: a row without `protocol` came by obsd's own.
_STORED_DEFAULTS = {"protocol": "obsd"}


class FilterError(ObsdError):
    """A tail filter expression cannot be read; the message points at the problem."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(src: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            pos += len(src[pos:]) - len(src[pos:].lstrip())
            raise FilterError(f"cannot read the filter at column {pos + 1}: {src[pos:pos + 20]!r}; "
                              "write e.g. props.amount > 50 and type == \"custom\"")
        kind = m.lastgroup or ""
        out.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def field_value(row: Mapping[str, Any], field: str) -> Any:
    """The value of a row field or `props.a.b` path, or _MISSING."""
    if field.startswith("props."):
        props = row.get("props")
        if isinstance(props, str):
            try:
                props = msgspec.json.decode(props) if props else None
            except msgspec.DecodeError:
                return _MISSING
        cur: Any = props
        for part in field.split(".")[1:]:
            if not isinstance(cur, dict) or part not in cur:
                return _MISSING
            cur = cur[part]
        return cur
    if field in row:
        return row[field]
    if field in _STORED_DEFAULTS:
        return _STORED_DEFAULTS[field]
    if field in _NUMERIC_FIELDS:
        return 0
    if field == "is_bot":
        return False
    return "" if field in _ROW_FIELDS else _MISSING


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dict | list):
        return msgspec.json.encode(v).decode()
    return str(v)


def compare(actual: Any, op: str, literal: Value) -> bool:
    """Apply one comparison with the language's rules (numbers as numbers, missing is false)."""
    if actual is _MISSING:
        return op in ("!=", "!~")
    if op in ("~", "!~"):
        found = _text(literal).lower() in _text(actual).lower()
        return found if op == "~" else not found
    if literal is None or isinstance(literal, bool):
        same = actual is None if literal is None else (actual is literal or _text(actual) == _text(literal))
        return same if op == "==" else (not same if op == "!=" else False)
    if isinstance(literal, float):
        n = _number(actual)
        if n is None:
            return op == "!="
        return {"==": n == literal, "!=": n != literal, ">": n > literal, ">=": n >= literal,
                "<": n < literal, "<=": n <= literal}[op]
    a = _text(actual)
    return {"==": a == literal, "!=": a != literal, ">": a > literal, ">=": a >= literal,
            "<": a < literal, "<=": a <= literal}[op]


def _truthy(v: Any) -> bool:
    return v is not _MISSING and v not in (None, "", 0, False) and v != {} and v != []


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokens(src)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise FilterError(f"the filter {self.src!r} ends too early; finish the comparison")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        if not self.toks:
            raise FilterError("the filter is empty; write e.g. props.amount > 50")
        pred = self.or_()
        tok = self.peek()
        if tok is not None:
            raise FilterError(f"unexpected {tok.text!r} at column {tok.pos + 1} of the filter; "
                              "join comparisons with and / or")
        return pred

    def or_(self) -> Predicate:
        parts = [self.and_()]
        while self.keyword("or"):
            parts.append(self.and_())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(p(row) for p in parts)

    def and_(self) -> Predicate:
        parts = [self.not_()]
        while self.keyword("and"):
            parts.append(self.not_())
        if len(parts) == 1:
            return parts[0]
        return lambda row: all(p(row) for p in parts)

    def not_(self) -> Predicate:
        if self.keyword("not"):
            inner = self.not_()
            return lambda row: not inner(row)
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.take()
            inner = self.or_()
            close = self.take()
            if close.text != ")":
                raise FilterError(f"expected ')' at column {close.pos + 1} of the filter")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        tok = self.take()
        if tok.kind != "word" or tok.text.lower() in _KEYWORDS:
            raise FilterError(f"expected a field name at column {tok.pos + 1} of the filter, got {tok.text!r}")
        field = tok.text
        if not field.startswith("props.") and field not in _ROW_FIELDS:
            raise FilterError(f"unknown field {field!r}; use an events column (type, name, path, value, "
                              "country, ...) or props.<key>")
        nxt = self.peek()
        if nxt is None or nxt.kind != "op":
            return lambda row: _truthy(field_value(row, field))
        op = self.take().text
        op = "==" if op == "=" else op
        literal = self.literal()
        return lambda row: compare(field_value(row, field), op, literal)

    def literal(self) -> Value:
        tok = self.take()
        if tok.kind == "num":
            return float(tok.text)
        if tok.kind == "str":
            body = tok.text[1:-1]
            return re.sub(r"\\(.)", r"\1", body)
        if tok.kind == "word":
            low = tok.text.lower()
            if low in ("true", "false"):
                return low == "true"
            if low == "null":
                return None
            if low not in _KEYWORDS:
                return tok.text  # a bare word is text: type == error
        raise FilterError(f"expected a value (number, \"text\", true, false, null) at column {tok.pos + 1} "
                          f"of the filter, got {tok.text!r}")


def parse_expression(src: str) -> Predicate:
    """Compile a filter expression into a predicate over decoded rows; raise FilterError if malformed."""
    return _Parser(src).parse()


_decode_row = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True)
class TailFilter:
    """Which rows a tail viewer wants: by project, type, name, path glob, release, environment, protocol,
    expression and sample rate."""

    projects: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    path: str = ""
    expression: str = ""
    sample: float = 1.0
    releases: frozenset[str] = frozenset()
    environments: frozenset[str] = frozenset()
    protocols: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0 < self.sample <= 1:
            raise FilterError(f"sample = {self.sample} must be a rate in (0, 1], e.g. --sample 0.1")
        object.__setattr__(self, "_pred", parse_expression(self.expression) if self.expression else None)
        object.__setattr__(self, "_path_re", re.compile(fnmatch.translate(self.path)) if self.path else None)

    @property
    def passes_all(self) -> bool:
        """True when every row passes, so rows can be forwarded without decoding."""
        return not (self.projects or self.types or self.names or self.path or self.expression or self.releases
                    or self.environments or self.protocols) and self.sample >= 1

    @classmethod
    def from_query(cls, query: Mapping[str, str], multi: Callable[[str], list[str]]) -> TailFilter:
        """Build from the tail endpoint's query string (repeatable or comma-separated lists)."""
        def items(key: str) -> frozenset[str]:
            return frozenset(x.strip() for v in multi(key) for x in v.split(",") if x.strip())
        try:
            sample = float(query.get("sample", "1"))
        except ValueError as exc:
            raise FilterError(f"sample = {query.get('sample')!r} is not a number in (0, 1]") from exc
        return cls(items("project"), items("type"), items("name"), query.get("path", ""),
                   query.get("where", ""), sample, items("release"), items("environment"), items("protocol"))

    def to_query(self) -> list[tuple[str, str]]:
        """The query parameters that rebuild this filter on the daemon."""
        q = [("project", p) for p in sorted(self.projects)] + [("type", t) for t in sorted(self.types)]
        q += [("name", n) for n in sorted(self.names)]
        q += [("release", r) for r in sorted(self.releases)] + [("environment", e) for e in sorted(self.environments)]
        q += [("protocol", p) for p in sorted(self.protocols)]
        if self.path:
            q.append(("path", self.path))
        if self.expression:
            q.append(("where", self.expression))
        if self.sample < 1:
            q.append(("sample", repr(self.sample)))
        return q

    def matches(self, row: Mapping[str, Any]) -> bool:
        """True when a decoded row is wanted."""
        if self.projects and row.get("project_id") not in self.projects:
            return False
        if self.types and row.get("type") not in self.types:
            return False
        if self.names and row.get("name", "") not in self.names:
            return False
        if self.releases and row.get("release", "") not in self.releases:
            return False
        if self.environments and row.get("environment", "") not in self.environments:
            return False
        if self.protocols and (row.get("protocol") or "obsd") not in self.protocols:
            return False
        path_re: re.Pattern[str] | None = getattr(self, "_path_re")  # noqa: B009 - set in __post_init__
        if path_re is not None and not path_re.match(row.get("path", "")):
            return False
        if self.sample < 1:
            eid = str(row.get("event_id", "")).encode()
            if zlib.crc32(eid) / 4294967296.0 >= self.sample:
                return False
        pred: Predicate | None = getattr(self, "_pred")  # noqa: B009
        return pred is None or pred(row)

    def select(self, rows: bytes) -> tuple[bytes, int]:
        """The wanted lines of an NDJSON chunk, and how many there are."""
        if self.passes_all:
            return rows, rows.count(b"\n")
        kept: list[bytes] = []
        for line in rows.splitlines():
            if line and self.matches(_decode_row.decode(line)):
                kept.append(line)
        return (b"\n".join(kept) + b"\n", len(kept)) if kept else (b"", 0)
