"""The service and its PostgreSQL server: a server it cannot reach at start, and one that restarts under it.

Against the real server at 127.0.0.1:5432, on either backend's run, in schemas of their own
(tests/databases.py). Without a server the tests skip; under WEATHER_METRICS_TEST_STRICT=1 they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import databases
from tests.support import ROOT, TEST_JWT_SECRET, free_port, make_event, seed_org
from tests.test_postgresql import fresh_schema_url
from weather_metrics import create_app
from weather_metrics.settings import SettingsError
from weather_metrics.store.db import without_password

PASSWORD = "pa55:w@rd-7f3e"  # holds the characters a URL parser could stop at
QUOTED = "pa55%3Aw%40rd-7f3e"
SERVER = urlsplit(databases.SERVER)


def url(user: str = "postgres", port: int | str | None = None, name: str = "postgres") -> str:
    return f"postgresql://{user}:{QUOTED}@{SERVER.hostname}:{port or SERVER.port}/{name}"


@pytest.fixture
def server_up(tmp_path: Path) -> None:
    """The server is running (started if it is down), as the cases that reach it need."""
    fresh_schema_url(tmp_path / "up.db")


BAD = {
    "nothing listens on the port": (lambda: url(port=free_port()), "Connection refused"),
    "no such database": (lambda: url(name="weather_metrics_no_such_db"), 'database "weather_metrics_no_such_db"'),
    "no such role": (lambda: url(user="weather_metrics_no_such_role"), 'role "weather_metrics_no_such_role"'),
    "a port that is no number": (lambda: url(port="fivefour"), 'invalid integer value "fivefour"'),
    "an unclosed IPv6 address": (lambda: f"postgresql://postgres:{QUOTED}@[::1/postgres", "invalid dsn"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_database_that_cannot_be_opened_stops_start_up_naming_the_setting(server_up, tmp_path, case):
    location, reason = BAD[case][0](), BAD[case][1]
    with pytest.raises(SettingsError) as raised:
        create_app({"database": location, "jwt_secret": TEST_JWT_SECRET, "export_dir": str(tmp_path)})
    message = str(raised.value)
    assert message.startswith("setting 'database': cannot open postgresql://"), message
    assert without_password(location)[0] in message and ":***@" in message
    assert reason in message
    assert PASSWORD not in message and QUOTED not in message and "\n" not in message


def test_the_message_names_the_environment_variable_that_set_the_url(monkeypatch, tmp_path):
    monkeypatch.setenv("WEATHER_METRICS_DATABASE", url(port=free_port()))
    with pytest.raises(SettingsError, match=r"^setting 'database' \(WEATHER_METRICS_DATABASE\): cannot open"):
        create_app({"jwt_secret": TEST_JWT_SECRET, "export_dir": str(tmp_path)})


def test_the_server_stops_before_it_forks_with_one_line_naming_the_setting(server_up, tmp_path):
    env = {
        **os.environ,
        "WEATHER_METRICS_CONFIG": os.devnull,
        "WEATHER_METRICS_JWT_SECRET": TEST_JWT_SECRET,
        "WEATHER_METRICS_DATABASE": url(name="weather_metrics_no_such_db"),
        "WEATHER_METRICS_EXPORT_DIR": str(tmp_path),
        "PORT": str(free_port()),
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    argv = [gunicorn, "--config", "python:weather_metrics.runtime.gunicorn_conf", "app:app"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "[ERROR] setting 'database' (WEATHER_METRICS_DATABASE): cannot open" in done.stderr, done.stderr
    assert 'database "weather_metrics_no_such_db" does not exist' in done.stderr
    assert "Traceback" not in done.stderr and PASSWORD not in done.stderr and QUOTED not in done.stderr


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (f"postgresql://u:{QUOTED}@h/d", "postgresql://u:***@h/d"),
        (f"postgresql://u:{PASSWORD}@h:5/d", "postgresql://u:***@h:5/d"),
        ("postgresql://u@h/d?sslmode=require&password=x%20y", "postgresql://u@h/d?sslmode=require&password=***"),
        ("postgres://h/d", "postgres://h/d"),
    ],
)
def test_a_url_is_shown_without_its_password(given, shown):
    assert without_password(given)[0] == shown


# --- the server restarts under a running service -------------------------------------------------------


def drop_service_connections() -> int:
    """What a server restart does to the service: every connection of it is ended by the server."""
    ended = databases.admin_rows(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'weather_metrics'"
    )
    assert ended and all(ok for (ok,) in ended)
    return len(ended)


def export_done(client: Any, headers: dict[str, str]) -> None:
    """An export is queued and the runner threads build it, within a generous time."""
    body = {"format": "csv", "report_type": "productivity", "filters": {}}
    response = client.post("/api/reports/export", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    deadline = time.monotonic() + 30
    while client.get(response.get_json()["status_url"], headers=headers).get_json()["status"] != "done":
        assert time.monotonic() < deadline, "the export was not built"
        time.sleep(0.05)


def test_after_the_server_drops_every_connection_reads_and_background_work_go_on(make_app, tmp_path):
    app = make_app(database=fresh_schema_url(tmp_path / "pg.db"), threads=4)
    headers = seed_org(app)["admin"].headers
    client = app.test_client()
    assert client.post("/v1/events", json={"events": [make_event(), make_event()]}).status_code == 200
    reads = [("/v1/stats/overview", {}), ("/v1/stats/tools", {}), ("/v1/status", {}), ("/api/users", headers)]
    for _ in range(4):  # several pooled connections, each used and back in the pool
        assert [client.get(path, headers=h).status_code for path, h in reads] == [200] * len(reads)
    export_done(client, headers)
    drop_service_connections()
    after = [(path, client.get(path, headers=h).status_code) for _ in range(4) for path, h in reads]
    assert after == [(path, 200) for _ in range(4) for path, _h in reads]
    export_done(client, headers)  # the runner threads held connections the server ended
    assert client.post("/v1/events", json={"events": [make_event()]}).status_code == 200
