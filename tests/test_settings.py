"""Settings: file, then OBSD_* environment, then flags; errors name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsd.errors import ConfigError
from obsd.settings import effective, load_settings
from tests.harness import ROOT

EXAMPLE = ROOT / "obsd.toml.example"


def test_example_config_is_valid_and_complete() -> None:
    """obsd.toml.example loads, and shows every key the settings know."""
    import msgspec

    from obsd.settings import Settings

    s = load_settings(EXAMPLE, environ={})
    assert s.server.listen == "127.0.0.1:8080" and s.projects[0].id == "demo"
    text = EXAMPLE.read_text()
    for section in Settings.__annotations__:
        if section in ("source",):
            continue
        value = getattr(s, section)
        if isinstance(value, msgspec.Struct):
            assert f"[{section}]" in text, section
            for key in value.__struct_fields__:
                assert f"\n{key} = " in text, f"{section}.{key} missing from obsd.toml.example"
        else:
            assert f"{section} = " in text or section == "projects", section


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    """Environment overrides the file and flags override the environment."""
    cfg = tmp_path / "obsd.toml"
    cfg.write_text('[server]\nlisten = "127.0.0.1:1111"\nmax_body_bytes = 2000000\n')
    env = {"OBSD_SERVER__LISTEN": "127.0.0.1:2222", "OBSD_SPOOL__DURABILITY": "memory", "OBSD_DATA_DIR": "/tmp/x"}
    s = load_settings(cfg, environ=env)
    assert (s.server.listen, s.spool.durability, s.data_dir) == ("127.0.0.1:2222", "memory", "/tmp/x")
    assert s.server.max_body_bytes == 2_000_000
    s = load_settings(cfg, {"server": {"listen": "127.0.0.1:3333"}}, environ=env)
    assert s.server.listen == "127.0.0.1:3333" and s.server.max_body_bytes == 2_000_000


def test_config_found_through_obsd_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OBSD_CONFIG names the file when no flag does."""
    cfg = tmp_path / "x.toml"
    cfg.write_text('log_level = "debug"\n')
    monkeypatch.setenv("OBSD_CONFIG", str(cfg))
    assert load_settings(None).log_level == "debug"


@pytest.mark.parametrize("toml, needle", [
    ('[server]\nlisten = "nohost"\n', "server.listen"),
    ('[server]\nmax_body_bytes = "big"\n', "server.max_body_bytes"),
    ('[spool]\ndurability = "sometimes"\n', "spool.durability"),
    ('[pipeline]\nbatch_max_events = 0\n', "pipeline.batch_max_events"),
    ('[server]\nlisten_port = 1\n', "listen_port"),
    ('[clickhouse]\ndsn = "mysql://x"\n', "clickhouse.dsn"),
    ('[[projects]]\nid = "Bad Id"\nwrite_key = "12345678"\n', "projects[0].id"),
    ('[[projects]]\nid = "a"\nwrite_key = "short"\n', "write_key"),
    ('[[projects]]\nid = "a"\nwrite_key = "12345678"\n[[projects]]\nid = "a"\nwrite_key = "87654321"\n', "twice"),
    ("not toml at all [", "not valid TOML"),
    ('[server]\ntrusted_proxies = ["not-an-ip"]\n', "server.trusted_proxies"),
    ('[[projects]]\nid = "a"\nwrite_key = "12345678"\nallowed_origins = ["https://"]\n', "allowed_origins"),
    ('[rate_limit]\nper_ip_rps = -1.0\n', "rate_limit.per_ip_rps"),
    ('[[projects]]\nid = "a"\nwrite_key = "12345678"\ndomains = ["https://shop.example/"]\n', "projects[0].domains"),
    ('[[projects]]\nid = "a"\nwrite_key = "12345678"\ndomains = ["shop.example"]\n[[projects]]\nid = "b"\n'
     'write_key = "87654321"\ndomains = ["WWW.Shop.Example"]\n', "already a domain of project 'a'"),
    ('[[projects]]\nid = "a"\nwrite_key = "12345678"\nsentry_id = -4\n', "projects[0].sentry_id"),
    ('[[projects]]\nid = "a"\nwrite_key = "12345678"\nsentry_id = "42"\n', "projects[0].sentry_id"),
    ('[[projects]]\nid = "a"\nwrite_key = "12345678"\nsentry_id = 42\n[[projects]]\nid = "b"\n'
     'write_key = "87654321"\nsentry_id = 42\n', "already the sentry_id of project 'a'"),
    ('[[projects]]\nid = "a"\nwrite_key = "key-with-dash"\nsentry_id = 42\n', "letters, digits and '_'"),
])
def test_wrong_values_name_the_key_and_the_fix(tmp_path: Path, toml: str, needle: str) -> None:
    """A wrong value stops loading with a message naming the key."""
    cfg = tmp_path / "obsd.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert needle in str(info.value)


def test_effective_masks_secrets(tmp_path: Path) -> None:
    """config check output never shows tokens, write keys or DSN passwords."""
    cfg = tmp_path / "obsd.toml"
    cfg.write_text('[server]\nadmin_token = "supersecrettoken"\n[clickhouse]\ndsn = "http://u:hunter2@h:8123"\n'
                   '[[projects]]\nid = "a"\nwrite_key = "writekey-secret"\n')
    text = str(effective(load_settings(cfg, environ={})))
    assert "supersecrettoken" not in text and "hunter2" not in text and "writekey-secret" not in text
    assert "http://u:******@h:8123" in text


def test_domains_and_sentry_id_are_read(tmp_path: Path) -> None:
    """A project's Plausible domains and Sentry project id load as written; unset means none."""
    cfg = tmp_path / "obsd.toml"
    cfg.write_text('[[projects]]\nid = "a"\nwrite_key = "12345678"\ndomains = ["shop.example", "bücher.example"]\n'
                   'sentry_id = 4505\n[[projects]]\nid = "b"\nwrite_key = "87654321"\n')
    a, b = load_settings(cfg, environ={}).projects
    assert (a.domains, a.sentry_id) == (("shop.example", "bücher.example"), 4505)
    assert (b.domains, b.sentry_id) == ((), 0)
