"""Docs are tested like code: every setting, CLI command and HTTP endpoint is documented."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest
import typer.main

from obsd.cli import app
from obsd.server import Server
from obsd.settings import Settings, load_settings
from tests.harness import ROOT

DOCS = "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))) + (ROOT / "README.md").read_text()


def _setting_keys() -> list[str]:
    keys = []
    s = Settings()
    for name in Settings.__struct_fields__:
        if name == "source":
            continue
        value = getattr(s, name)
        if isinstance(value, msgspec.Struct):
            keys += [f"{name}.{k}" for k in value.__struct_fields__]
        else:
            keys.append(name)
    return keys


@pytest.mark.parametrize("key", _setting_keys())
def test_every_setting_is_in_configuration_md(key: str) -> None:
    """docs/configuration.md has a row for each settings key, in its table's section."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    if "." in key:
        section, name = key.split(".")
        part = text.split(f"## `[{section}]`", 1)
        assert len(part) == 2, f"no section for [{section}]"
        body = part[1].split("\n## ", 1)[0]
    elif key == "projects":
        name, body = "id", text.split("## `[[projects]]`", 1)[1]
    else:
        name, body = key, text.split("## Top level", 1)[1].split("\n## ", 1)[0]
    assert f"`{name}`" in body, f"{key} is not documented in docs/configuration.md"


def _commands() -> list[str]:
    group = typer.main.get_command(app)
    out = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        out += [f"{name} {sub}" for sub in subs] if subs else [name]
    return sorted(out)


@pytest.mark.parametrize("command", _commands())
def test_every_cli_command_is_documented(command: str) -> None:
    """Each `obsd …` command appears in the docs as `obsd <command>`."""
    first = command.split()[0]
    pattern = rf"obsd {re.escape(command)}\b|obsd {re.escape(first)} [a-z|]*{re.escape(command.split()[-1])}"
    assert re.search(pattern, DOCS), f"`obsd {command}` is not documented in docs/ or README.md"


def _routes(tmp_path: Path) -> list[tuple[str, str]]:
    cfg = tmp_path / "obsd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}/data"\n[[projects]]\nid = "demo"\nwrite_key = "demo_write_key_0001"\n')
    app_ = Server(load_settings(cfg, environ={})).build_app()
    out = set()
    for route in app_.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix") or ""
        if route.method in ("HEAD",) or not path:
            continue
        out.add((route.method, path))
    return sorted(out)


def test_every_http_endpoint_is_documented(tmp_path: Path) -> None:
    """Each route the server registers is named in the docs."""
    missing = []
    for method, path in _routes(tmp_path):
        base = re.sub(r"\{[^}]+\}", "", path).rstrip("/") or "/"
        # A placeholder inside a path (/api/{sentry_id}/envelope/) is written <name> or {name} in the docs.
        inner = "".join(r"(?:<[\w-]+>|\{[\w-]+\})" if part.startswith("{") else re.escape(part)
                        for part in re.split(r"(\{[^}]+\})", path.rstrip("/")))
        if base not in DOCS and not re.search(inner, DOCS):
            missing.append(f"{method} {path}")
    assert not missing, f"undocumented endpoints: {missing}"


def test_every_command_has_a_help_summary() -> None:
    """Each command's --help starts with a one-line summary."""
    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        summary = (cmd.help or "").strip().splitlines()[0] if cmd.help else ""
        assert summary, f"obsd {name} has no --help summary"
