"""`flask copy-to-postgresql`: a SQLite database built by the service, copied into PostgreSQL and checked.

The source is always a SQLite file and the target a schema on the local PostgreSQL server
(tests/databases.py `postgresql_location`), on either backend's run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from click.testing import Result
from flask import Flask

from tests import databases
from tests.support import KEEP_HISTORY, ROOT, TEST_JWT_SECRET, Member, login, make_event, rule_body, seed_org
from weather_metrics import create_app
from weather_metrics.query import parity
from weather_metrics.store import db
from weather_metrics.store.backup import lock_path, release_service_lock

SETTINGS = {
    "jwt_secret": TEST_JWT_SECRET,
    "rate_limit_per_minute": 100_000,
    "password_time_cost": 2,
    "password_memory_kib": 19456,
    "webhook_allow_private": True,
    **KEEP_HISTORY,
}
STATS = [f"/v1/stats/{what}?period={days}d" for what in ("overview", "tools", "performance") for days in (7, 90)]


@dataclass
class Source:
    """The SQLite file, who can log in to it, and what it answered before the copy."""

    path: Path
    developer: Member
    stats: dict[str, Any]
    dashboards: list[dict[str, Any]]


def build(path: Path, **settings: Any) -> Flask:
    app = create_app({**SETTINGS, "database": str(path), **settings})
    app.config["TESTING"] = True
    return app


def copy_command(configured: Path, *args: str) -> Result:
    """`flask copy-to-postgresql ARGS` in an app as app.py builds it for commands (no background threads)."""
    app = create_app({**SETTINGS, "database": str(configured)}, background=False)
    return app.test_cli_runner().invoke(args=["copy-to-postgresql", *args])


def close(app: Flask) -> None:
    app.extensions["weather_metrics"].close()


def hours_ago(hours: int) -> str:
    moment = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_events(app: Flask) -> None:
    """/v1 events over several days: tools, versions, errors, cache hits and misses, countries."""
    client = app.test_client()
    events = [
        make_event(
            tool=("get_forecast", "get_alerts", "geocode")[n % 3],
            version=f"1.{n % 2}.0",
            timestamp_hour=hours_ago(n * 7 % 200),
            response_time_ms=40 + n * 13.25,  # binary fractions: sums come out exact in any order
            status="error" if n % 5 == 0 else "success",
            error_type="timeout" if n % 5 == 0 else None,
            cache_hit=n % 4 == 0,
            country=("US", "DE", "JP")[n % 3],
        )
        for n in range(60)
    ]
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.get_json()


def seed_organization(app: Flask) -> dict[str, Member]:
    """Users, a team, keys, dashboards, an alert rule, a webhook, executions and productivity metrics."""
    people = seed_org(app, "Acme")
    client, admin = app.test_client(), people["admin"].headers
    team = client.post("/api/teams", json={"name": "Core"}, headers=admin).get_json()["id"]
    for role in ("developer", "manager"):
        body = {"user_id": people[role].user.id, "role": "member"}
        assert client.post(f"/api/teams/{team}/members", json=body, headers=admin).status_code == 201
    key = client.post("/api/keys", json={"name": "mcp server"}, headers=admin).get_json()["secret"]
    client.post("/api/keys", json={"name": "reader", "scope": "read"}, headers=admin)
    for name, scope in (("Mine", "user"), ("Core board", "team"), ("Everyone", "organization")):
        body = {"name": name, "scope": scope, **({"team_id": team} if scope == "team" else {})}
        assert client.post("/api/dashboards", json=body, headers=people["developer"].headers).status_code in (201, 403)
        assert client.post("/api/dashboards", json=body, headers=admin).status_code == 201
    assert client.post("/api/alerts/rules", json=rule_body(), headers=admin).status_code == 201
    organization = people["admin"].user.organization_id
    hook = {"hook_url": "http://127.0.0.1:9/hook", "events": ["metrics.collected"], "organization_id": organization}
    response = client.post("/mcp/hooks/register", json={**hook, "secret": "s" * 32}, headers={"X-API-Key": key})
    assert response.status_code == 201, response.get_json()
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    executions = [
        {"agent_name": f"agent-{n % 3}", "command": "pytest", "execution_time_ms": 80 + n * 3.25, "success": n % 4 != 0,
         "timestamp": stamp, "user_identifier": people["developer"].user.email, "metadata": {"n": n}}
        for n in range(30)
    ]  # fmt: skip
    assert client.post("/mcp/metrics/collect", json=executions, headers={"X-API-Key": key}).status_code == 201
    metrics = [{"type": "commits", "value": n, "timestamp": stamp, "team_id": team} for n in range(1, 6)]
    response = client.post("/api/metrics/productivity", json=metrics, headers=people["developer"].headers)
    assert response.status_code == 201, response.get_json()
    return people


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    path = tmp_path_factory.mktemp("source") / "metrics.db"
    app = build(path)
    try:
        seed_events(app)
        people = seed_organization(app)
        client = app.test_client()
        stats = {url: client.get(url).get_json() for url in STATS}
        boards = client.get("/api/dashboards", headers=people["developer"].headers).get_json()["dashboards"]
    finally:
        close(app)
    # As when the service's process ends: everything in the main file, and the service lock let go.
    db.database.close_all()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    conn.close()
    release_service_lock(path)
    return Source(path, people["developer"], stats, boards)


@pytest.fixture
def target(tmp_path: Path) -> str:
    """A new schema without tables on the local PostgreSQL server."""
    return databases.postgresql_location(tmp_path / "target.db", fresh=True)


@pytest.fixture
def command(source: Source, target: str, tmp_path: Path) -> Any:
    """Runs `flask copy-to-postgresql SOURCE TARGET ...` with the `database` setting on a file of its own."""

    def run(*options: str) -> Result:
        return copy_command(tmp_path / "scratch.db", str(source.path), target, *options)

    return run


def target_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_service_on_the_copy_answers_as_it_did_on_sqlite(source: Source, target: str, command: Any) -> None:
    before = digest(source.path)
    result = command()
    assert digest(source.path) == before  # read only
    assert result.exit_code == 0, result.output
    assert "copied        events" in result.output and "check         the same" in result.output
    tables = [line.split()[1] for line in result.output.splitlines() if line.startswith("copied ") and "rows" in line]
    assert {"events", "users", "dashboards", "alert_rules", "webhooks", "agent_executions", "data_versions"} <= set(
        tables
    )
    app = create_app({**SETTINGS, "database": target})
    try:
        client = app.test_client()
        assert {url: client.get(url).get_json() for url in STATS} == source.stats
        tokens = login(client, source.developer.user.email, source.developer.password)
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert client.get("/api/dashboards", headers=headers).get_json()["dashboards"] == source.dashboards
        (highest,) = target_rows(target, "SELECT MAX(id) FROM events")[0]
        assert client.post("/v1/events", json={"events": [make_event()]}).status_code == 200
        assert target_rows(target, "SELECT MAX(id), COUNT(*) FROM events") == [(highest + 1, 61)]
    finally:
        close(app)


def test_a_target_with_rows_is_refused_and_the_check_alone_passes(source: Source, target: str, command: Any) -> None:
    assert command().exit_code == 0
    again = command()
    assert again.exit_code != 0
    assert "the target database is not empty: table" in again.output
    check = command("--check-only")
    assert check.exit_code == 0, check.output
    assert "copied" not in check.output and "check         the same" in check.output


@pytest.mark.parametrize(
    ("change", "table"),
    [
        ("UPDATE users SET name = 'Someone Else' WHERE email = 'developer@acme.test'", "users"),
        ("UPDATE events SET response_time_ms = response_time_ms + 1 WHERE id = 7", "events"),
        ("DELETE FROM api_keys WHERE scope = 'read'", "api_keys"),
        ("SELECT setval(pg_get_serial_sequence('events', 'id'), 3)", "events"),
    ],
)
def test_one_changed_row_fails_the_check_naming_its_table(
    source: Source, target: str, command: Any, change: str, table: str
) -> None:
    assert command().exit_code == 0
    target_rows(target, change)
    check = command("--check-only")
    assert check.exit_code != 0
    assert f"differs       {table}: " in check.output
    assert "check         the same" not in check.output


def test_a_change_to_rollups_shows_in_the_stats_answers(source: Source, target: str, command: Any) -> None:
    assert command().exit_code == 0
    target_rows(target, "UPDATE tool_daily SET calls = calls + 1 WHERE tool = 'geocode'")
    check = command("--check-only")
    assert check.exit_code != 0
    assert "differs       tool_daily: the same" in check.output
    assert "differs       /v1/stats/overview?period=7d on " in check.output


def flask(configured: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`flask --app app ...` in a subprocess with the `database` setting on `configured`, as an operator runs it."""
    env = {
        **os.environ,
        "WEATHER_METRICS_CONFIG": os.devnull,
        "WEATHER_METRICS_DATABASE": configured,
        "WEATHER_METRICS_JWT_SECRET": TEST_JWT_SECRET,
    }
    argv = [sys.executable, "-m", "flask", "--app", "app", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_database_setting_may_name_the_source_or_the_target(source: Source, target: str) -> None:
    """The service's config as it was (the source) or as it will be (the target): the command's start runs
    no background work on either, so the source's pending webhook deliveries and due alert rule stay as they were."""
    before = digest(source.path)
    copied = flask(str(source.path), "copy-to-postgresql", str(source.path), target)
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert "check         the same" in copied.stdout
    assert digest(source.path) == before
    checked = flask(target, "copy-to-postgresql", "--check-only", str(source.path), target)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "check         the same" in checked.stdout


def test_a_source_of_another_schema_version_is_refused(source: Source, target: str, tmp_path: Path) -> None:
    older = tmp_path / "older.db"
    shutil.copyfile(source.path, older)
    with sqlite3.connect(older) as conn:
        conn.execute("UPDATE schema_version SET version = version - 1")
    conn.close()
    result = copy_command(tmp_path / "other.db", str(older), target)
    assert result.exit_code != 0
    assert "start the service of this release once on it" in result.output
    assert target_rows(target, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]


def test_a_backup_file_is_copied_without_a_byte_of_it_changing(source: Source, target: str, tmp_path: Path) -> None:
    """A backup is in rollback-journal mode: a reader setting WAL mode, as the service's connections do, writes."""
    backup_file = tmp_path / "backup.db"
    with sqlite3.connect(source.path) as live, sqlite3.connect(backup_file) as copy:
        live.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")
    live.close()
    copy.close()
    before = digest(backup_file)
    result = copy_command(tmp_path / "scratch.db", str(backup_file), target)
    assert result.exit_code == 0, result.output
    assert digest(backup_file) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("backup")) == ["backup.db"]


def test_a_row_postgresql_cannot_hold_stops_the_copy_and_leaves_the_target_empty(
    source: Source, target: str, tmp_path: Path
) -> None:
    odd = tmp_path / "odd.db"
    shutil.copyfile(source.path, odd)
    with sqlite3.connect(odd) as conn:  # SQLite keeps text in an INTEGER column; BIGINT cannot
        conn.execute("UPDATE events SET retry_count = 'many' WHERE id = 5")
    conn.close()
    result = copy_command(tmp_path / "scratch.db", str(odd), target)
    assert result.exit_code != 0
    assert "table events: a row after the first 0 cannot be copied" in result.output
    assert target_rows(target, "SELECT COUNT(*) FROM agent_executions") == [(0,)]  # copied before events, rolled back


def test_a_source_a_running_service_holds_is_refused(source: Source, target: str, command: Any) -> None:
    held = os.open(lock_path(source.path), os.O_RDONLY)  # as another process serving the file holds it
    try:
        fcntl.flock(held, fcntl.LOCK_SH)
        result = command()
    finally:
        os.close(held)
    assert result.exit_code != 0
    assert "a running service uses" in result.output
    assert target_rows(target, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        ({"avg_ms": 457.8, "calls": 20}, {"avg_ms": 457.9, "calls": 20}, True),  # a half-way sum rounded apart
        ({"avg_ms": 457.8}, {"avg_ms": 458.0}, False),
        ({"rate": 0.123}, {"rate": 0.125}, False),
        ({"sum": 1234.56789012345}, {"sum": 1234.5678901234502}, True),
        ({"calls": 20}, {"calls": 21}, False),
        ({"tools": ["a", "b"]}, {"tools": ["b", "a"]}, False),
        ({"p95_ms": None}, {"p95_ms": 0.0}, False),
    ],
)
def test_answers_compare_equal_within_the_last_decimal_only(left: Any, right: Any, equal: bool) -> None:
    assert parity.same(left, right) is equal


@pytest.mark.parametrize("options", [(), ("--check-only",)])
def test_a_target_url_libpq_cannot_read_is_refused_without_showing_its_password(
    source: Source, tmp_path: Path, options: tuple[str, ...]
) -> None:
    """A password with a bare % (not percent-encoded) is quoted whole by libpq: it stays out of the output."""
    url = "postgresql://postgres:pa%zzword@127.0.0.1:5432/postgres"
    result = copy_command(tmp_path / "scratch.db", str(source.path), url, *options)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "invalid percent-encoded token" in result.output
    assert "zzword" not in result.output
