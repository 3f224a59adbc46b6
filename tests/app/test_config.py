"""Settings from TOML into the user's msgspec Struct, with environment overrides."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

import flowpump as fp
from flowpump.app.config import load_settings


class Db(msgspec.Struct):
    path: str
    timeout: float = 5.0


class Settings(msgspec.Struct):
    db: Db
    port: int = 8080
    debug: bool = False
    topics: list[str] = msgspec.field(default_factory=list)


def _toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "settings.toml"
    p.write_text(text)
    return p


def test_toml_decodes_into_the_struct_with_defaults(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[db]\npath = "events.db"\n')
    assert load_settings(Settings, path, env={}) == Settings(Db("events.db"))


def test_environment_overrides_the_file_and_nested_keys_use_double_underscores(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'port = 1\n[db]\npath = "a.db"\n')
    env = {"FLOWPUMP_PORT": "9000", "FLOWPUMP_DB__TIMEOUT": "2.5", "FLOWPUMP_DEBUG": "true", "FLOWPUMP_TOPICS": '["a"]'}
    s = load_settings(Settings, path, env=env)
    assert (s.port, s.db.timeout, s.debug, s.topics, s.db.path) == (9000, 2.5, True, ["a"], "a.db")


def test_environment_alone_can_fill_a_nested_struct() -> None:
    s = load_settings(Settings, None, env={"FLOWPUMP_DB__PATH": "from-env.db"})
    assert s.db.path == "from-env.db"


def test_a_bad_value_names_the_key_and_the_expected_type(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'port = "eighty"\n[db]\npath = "a.db"\n')
    with pytest.raises(fp.ConfigError, match=re.escape("setting `port` (")) as info:
        load_settings(Settings, path, env={})
    assert info.value.key == "port"
    assert info.value.expected == "int"
    assert "settings.toml" in str(info.value)


def test_a_bad_nested_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[db]\npath = "a.db"\n')
    with pytest.raises(fp.ConfigError, match=re.escape("environment variable FLOWPUMP_DB__TIMEOUT")) as info:
        load_settings(Settings, path, env={"FLOWPUMP_DB__TIMEOUT": "soon"})
    assert info.value.key == "db.timeout"
    assert info.value.expected == "float"


def test_a_missing_setting_is_named(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[db]\ntimeout = 1\n")
    with pytest.raises(fp.ConfigError, match=re.escape("setting `db.path` is missing")):
        load_settings(Settings, path, env={})


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(fp.ConfigError, match="does not exist"):
        load_settings(Settings, tmp_path / "nope.toml", env={})
    with pytest.raises(fp.ConfigError, match="not valid TOML"):
        load_settings(Settings, _toml(tmp_path, "port = = 1"), env={})


def test_application_settings_from_file_and_flowpump_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _toml(tmp_path, 'port = 7\n[db]\npath = "x.db"\n')
    app = fp.Application(config=Settings, config_file=path)
    assert app.settings.port == 7
    monkeypatch.setenv("FLOWPUMP_CONFIG", str(path))
    monkeypatch.setenv("FLOWPUMP_PORT", "8")
    assert fp.Application(config=Settings).settings.port == 8
    assert fp.Application().settings is None


def test_application_run_fails_early_on_bad_settings(tmp_path: Path) -> None:
    app = fp.Application(config=Settings, config_file=_toml(tmp_path, "port = 1\n"))
    with pytest.raises(fp.ConfigError, match=re.escape("setting `db` is missing")):
        app.run()


class Named(msgspec.Struct):
    db: Db
    name: str | None = None
    token: str = ""
    port: int = 8080


def test_a_string_field_takes_the_environment_value_as_it_is(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[db]\npath = "a.db"\n')
    env = {"FLOWPUMP_NAME": "123", "FLOWPUMP_TOKEN": "007", "FLOWPUMP_PORT": "9000"}
    s = load_settings(Named, path, env=env)
    assert (s.name, s.token, s.port) == ("123", "007", 9000)
    assert load_settings(Named, path, env={"FLOWPUMP_NAME": "true"}).name == "true"


def test_a_nested_struct_can_be_set_whole_as_json(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[db]\npath = "a.db"\ntimeout = 1.0\n')
    s = load_settings(Named, path, env={"FLOWPUMP_DB": '{"timeout": 9}'})
    assert s.db == Db("a.db", 9.0)
    s = load_settings(Named, path, env={"FLOWPUMP_DB": '{"timeout": 9}', "FLOWPUMP_DB__TIMEOUT": "3"})
    assert s.db == Db("a.db", 3.0)
    with pytest.raises(
        fp.ConfigError, match=r"setting `db` \(environment variable FLOWPUMP_DB\) expected a JSON object"
    ):
        load_settings(Named, path, env={"FLOWPUMP_DB": "a.db"})
    with pytest.raises(fp.ConfigError, match=r"setting `db.timeout` \(environment variable FLOWPUMP_DB\)"):
        load_settings(Named, path, env={"FLOWPUMP_DB": '{"timeout": "slow"}'})
