"""The client side of `obsd tail`: follow a daemon's NDJSON tail stream, reconnecting when it restarts."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from obsd.errors import DaemonError
from obsd.ops.tail import CONTROL_PREFIX
from obsd.ops.tailfilter import TailFilter


@dataclass(frozen=True, slots=True)
class TailEvent:
    """A row from the stream, decoded."""

    row: dict[str, Any]
    line: bytes


@dataclass(frozen=True, slots=True)
class TailNotice:
    """Something the viewer should be told: missed events, a lost or regained connection."""

    kind: str  # "missed" | "connected" | "disconnected" | "waiting"
    detail: dict[str, Any] = field(default_factory=dict)


def follow(base: str, token: str | None, flt: TailFilter, *, read_timeout: float = 10.0,
           reconnect: bool = True, max_backoff: float = 2.0,
           opener: Callable[[urllib.request.Request, float], Any] | None = None) -> Iterator[TailEvent | TailNotice]:
    """Yield rows and notices from a daemon's tail stream, reconnecting when the daemon restarts."""
    url = f"{base}/v1/admin/tail?{urllib.parse.urlencode(flt.to_query())}"
    open_ = opener or (lambda req, timeout: urllib.request.urlopen(req, timeout=timeout))
    backoff = 0.1
    connected = False
    waiting_told = False
    while True:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with open_(req, read_timeout) as resp:
                for line in resp:
                    if line.startswith(CONTROL_PREFIX):
                        msg = json.loads(line)
                        kind = msg.get("_obsd")
                        if kind == "hello":
                            backoff = 0.1
                            connected = True
                            yield TailNotice("connected", msg)
                        elif kind == "missed":
                            yield TailNotice("missed", msg)
                        continue
                    if line.strip():
                        yield TailEvent(json.loads(line), line.rstrip(b"\n"))
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 401, 403):
                try:
                    reason = json.loads(exc.read()).get("reason", exc.reason)
                except (ValueError, AttributeError):
                    reason = exc.reason
                raise TailRefused(f"the daemon at {base} refused the tail: {reason}") from exc
        except (OSError, ValueError):
            pass  # connection refused, reset, timed out: the daemon is restarting or gone
        if not reconnect:
            return
        if connected:
            connected = False
            waiting_told = True
            yield TailNotice("disconnected", {"base": base})
        elif not waiting_told:
            waiting_told = True
            yield TailNotice("waiting", {"base": base})
        time.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)


class TailRefused(DaemonError):
    """The daemon refused the tail request (bad filter or token); retrying cannot help."""

    exit_code = 5
