"""`obsd status`: the daemon's status document rendered with rich — rates, fill levels, rejects, health."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

_LABELS = re.compile(r"^([^{]+)(?:\{(.*)\})?$")


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """Split a snapshot key `name{a=b,c=d}` into the name and its labels."""
    m = _LABELS.match(key)
    if not m:
        return key, {}
    labels = dict(part.split("=", 1) for part in (m.group(2) or "").split(",") if "=" in part)
    return m.group(1), labels


@dataclass
class Sample:
    """One status document and when it was taken (the daemon's uptime)."""

    doc: dict[str, Any]

    @property
    def at(self) -> float:
        return float(self.doc.get("uptime_s", 0.0))

    def metric(self, name: str, **labels: str) -> float:
        """A counter or gauge; labelled series are summed unless labels pick one."""
        total = 0.0
        for key, value in self.doc.get("metrics", {}).items():
            n, lab = parse_key(key)
            if n == name and all(lab.get(k) == v for k, v in labels.items()):
                total += float(value)
        return total

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every labelled series of one metric."""
        out = []
        for key, value in self.doc.get("metrics", {}).items():
            n, lab = parse_key(key)
            if n == name:
                out.append((lab, float(value)))
        return out


@dataclass
class StatusView:
    """Turns successive status documents into a rich renderable with rates between them."""

    previous: Sample | None = None
    current: Sample | None = None
    history: list[float] = field(default_factory=list)
    visitors: dict[str, int | None] = field(default_factory=dict)  # current visitors per project, when known

    def update(self, doc: dict[str, Any], visitors: dict[str, int | None] | None = None) -> None:
        """Take a new status document (and each project's current visitors, when known)."""
        self.visitors = visitors or {}
        self.previous, self.current = self.current, Sample(doc)
        if self.previous is not None and self.current.at < self.previous.at:
            self.previous = None  # the daemon restarted: rates start over

    def rate(self, name: str) -> float:
        """Per-second rate of a counter between the last two documents (since start for the first)."""
        cur = self.current
        if cur is None:
            return 0.0
        prev = self.previous
        if prev is None:
            return cur.metric(name) / cur.at if cur.at > 0 else 0.0
        dt = cur.at - prev.at
        return (cur.metric(name) - prev.metric(name)) / dt if dt > 0 else 0.0

    def mean(self, name: str) -> float | None:
        """Mean of a histogram over the interval (or since start), from its _sum and _count."""
        cur = self.current
        if cur is None:
            return None
        s, c = cur.metric(name + "_sum"), cur.metric(name + "_count")
        if self.previous is not None:
            s -= self.previous.metric(name + "_sum")
            c -= self.previous.metric(name + "_count")
        return s / c if c > 0 else None

    def render(self) -> RenderableType:
        """The whole view."""
        cur = self.current
        if cur is None:
            return Text("waiting for the daemon…", style="dim")
        d = cur.doc
        ready = d.get("ready")
        head = Text.assemble(
            ("obsd ", "bold"), (str(d.get("version", "?")), "bold"), "  ",
            ("● ready" if ready else "● not ready", "bold green" if ready else "bold red"),
            f"  up {_duration(cur.at)}  durability={d.get('durability', '?')}  "
            f"projects={','.join(d.get('projects', [])) or '-'}",
        )
        return Group(head, self._now(), self._flow(), self._fill(), self._health(), self._stages(), self._rejects(),
                     self._tail())

    def _now(self) -> RenderableType:
        visitors = self.visitors
        if not visitors:
            return Text("")
        line = Text.assemble(("current visitors ", "bold"), "(last 5 minutes): ")
        for project, n in visitors.items():
            line.append(f"{project} ")
            line.append("-" if n is None else f"{n:,}", style="bold green")
            line.append("  ")
        return line

    def _flow(self) -> Table:
        cur = self.current
        assert cur is not None
        since = "since start" if self.previous is None else "last interval"
        t = Table(title=f"Events (rates: {since})", title_justify="left", expand=False)
        t.add_column("stage")
        t.add_column("total", justify="right")
        t.add_column("per second", justify="right")
        for label, name in (("accepted (202)", "obsd_events_accepted_total"),
                            ("spooled", "obsd_events_spooled_total"),
                            ("inserted", "obsd_events_inserted_total"),
                            ("rejected", "obsd_events_rejected_total"),
                            ("refused (503)", "obsd_events_refused_overload_total"),
                            ("dead-lettered", "obsd_events_dead_lettered_total"),
                            ("imported", "obsd_events_imported_total")):
            t.add_row(label, f"{cur.metric(name):,.0f}", f"{self.rate(name):,.1f}")
        return t

    def _fill(self) -> Table:
        cur = self.current
        assert cur is not None
        limits = cur.doc.get("limits", {})
        t = Table(title="Buffers", title_justify="left")
        t.add_column("what")
        t.add_column("fill", width=24)
        t.add_column("level", justify="right")
        ring_e, ring_b = cur.metric("obsd_ring_events"), cur.metric("obsd_ring_bytes")
        spool = cur.metric("obsd_spool_bytes")
        for label, value, cap, fmt in (
            ("ring (events)", ring_e, limits.get("ring_max_events"), f"{ring_e:,.0f}"),
            ("ring (bytes)", ring_b, limits.get("ring_max_bytes"), _bytes(ring_b)),
            ("spool", spool, limits.get("max_spool_bytes"), _bytes(spool)),
        ):
            frac = value / cap if cap else 0.0
            t.add_row(label, ProgressBar(total=1.0, completed=min(1.0, frac), width=22,
                                         complete_style="red" if frac > 0.8 else "green"),
                      f"{fmt} ({100 * frac:.1f}%)")
        t.add_row("pending in store", "", f"{cur.metric('obsd_store_pending_events'):,.0f} events")
        return t

    def _health(self) -> Table:
        cur = self.current
        assert cur is not None
        checks = cur.doc.get("checks", {})
        t = Table(title="Store and latency", title_justify="left")
        t.add_column("check")
        t.add_column("value")
        store = str(checks.get("store", "?"))
        t.add_row("store", Text(store, style="green" if store == "ok" else "bold red"))
        for label, name in (("ingest request (mean)", "obsd_ingest_request_seconds"),
                            ("store insert (mean)", "obsd_store_insert_seconds"),
                            ("event-loop lag (mean)", "obsd_event_loop_lag_seconds")):
            m = self.mean(name)
            t.add_row(label, "-" if m is None else f"{m * 1000:.1f} ms")
        fresh = cur.doc.get("freshness") or {}
        for q in ("p50", "p99"):
            v = fresh.get(q)
            t.add_row(f"freshness {q} (202 → visible)", "-" if v is None else f"{v * 1000:.0f} ms")
        t.add_row("insert errors", f"{cur.metric('obsd_store_insert_errors_total'):,.0f}")
        t.add_row("config reloads", ", ".join(f"{lab.get('result')}={v:.0f}"
                                             for lab, v in cur.series("obsd_config_reloads_total")) or "0")
        return t

    def _stages(self) -> Table:
        """Each pipeline stage's state, the accounting identity and the resend window."""
        cur = self.current
        assert cur is not None
        checks = cur.doc.get("checks", {})
        t = Table(title="Pipeline", title_justify="left")
        t.add_column("what")
        t.add_column("state")
        for stage in ("committer", "writer", "spool"):
            state = str(checks.get(stage, "?"))
            t.add_row(stage, Text(state, style="green" if state == "ok" else "bold red"))
        acc = cur.doc.get("accounts")
        if acc:
            ok = acc.get("balanced")
            t.add_row("accounts", Text(
                f"accepted {acc['accepted']:,} + replayed {acc['replayed']:,} = inserted {acc['inserted']:,} + "
                f"dead-lettered {acc['dead_lettered']:,} + pending {acc['pending']:,}  "
                + ("balanced" if ok else "NOT balanced"), style="" if ok else "bold red"))
        ids = cur.doc.get("batch_ids")
        if ids:
            t.add_row("resend window", f"{ids['held']:,} batch ids over {ids['window_s'] / 60:.0f} min"
                      + (f", {ids['evicted']:,} forgotten early" if ids["evicted"] else ""))
        dropped = cur.metric("obsd_sdk_dropped_events_total")
        if dropped:
            t.add_row("dropped by SDKs", f"{dropped:,.0f} events (queue full or retries exhausted)")
        return t

    def _rejects(self) -> RenderableType:
        cur = self.current
        assert cur is not None
        rows = [(lab.get("reason", "?"), "event", v) for lab, v in cur.series("obsd_events_rejected_total")]
        rows += [(f"{lab.get('reason', '?')} ({lab.get('status', '?')})", "request", v)
                 for lab, v in cur.series("obsd_requests_refused_total")]
        rows = [r for r in rows if r[2] > 0]
        if not rows:
            return Text("No rejects.", style="dim")
        t = Table(title="Rejects by reason", title_justify="left")
        t.add_column("reason")
        t.add_column("kind")
        t.add_column("count", justify="right")
        for reason, kind, v in sorted(rows, key=lambda r: -r[2]):
            t.add_row(reason, kind, f"{v:,.0f}")
        return t

    def _tail(self) -> RenderableType:
        cur = self.current
        assert cur is not None
        viewers = cur.doc.get("tail", [])
        if not viewers:
            return Text("No tail viewers.", style="dim")
        t = Table(title="Tail viewers", title_justify="left")
        for col in ("viewer", "peer", "sent", "missed"):
            t.add_column(col, justify="right" if col in ("sent", "missed") else "left")
        for v in viewers:
            t.add_row(str(v.get("id")), str(v.get("peer")), f"{v.get('sent', 0):,}",
                      Text(f"{v.get('missed', 0):,}", style="yellow" if v.get("missed") else ""))
        return t


def unreachable(base: str, error: str) -> RenderableType:
    """What the live view shows while the daemon cannot be reached."""
    return Panel(Text(f"cannot reach obsd at {base}: {error}\nretrying…", style="yellow"), title="obsd status")


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _duration(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"
