"""docs/grafana-dashboard.json: every panel's SQL runs on a real store and agrees with the reports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from obsd.query.params import parse_params
from obsd.query.reports import ReportParams, Reports
from obsd.store.client import Store
from obsd.store.migrations import Migrator
from tests import traffic
from tests.harness import ROOT

DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
NOW = datetime(2025, 3, 10, 12, 34, 56, tzinfo=UTC)


def _panels() -> dict[str, str]:
    doc = json.loads(DASHBOARD.read_text())
    return {p["title"]: p["targets"][0]["rawSql"] for p in doc["panels"]}


def _expand(sql: str, p: ReportParams) -> str:
    """What the ClickHouse data source makes of the macros and the project variable."""
    a, b = int(p.since.timestamp()), int(p.until.timestamp()) - 1
    sql = sql.replace("${project}", p.project)
    return re.sub(r"\$__timeFilter\(([\w.]+)\)",
                  lambda m: f"{m.group(1)} >= toDateTime({a}) AND {m.group(1)} <= toDateTime({b})", sql)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(f"chdb://{tmp_path_factory.mktemp('grafana')}/ch", "obsd")
    Migrator(s).up()
    traffic.insert(s, traffic.sessions(150, now_ms=int(NOW.timestamp() * 1000), span_h=30))
    yield s
    s.close()


def _rows(store: Store, sql: str, p: ReportParams) -> list[dict[str, Any]]:
    res = store.query(_expand(sql, p), settings={"readonly": "1"})
    return [dict(zip(res.columns, r, strict=True)) for r in res.rows]


def test_dashboard_is_for_the_official_clickhouse_data_source() -> None:
    """Every panel and the project variable use grafana-clickhouse-datasource with raw SQL on the rollups."""
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "obsd-web" and {v["name"] for v in doc["templating"]["list"]} == {"datasource", "project"}
    for panel in doc["panels"]:
        t = panel["targets"][0]
        assert t["datasource"]["type"] == panel["datasource"]["type"] == "grafana-clickhouse-datasource"
        assert t["editorType"] == "sql" and "obsd.events " not in t["rawSql"]
        assert "$__timeFilter(" in t["rawSql"] and "${project}" in t["rawSql"]


def test_panels_agree_with_the_reports(store: Store) -> None:
    """Overview, series, pages, referrers, devices, vitals and errors panels give the reports' numbers."""
    p = parse_params({"project": "demo", "since": "2d", "limit": "20"}, now=NOW)
    reports = Reports(store, "obsd")
    panels = _panels()
    overview = reports.overview(p)
    stat, = _rows(store, panels["Overview"], p)
    assert stat == {k: overview.summary[k] for k in ("visitors", "pageviews", "sessions", "errors")}
    series = {r["time"].replace(tzinfo=UTC): r["pageviews"] for r in _rows(store, panels[
        "Visitors and pageviews per hour"], p)}
    assert series == {r[0]: r[1] for r in overview.table.rows if r[1]}
    assert [list(r.values()) for r in _rows(store, panels["Top pages"], p)] == [
        r[:4] for r in reports.pages(p).table.rows]
    assert [list(r.values()) for r in _rows(store, panels["Referrers"], p)] == [
        r[:3] for r in reports.referrers(p).table.rows]
    devices = reports.devices(p)
    assert [(r["value"], r["pageviews"]) for r in _rows(store, panels["Devices"], p)] == [
        (r[1], r[2]) for r in devices.table.rows if r[0] == "device"]
    vitals = {r[0]: r for r in reports.vitals(p).table.rows}
    for metric in ("LCP", "INP", "CLS", "FCP", "TTFB"):
        (row,) = _rows(store, panels[f"{metric} p75"], p)
        assert row["p75"] == pytest.approx(vitals[metric][3])
    table = {r["metric"]: r for r in _rows(store, panels["Web Vitals"], p)}
    assert {m: (r["samples"], r["good"], r["poor"]) for m, r in table.items()} == {
        m: (r[1], r[6], r[8]) for m, r in vitals.items()}
    errors = _rows(store, panels["Error groups"], p)
    assert [(r["fingerprint"], r["events"]) for r in errors] == [(r[0], r[2]) for r in reports.errors(p).table.rows]


def test_project_variable_query_lists_projects(store: Store) -> None:
    """The project drop-down's query lists the projects that have data."""
    doc = json.loads(DASHBOARD.read_text())
    var = next(v for v in doc["templating"]["list"] if v["name"] == "project")
    assert [r[0] for r in store.query(var["query"]).rows] == ["demo"]
