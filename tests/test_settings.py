"""Settings: defaults, the TOML file, WEATHER_METRICS_* variables, and bad values that stop start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests import databases
from tests.support import ROOT, TEST_JWT_SECRET, make_event
from weather_metrics import create_app
from weather_metrics.settings import SETTINGS, SettingsError, load_settings
from weather_metrics.store.db import database

DEFAULTS = {s.name: s.default for s in SETTINGS}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config.toml in the working directory and no settings in the real environment."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("WEATHER_METRICS_") or name == "PORT":
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, text: str, name: str = "settings.toml") -> dict[str, str]:
    """Write a TOML file and return the environment that names it."""
    path = tmp_path / name
    path.write_text(text)
    return {"WEATHER_METRICS_CONFIG": str(path)}


def test_defaults() -> None:
    settings = load_settings({}, {})
    assert settings == DEFAULTS
    # The contract's numbers: port 3000, 60 requests a minute plus a burst of 10.
    assert (settings["port"], settings["rate_limit_per_minute"], settings["rate_limit_burst"]) == (3000, 60, 10)
    assert settings["ack"] == "commit"


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    environ = write_config(
        tmp_path,
        'port = 8080\nack = "enqueue"\nack_timeout_seconds = 2\nlog_level = "debug"\ndatabase = "/srv/m.db"\n',
    )
    settings = load_settings({}, environ)
    assert settings == {
        **DEFAULTS,
        "port": 8080,
        "ack": "enqueue",
        "ack_timeout_seconds": 2.0,
        "log_level": "debug",
        "database": "/srv/m.db",
    }
    assert isinstance(settings["ack_timeout_seconds"], float)


def test_config_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("threads = 8\n")
    assert load_settings({}, {})["threads"] == 8


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    environ = write_config(tmp_path, 'port = 8080\nack = "enqueue"\nretention_days = 30\n')
    environ.update(
        {
            "WEATHER_METRICS_PORT": "9090",
            "WEATHER_METRICS_ACK": "commit",
            "WEATHER_METRICS_ACK_TIMEOUT_SECONDS": "2.5",
            "WEATHER_METRICS_RATE_LIMIT_BURST": "0",
            "WEATHER_METRICS_DATABASE": "/var/lib/weather_metrics/metrics.db",
        }
    )
    settings = load_settings({}, environ)
    assert settings["port"] == 9090
    assert settings["ack"] == "commit"
    assert settings["ack_timeout_seconds"] == 2.5
    assert settings["rate_limit_burst"] == 0
    assert settings["database"] == "/var/lib/weather_metrics/metrics.db"
    assert settings["retention_days"] == 30  # from the file, not overridden


def test_overrides_beat_environment_and_file(tmp_path: Path) -> None:
    environ = write_config(tmp_path, "threads = 8\n")
    environ["WEATHER_METRICS_THREADS"] = "16"
    assert load_settings({"threads": 32}, environ)["threads"] == 32


def test_port_variable_sets_the_port(tmp_path: Path) -> None:
    assert load_settings({}, {"PORT": "5000"})["port"] == 5000
    environ = write_config(tmp_path, "port = 8080\n")
    environ["PORT"] = "5000"
    assert load_settings({}, environ)["port"] == 5000


def test_unrelated_environment_is_ignored() -> None:
    environ = {"HOME": "/root", "WEATHER_METRICS_": "x", "DATABASE": "other.db", "THREADS": "abc"}
    assert load_settings({}, environ) == DEFAULTS


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("port", "abc"),
        ("port", "0"),
        ("port", ""),
        ("port", "80.5"),
        ("ack", "sometimes"),
        ("threads", "0"),
        ("synchronous", "off"),
        ("log_level", "loud"),
        ("rate_limit_per_minute", "0"),
        ("rate_limit_burst", "-1"),
        ("trusted_proxies", "-1"),
        ("ack_timeout_seconds", "0"),
        ("ack_timeout_seconds", "soon"),
        ("queue_max_events", "99"),
        ("rollup_retention_days", "30"),
    ],
)
def test_bad_environment_value_names_the_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({}, {f"WEATHER_METRICS_{key.upper()}": value})
    assert f"'{key}'" in str(raised.value)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('port = "abc"', "port"),
        ("threads = 0", "threads"),
        ("threads = true", "threads"),
        ("retention_days = 1.5", "retention_days"),
        ('ack = "sometimes"', "ack"),
        ("ack = 1", "ack"),
        ("log_level = false", "log_level"),
    ],
)
def test_bad_file_value_names_the_key(tmp_path: Path, line: str, key: str) -> None:
    environ = write_config(tmp_path, line + "\n")
    with pytest.raises(SettingsError) as raised:
        load_settings({}, environ)
    assert f"'{key}'" in str(raised.value)


def test_bad_port_variable_names_the_port() -> None:
    with pytest.raises(SettingsError, match="'port'"):
        load_settings({}, {"PORT": "http"})


def test_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    environ = write_config(tmp_path, "port = 3000\nrate_limit = 60\n")
    with pytest.raises(SettingsError) as raised:
        load_settings({}, environ)
    assert "'rate_limit'" in str(raised.value)
    assert environ["WEATHER_METRICS_CONFIG"] in str(raised.value)


def test_unknown_override_is_named() -> None:
    with pytest.raises(SettingsError, match="'databse'"):
        load_settings({"databse": "x.db"}, {})


@pytest.mark.parametrize("text", ["port = \n", "port 3000\n", "[server]\nport = 1\nport = 2\n", "ack = 'commit\n"])
def test_malformed_toml_names_the_file(tmp_path: Path, text: str) -> None:
    environ = write_config(tmp_path, text)
    with pytest.raises(SettingsError) as raised:
        load_settings({}, environ)
    assert environ["WEATHER_METRICS_CONFIG"] in str(raised.value)


def test_missing_config_file_names_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.toml")
    with pytest.raises(SettingsError) as raised:
        load_settings({}, {"WEATHER_METRICS_CONFIG": missing})
    assert missing in str(raised.value)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_seconds_are_rejected(value: str) -> None:
    with pytest.raises(SettingsError, match="'ack_timeout_seconds'"):
        load_settings({}, {"WEATHER_METRICS_ACK_TIMEOUT_SECONDS": value})


def test_array_for_a_string_setting_is_rejected(tmp_path: Path) -> None:
    environ = write_config(tmp_path, 'database = ["a.db"]\n')
    with pytest.raises(SettingsError, match="'database'"):
        load_settings({}, environ)


def test_port_above_65535_is_rejected() -> None:
    with pytest.raises(SettingsError, match="'port'"):
        load_settings({}, {"PORT": "70000"})


# --- config.example.toml documents every setting -----------------------------------------

EXAMPLE = ROOT / "config.example.toml"


def test_example_config_has_every_setting_with_its_default() -> None:
    with open(EXAMPLE, "rb") as fh:
        example = tomllib.load(fh)
    assert sorted(example) == sorted(DEFAULTS)
    for name, default in DEFAULTS.items():
        assert example[name] == default, name
        assert type(example[name]) is type(default), name


def test_example_config_explains_every_setting() -> None:
    text = EXAMPLE.read_text()
    for setting in SETTINGS:
        assert f"# {setting.help}\n" in text, setting.name
        if setting.choices:
            assert f"# One of: {', '.join(setting.choices)}.\n" in text, setting.name


def test_example_config_loads_to_the_defaults(tmp_path: Path) -> None:
    assert load_settings({}, {"WEATHER_METRICS_CONFIG": str(EXAMPLE)}) == DEFAULTS


def test_the_configuration_page_puts_every_setting_in_a_group() -> None:
    """docs/configuration.md sorts the settings by purpose: a new setting needs a place there too."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert [name for name in DEFAULTS if f"`{name}`" not in page] == []


# --- start-up -------------------------------------------------------------------------


def test_app_with_a_bad_setting_does_not_start(tmp_path: Path) -> None:
    db_file = tmp_path / "never.db"
    with pytest.raises(SettingsError) as raised:
        create_app({"database": str(db_file), "ack": "bogus"})
    assert "'ack'" in str(raised.value)
    assert "bogus" in str(raised.value)
    assert not db_file.exists()


def test_app_with_a_bad_environment_variable_does_not_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHER_METRICS_THREADS", "many")
    db_file = tmp_path / "never.db"
    with pytest.raises(SettingsError, match="'threads'"):
        create_app({"database": str(db_file)})
    assert not db_file.exists()


def events_in(path: Path) -> int:
    return int(databases.rows(path, "SELECT COUNT(*) FROM events")[0][0])


def test_second_app_uses_its_own_database_file(tmp_path: Path) -> None:
    first_file, second_file = tmp_path / "first.db", tmp_path / "second.db"
    apps: list[Any] = []
    try:
        for path in (first_file, second_file):
            settings = {"database": databases.location(path), "rate_limit_per_minute": 100_000}
            app = create_app({**settings, "jwt_secret": TEST_JWT_SECRET})
            apps.append(app)
            client = app.test_client()
            assert client.get("/v1/stats/overview").get_json()["summary"]["total_calls"] == 0
            assert client.post("/v1/events", json={"events": [make_event()]}).status_code == 200
            app.extensions["weather_metrics"].close()
        assert (events_in(first_file), events_in(second_file)) == (1, 1)
    finally:
        for app in apps:
            app.extensions["weather_metrics"].close()
        database.close_all()


@pytest.mark.parametrize(
    ("key", "value"),
    [("retention_days", 1_000_000), ("prune_interval_seconds", 1e10), ("threads", 100_000), ("trusted_proxies", 50)],
)
def test_values_past_a_settings_maximum_stop_start_up(key, value):
    with pytest.raises(SettingsError, match=f"setting '{key}': must be at most"):
        load_settings({key: value}, environ={})


def test_config_example_is_what_the_settings_table_says():
    """Regenerate with: make config-example"""
    from weather_metrics.runtime.config_example import example_config

    assert EXAMPLE.read_text() == example_config()


def test_a_queue_smaller_than_the_largest_request_is_refused() -> None:
    # Such a request could never be queued: every retry would get 503 again.
    with pytest.raises(SettingsError, match="'queue_max_events'"):
        load_settings({"queue_max_events": 500, "metrics_max_items": 1000})
    assert load_settings({"queue_max_events": 1000, "metrics_max_items": 1000})["queue_max_events"] == 1000


@pytest.mark.parametrize(
    "tls",
    [{"WEATHER_METRICS_TLS_CERTFILE": "/no/such/cert.pem"}, {"WEATHER_METRICS_TLS_KEYFILE": str(Path(__file__))}],
)
def test_https_needs_both_readable_files_or_the_server_does_not_start(tls):
    """One of the pair, or a file that is not there, stops the server before it forks, naming the setting."""
    env = {**os.environ, "WEATHER_METRICS_CONFIG": os.devnull, "WEATHER_METRICS_JWT_SECRET": "s" * 40, **tls}
    done = subprocess.run(
        [sys.executable, "-c", "import weather_metrics.runtime.gunicorn_conf"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode != 0 and "setting 'tls_" in done.stderr, done.stderr[-500:]
