"""Rich renderings of reports (as the stats API answers them): tables, bars and sparklines."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

SPARKS = "▁▂▃▄▅▆▇█"
RATING_STYLE = {"good": "green", "needs-improvement": "yellow", "poor": "red"}
TITLES = {"overview": "Overview", "pages": "Top pages", "referrers": "Referrers", "devices": "Devices",
          "vitals": "Web Vitals", "errors": "Error groups", "events": "Events", "recent": "Recent events",
          "releases": "Release health", "entry-pages": "Entry pages", "exit-pages": "Exit pages",
          "sources": "Sources", "utm": "Campaigns", "locations": "Locations", "props": "Properties",
          "goals": "Goals", "funnel": "Funnel", "realtime": "Current visitors"}
VISIT_REPORTS = ("entry-pages", "exit-pages", "sources", "utm", "locations")


def sparkline(values: Sequence[float]) -> str:
    """Values as a line of block characters, scaled to the largest."""
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in values)


def bar(share: float, width: int = 20) -> str:
    """A horizontal bar for a share between 0 and 1, in eighths of a character."""
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")


def number(v: Any) -> str:
    """An integer with thousands separators; other values as they are."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def vital_value(metric: str, v: float | None) -> str:
    """A Web Vitals value the way people read it: CLS unitless, the rest in milliseconds."""
    if v is None:
        return "-"
    return f"{v:.2f}" if metric == "CLS" else f"{round(v):,} ms"


def percent(v: float | None, digits: int = 0) -> str:
    """A share as a percentage (`digits` decimals: 1 tells 99.5% from 99.9%)."""
    return "-" if v is None else f"{100 * v:.{digits}f}%"


def _header(doc: dict[str, Any]) -> Text:
    title = TITLES.get(doc["report"], doc["report"])
    since, until = doc["since"].replace("T", " ")[:16], doc["until"].replace("T", " ")[:16]
    head = Text.assemble((title, "bold"), f" · {doc['project']} · {since} → {until} UTC", style="")
    change = doc.get("change") or {}
    summary = "   ".join(f"{k.replace('_', ' ')}: {_headline(k, v)}" + _change(change, k)
                         for k, v in doc.get("summary", {}).items() if not isinstance(v, list))
    out = Text.assemble(head, "\n", (summary, "cyan")) if summary else head
    if doc.get("filters"):
        out.append("\nfilters: " + " AND ".join(doc["filters"]), style="yellow")
    if "compare" in doc:
        c = doc["compare"]
        out.append(f"\ncompared with {c['since'][:16].replace('T', ' ')} → {c['until'][:16].replace('T', ' ')}",
                   style="dim")
    for note in doc.get("notes", []):
        out.append(f"\n{note}", style="dim italic")
    return out


def _headline(key: str, v: Any) -> str:
    """A headline number with its unit: rates in percent, the visit duration in minutes and seconds."""
    if key.endswith("_rate") and isinstance(v, int | float):
        return f"{v:.1f}%"
    if key == "visit_duration" and isinstance(v, int | float):
        m, sec = divmod(round(v), 60)
        return f"{m}m {sec}s" if m else f"{sec}s"
    return number(v)


def _change(change: dict[str, Any], key: str) -> str:
    if key not in change:
        return ""
    c = change[key]
    return " (new)" if c is None else f" ({'+' if c > 0 else ''}{c:g}%)"


def _table(doc: dict[str, Any], columns: list[tuple[str, str]], rows: list[dict[str, Any]],
           bar_key: str | None = None) -> Table:
    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    for name, justify in columns:
        t.add_column(name, justify="right" if justify == "r" else "left", overflow="fold")
    if bar_key:
        t.add_column("", no_wrap=True, style="blue")
    for r in rows:
        cells = [number(r.get(name)) for name, _ in columns]
        if bar_key:
            cells.append(bar(float(r.get(bar_key) or 0)))
        t.add_row(*cells)
    return t


def render(doc: dict[str, Any]) -> RenderableType:
    """A report document as rich renderables: a header line, then its tables, bars or sparklines."""
    name = doc["report"]
    rows: list[dict[str, Any]] = doc["rows"]
    parts: list[RenderableType] = [_header(doc)]
    if name == "overview":
        pv = [r["pageviews"] for r in rows]
        vis = [r["visitors"] for r in rows]
        parts.append(Text.assemble(("pageviews ", "bold"), (sparkline(pv), "blue"), f"  max {max(pv, default=0):,}"))
        parts.append(Text.assemble(("visitors  ", "bold"), (sparkline(vis), "green"), f"  max {max(vis, default=0):,}"))
        top = max(pv, default=0) or 1
        shown = [dict(r, bucket=r["bucket"].replace("T", " ")[: 13 if doc["bucket"] == "hour" else 10],
                      _share=r["pageviews"] / top) for r in rows]
        parts.append(_table(doc, [("bucket", "l"), ("pageviews", "r"), ("visitors", "r"), ("visits", "r"),
                                  ("bounce_rate", "r"), ("visit_duration", "r"), ("errors", "r")], shown, "_share"))
    elif name in ("pages", "referrers"):
        key = "path" if name == "pages" else "referrer"
        parts.append(_table(doc, [(key, "l"), ("visitors", "r"), ("pageviews", "r"), ("share", "r")],
                            [dict(r, share=percent(r["share"]), _s=r["share"]) for r in rows], "_s"))
    elif name == "devices":
        for dim in ("device", "browser", "os"):
            sub = [dict(r, share=percent(r["share"]), _s=r["share"]) for r in rows if r["dimension"] == dim]
            parts.append(_table(doc, [(dim, "l"), ("visitors", "r"), ("pageviews", "r"), ("share", "r")],
                                [dict(r, **{dim: r["value"]}) for r in sub], "_s"))
    elif name == "vitals":
        parts.append(_vitals(rows))
    elif name == "errors":
        t = Table(show_edge=False, pad_edge=False, header_style="bold")
        for col, j in (("fingerprint", "l"), ("message", "l"), ("events", "r"), ("sessions", "r"),
                       ("first seen", "l"), ("last seen", "l"), ("top frame", "l"), ("via", "l"), ("releases", "l")):
            t.add_column(col, justify="right" if j == "r" else "left", overflow="fold")
        for r in rows:
            releases = r.get("releases") or []
            t.add_row(r["fingerprint"][:8], r["message"], number(r["events"]), number(r["sessions"]),
                      r["first_seen"][:16].replace("T", " "), r["last_seen"][:16].replace("T", " "),
                      top_frame(r["stack"]), ", ".join(r.get("protocols") or []),
                      ", ".join(releases[-3:]) + (f" (+{len(releases) - 3})" if len(releases) > 3 else ""))
        parts.append(t)
    elif name == "releases":
        parts.append(_releases(rows))
    elif name in VISIT_REPORTS:
        keys = [c for c in doc["columns"] if c not in ("visits", "visitors", "bounce_rate", "visit_duration")]
        top = max((r["visits"] for r in rows), default=0) or 1
        shown = [dict(r, bounce_rate=f"{r['bounce_rate']:.1f}%", visit_duration=f"{r['visit_duration']} s",
                      _s=r["visits"] / top) for r in rows]
        parts.append(_table(doc, [*((k, "l") for k in keys), ("visits", "r"), ("visitors", "r"),
                                  ("bounce_rate", "r"), ("visit_duration", "r")], shown, "_s"))
    elif name == "funnel":
        first = rows[0]["visits"] if rows else 0
        parts.append(_table(doc, [("step", "r"), ("name", "l"), ("visits", "r"), ("dropoff", "r"),
                                  ("of_first_step", "r")],
                            [dict(r, of_first_step=f"{r['of_first_step']:.1f}%", _s=r["visits"] / (first or 1))
                             for r in rows], "_s"))
    elif name == "goals":
        parts.append(_table(doc, [("goal", "l"), ("visitors", "r"), ("conversions", "r"), ("conversion_rate", "r")],
                            [dict(r, conversion_rate=f"{r['conversion_rate']:.1f}%", _s=r["conversion_rate"] / 100)
                             for r in rows], "_s"))
    else:
        cols = [(c, "r" if rows and isinstance(rows[0].get(c), int | float) else "l") for c in doc["columns"]]
        parts.append(_table(doc, cols, rows))
    if not rows:
        parts.append(Text("nothing in this range", style="dim italic"))
    return Group(*parts)


def _releases(rows: list[dict[str, Any]]) -> Table:
    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    for col in ("release", "environment", "sessions", "errored", "unhandled", "crashed", "crash-free",
                "unhandled-free", "errors", ""):
        t.add_column(col, justify="left" if col in ("release", "environment", "") else "right")
    for r in rows:
        free = r["unhandled_free"]
        style = "" if free is None else "green" if free >= 0.99 else "yellow" if free >= 0.95 else "red"
        t.add_row(r["release"] or "(none)", r["environment"], number(r["sessions"]), number(r["errored"]),
                  number(r["unhandled"]), number(r["crashed"] + r["abnormal"]), percent(r["crash_free"], 1),
                  Text(percent(free, 1), style=style), number(r["errors"]),
                  Text(bar(free or 0.0, 10), style=style))
    return t


def _vitals(rows: list[dict[str, Any]]) -> Table:
    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    keys = [k for k in ("path", "device") if rows and k in rows[0]]
    for k in keys:
        t.add_column(k)
    for col in ("metric", "samples", "p50", "p75", "p95", "good", "needs impr.", "poor", ""):
        t.add_column(col, justify="left" if col in ("metric", "") else "right")
    for r in rows:
        m = r["metric"]
        style = RATING_STYLE.get(r["rating"], "")
        shares = Text()
        for share, colour in ((r["good"], "green"), (r["needs_improvement"], "yellow"), (r["poor"], "red")):
            shares.append("█" * round(20 * (share or 0)), style=colour)
        t.add_row(*(str(r[k]) for k in keys), m, number(r["samples"]), vital_value(m, r["p50"]),
                  Text(vital_value(m, r["p75"]), style=f"bold {style}".strip()), vital_value(m, r["p95"]),
                  percent(r["good"]), percent(r["needs_improvement"]), percent(r["poor"]), shares)
    return t


def top_frame(stack: str) -> str:
    """The first frame line of a stack trace (or its first line when it has no frames)."""
    lines = [ln.strip() for ln in stack.splitlines() if ln.strip()]
    frames = [ln for ln in lines if ln.startswith("at ") or "@" in ln]
    return (frames or lines or [""])[0][:120]


def to_csv(doc: dict[str, Any]) -> str:
    """The report's main table as CSV (the series, for the overview)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(doc["columns"])
    for r in doc["rows"]:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in doc["columns"]])
    return buf.getvalue()
