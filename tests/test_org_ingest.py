"""POST /api/metrics/agents and /api/metrics/productivity: what is stored, for whom, and what is refused."""

from __future__ import annotations

import io
import json
import re
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, TestResponse

from tests import databases
from tests.support import Member, Server, assert_api_error, http, scraped
from weather_metrics.accounts import organizations as accounts
from weather_metrics.store.db import execute

AGENTS = "/api/metrics/agents"
PRODUCTIVITY = "/api/metrics/productivity"
SURFACES = (AGENTS, PRODUCTIVITY)
TABLES = ("agent_executions", "productivity_metrics", "agent_hourly", "agent_user_hourly", "productivity_hourly")


def stamp(seconds: float = 0) -> str:
    """An ISO 8601 UTC timestamp `seconds` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def with_overrides(item: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The item with fields replaced or added; a value of None removes the field."""
    item = {**item, **overrides}
    return {k: v for k, v in item.items() if v is not None}


def execution(**overrides: Any) -> dict[str, Any]:
    """A valid agent execution."""
    item = {
        "agent_name": "code-reviewer",
        "command": "review src/app.py",
        "execution_time_ms": 1200,
        "success": True,
        "timestamp": stamp(-60),
    }
    return with_overrides(item, overrides)


def metric(**overrides: Any) -> dict[str, Any]:
    """A valid productivity metric."""
    return with_overrides({"type": "commits", "value": 3, "timestamp": stamp(-60)}, overrides)


def valid_item(path: str, **overrides: Any) -> dict[str, Any]:
    return execution(**overrides) if path == AGENTS else metric(**overrides)


def query(app: Flask, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with app.app_context():
        return list(execute(sql, params).fetchall())


def counts(app: Flask) -> dict[str, int]:
    """Rows in every raw and rollup table of organization metrics."""
    return {table: query(app, f"SELECT COUNT(*) FROM {table}")[0][0] for table in TABLES}


def post(client: FlaskClient, path: str, body: Any, member: Member, key: str | None = None) -> TestResponse:
    headers = dict(member.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(path, json=body, headers=headers)


def created(response: TestResponse, accepted: int) -> dict[str, Any]:
    """The 201 ingestion summary; returns it."""
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"status", "batch_id", "accepted", "received_at"}, body
    assert body["status"] == "accepted" and body["accepted"] == accepted, body
    assert isinstance(body["batch_id"], str) and body["batch_id"], body
    received = datetime.fromisoformat(body["received_at"])
    assert abs(received.timestamp() - time.time()) < 60, body
    return body  # type: ignore[no-any-return]


def add_developer(app: Flask, org_id: str, email: str) -> Any:
    passwords = app.extensions["weather_metrics"].passwords
    with app.app_context():
        user, _ = accounts.create_user(org_id, email, "Extra", "developer", passwords, password="x" * 16)
    return user


def make_team(app: Flask, org_id: str, name: str, *users: Any) -> str:
    with app.app_context():
        team = accounts.create_team(org_id, name, "")
        for user in users:
            accounts.add_member(team, user, "member")
        return team.id  # type: ignore[no-any-return]


@pytest.fixture
def app(service: Callable[..., Flask]) -> Flask:
    return service()


# --- what is stored ----------------------------------------------------------------------------


def test_agent_executions_are_stored_for_the_poster_and_rolled_up(app, client, acme):
    developer = acme["developer"].user
    batch = [
        execution(execution_time_ms=1000, metadata={"model": "opus"}, session_id="s-1"),
        execution(execution_time_ms=3000, success=False, error_details="timeout"),
    ]
    answer = created(post(client, AGENTS, batch, acme["developer"]), accepted=2)

    rows = query(
        app,
        "SELECT organization_id, batch_id, user_id, agent_name, duration_ms, success, error_details, metadata,"
        " session_id FROM agent_executions ORDER BY duration_ms",
    )
    org = developer.organization_id
    assert rows == [
        (org, answer["batch_id"], developer.id, "code-reviewer", 1000.0, 1, None, '{"model":"opus"}', "s-1"),
        (org, answer["batch_id"], developer.id, "code-reviewer", 3000.0, 0, "timeout", None, None),
    ]
    hourly = query(app, "SELECT organization_id, agent_name, success, calls, duration_sum FROM agent_hourly")
    assert sorted(hourly) == [(org, "code-reviewer", 0, 1, 3000.0), (org, "code-reviewer", 1, 1, 1000.0)]
    per_user = query(app, "SELECT user_id, success, calls FROM agent_user_hourly ORDER BY success")
    assert per_user == [(developer.id, 0, 1), (developer.id, 1, 1)]


def test_productivity_metrics_are_stored_for_the_poster_and_rolled_up(app, client, acme):
    developer = acme["developer"].user
    moment = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    at = moment.isoformat()
    batch = [metric(value=2, timestamp=at), metric(value=5.5, timestamp=at, metadata={"repo": "web"})]
    answer = created(post(client, PRODUCTIVITY, batch, acme["developer"]), accepted=2)

    rows = query(
        app,
        "SELECT organization_id, batch_id, metric_type, value, user_id, team_id, metadata, occurred_at"
        " FROM productivity_metrics ORDER BY value",
    )
    org, ts = developer.organization_id, moment.timestamp()
    assert rows == [
        (org, answer["batch_id"], "commits", 2.0, developer.id, None, None, ts),
        (org, answer["batch_id"], "commits", 5.5, developer.id, None, '{"repo":"web"}', ts),
    ]
    hourly = query(
        app,
        "SELECT organization_id, hour, user_id, team_id, samples, value_sum, value_min, value_max"
        " FROM productivity_hourly",
    )
    assert hourly == [(org, int(ts), developer.id, "", 2, 7.5, 2.0, 5.5)]


@pytest.mark.parametrize("path", SURFACES)
def test_one_object_is_a_batch_of_one(app, client, acme, path):
    created(post(client, path, valid_item(path), acme["developer"]), accepted=1)
    table = "agent_executions" if path == AGENTS else "productivity_metrics"
    assert query(app, f"SELECT user_id FROM {table}") == [(acme["developer"].user.id,)]


# --- bad bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SURFACES)
@pytest.mark.parametrize(
    ("raw", "detail_key"),
    [
        (b"[]", "_body"),
        (b'"commits"', None),
        (b"42", None),
        (b"null", None),
        (b'{"type": "commits",', None),
        (b"", None),
        (b"\xff\xfe{}", None),
    ],
    ids=["empty array", "string", "number", "null", "truncated", "empty body", "not utf-8"],
)
def test_a_body_that_is_not_objects_is_400_and_stores_nothing(app, client, acme, path, raw, detail_key):
    before = counts(app)
    response = client.post(path, data=raw, headers={**acme["developer"].headers, "Content-Type": "application/json"})
    error = assert_api_error(response, 400)
    if detail_key:
        assert detail_key in error["details"], error
    assert counts(app) == before


@pytest.mark.parametrize("path", SURFACES)
def test_items_that_are_not_objects_are_named_by_position(app, client, acme, path):
    before = counts(app)
    response = post(client, path, [valid_item(path), 7, "x", None], acme["developer"])
    error = assert_api_error(response, 400)
    assert error["details"] == {
        "items[1]": "Must be an object.",
        "items[2]": "Must be an object.",
        "items[3]": "Must be an object.",
    }
    assert counts(app) == before


@pytest.mark.parametrize("path", SURFACES)
def test_more_items_than_metrics_max_items_is_400_and_the_limit_itself_is_fine(service, acme, path):
    app = service(metrics_max_items=5)
    client = app.test_client()
    error = assert_api_error(post(client, path, [valid_item(path)] * 6, acme["developer"]), 400)
    assert error["details"] == {"_body": "Must contain between 1 and 5 items"}
    assert counts(app) == dict.fromkeys(TABLES, 0)
    created(post(client, path, [valid_item(path)] * 5, acme["developer"]), accepted=5)


def oversized(path: str) -> bytes:
    return json.dumps([valid_item(path, metadata={"note": "x" * 900})] * 3).encode()


@pytest.mark.parametrize("path", SURFACES)
def test_a_body_over_metrics_max_body_bytes_is_413_with_content_length(service, acme, path):
    app = service(metrics_max_body_bytes=1024)
    client = app.test_client()
    response = client.post(
        path, data=oversized(path), headers={**acme["developer"].headers, "Content-Type": "application/json"}
    )
    assert_api_error(response, 413)
    assert counts(app) == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize("path", SURFACES)
def test_a_body_over_metrics_max_body_bytes_is_413_without_content_length(service, acme, path):
    app = service(metrics_max_body_bytes=1024)
    client = app.test_client()

    def send(raw: bytes) -> TestResponse:
        headers = {**acme["developer"].headers, "Content-Type": "application/json"}
        environ = EnvironBuilder(path=path, method="POST", input_stream=io.BytesIO(raw), headers=headers).get_environ()
        del environ["CONTENT_LENGTH"]  # as a chunked upload arrives
        environ["wsgi.input_terminated"] = True
        return client.open(environ)

    assert_api_error(send(oversized(path)), 413)
    assert counts(app) == dict.fromkeys(TABLES, 0)
    created(send(json.dumps(valid_item(path)).encode()), accepted=1)  # the same way, within the limit


# --- field rules ----------------------------------------------------------------------------------

LONG_AGO = -91 * 86400  # retention_days is 90
FUTURE = 360  # clock_skew_seconds is 300

AGENT_FIELD_CASES: list[Any] = [
    ({"agent_name": None}, "agent_name", "Missing data for required field."),
    ({"command": None}, "command", "Missing data for required field."),
    ({"execution_time_ms": None}, "execution_time_ms", "Missing data for required field."),
    ({"success": None}, "success", "Missing data for required field."),
    ({"timestamp": None}, "timestamp", "Missing data for required field."),
    ({"execution_time_ms": True}, "execution_time_ms", "Must be a finite number."),
    ({"execution_time_ms": "1200"}, "execution_time_ms", "Must be a finite number."),
    ({"success": "true"}, "success", "Must be a boolean."),
    ({"success": 1}, "success", "Must be a boolean."),
    ({"agent_name": 5}, "agent_name", "Must be a string."),
    ({"agent_name": "a" * 129}, "agent_name", "Length must be between 1 and 128."),
    ({"command": "ls\x00-la"}, "command", "Must not contain control characters."),
    ({"metadata": ["x"]}, "metadata", "Must be an object."),
    ({"metadata": {"blob": "x" * 5000}}, "metadata", "Must be at most 4096 bytes of JSON."),
    ({"cost": 3}, "cost", "Unknown field."),
    ({"timestamp": "yesterday"}, "timestamp", "Must be an ISO 8601 date-time."),
    ({"timestamp": 1700000000}, "timestamp", "Must be an ISO 8601 date-time."),
    ({"timestamp": lambda: stamp(FUTURE)}, "timestamp", "Must not be in the future (beyond the allowed clock skew)."),
    ({"timestamp": lambda: stamp(LONG_AGO)}, "timestamp", "Older than the retention period."),
]
PRODUCTIVITY_FIELD_CASES: list[Any] = [
    ({"type": None}, "type", "Missing data for required field."),
    ({"value": None}, "value", "Missing data for required field."),
    ({"timestamp": None}, "timestamp", "Missing data for required field."),
    ({"value": True}, "value", "Must be a finite number."),
    ({"value": "3"}, "value", "Must be a finite number."),
    ({"value": 1e13}, "value", "Must be between -1000000000000 and 1000000000000."),
    ({"value": -1e13}, "value", "Must be between -1000000000000 and 1000000000000."),
    ({"type": "Commits"}, "type", "Must match [a-z][a-z0-9_.-]{0,63}."),
    ({"type": "lines added"}, "type", "Must match [a-z][a-z0-9_.-]{0,63}."),
    ({"type": 3}, "type", "Must match [a-z][a-z0-9_.-]{0,63}."),
    ({"user_id": 12}, "user_id", "Must be a string."),
    ({"team_id": False}, "team_id", "Must be a string."),
    ({"metadata": "notes"}, "metadata", "Must be an object."),
    ({"unit": "count"}, "unit", "Unknown field."),
    ({"timestamp": "2025-13-01T00:00:00Z"}, "timestamp", "Must be an ISO 8601 date-time."),
    ({"timestamp": lambda: stamp(FUTURE)}, "timestamp", "Must not be in the future (beyond the allowed clock skew)."),
    ({"timestamp": lambda: stamp(LONG_AGO)}, "timestamp", "Older than the retention period."),
]


def field_case(path: str, case: tuple[dict[str, Any], str, str]) -> Any:
    """A pytest.param of one field case on one surface, named by the field and its bad value."""
    change, field, message = case
    value = change[field] if field in change else change[next(iter(change))]
    name = f"{field}:{message}" if callable(value) else f"{field}={value!r}"[:40]
    return pytest.param(path, change, field, message, id=f"{path.rsplit('/', 1)[1]}:{name}")


@pytest.mark.parametrize(
    ("path", "change", "field", "message"),
    [field_case(AGENTS, case) for case in AGENT_FIELD_CASES]
    + [field_case(PRODUCTIVITY, case) for case in PRODUCTIVITY_FIELD_CASES],
)
def test_a_bad_field_is_400_naming_the_item_and_the_batch_stores_nothing(
    app, client, acme, path, change, field, message
):
    before = counts(app)
    change = {k: v() if callable(v) else v for k, v in change.items()}  # times relative to when the test runs
    batch = [valid_item(path), valid_item(path), valid_item(path, **change)]
    error = assert_api_error(post(client, path, batch, acme["developer"]), 400)
    assert error["details"] == {f"items[2].{field}": message}
    assert counts(app) == before


@pytest.mark.parametrize("duration", [-1, -0.5, 86_400_001, 1e300])
def test_an_execution_time_outside_zero_to_one_day_is_400(app, client, acme, duration):
    error = assert_api_error(
        post(client, AGENTS, [execution(), execution(execution_time_ms=duration)], acme["developer"]), 400
    )
    assert set(error["details"]) == {"items[1].execution_time_ms"}
    assert error["details"]["items[1].execution_time_ms"].startswith("Must be between 0 and ")
    assert counts(app) == dict.fromkeys(TABLES, 0)
    created(
        post(
            client, AGENTS, [execution(execution_time_ms=0), execution(execution_time_ms=86_400_000)], acme["developer"]
        ),
        accepted=2,
    )


def test_the_execution_time_limit_is_written_out_in_the_error(client, acme):
    error = assert_api_error(post(client, AGENTS, execution(execution_time_ms=86_400_001), acme["developer"]), 400)
    assert re.search(r"86,?400,?000", error["details"]["execution_time_ms"]), error


@pytest.mark.parametrize("path", SURFACES)
def test_one_bad_object_names_the_field_without_a_position(client, acme, path):
    error = assert_api_error(post(client, path, valid_item(path, timestamp="soon"), acme["developer"]), 400)
    assert error["details"] == {"timestamp": "Must be an ISO 8601 date-time."}


@pytest.mark.parametrize("path", SURFACES)
def test_every_bad_item_of_a_batch_is_reported(client, acme, path):
    batch = [valid_item(path, timestamp="soon"), valid_item(path), valid_item(path, timestamp=None)]
    error = assert_api_error(post(client, path, batch, acme["developer"]), 400)
    assert error["details"] == {
        "items[0].timestamp": "Must be an ISO 8601 date-time.",
        "items[2].timestamp": "Missing data for required field.",
    }


@pytest.mark.parametrize("path", SURFACES)
def test_timestamps_just_inside_the_clock_skew_and_the_retention_are_accepted(app, client, acme, path):
    batch = [valid_item(path, timestamp=stamp(240)), valid_item(path, timestamp=stamp(-89 * 86400))]
    created(post(client, path, batch, acme["developer"]), accepted=2)
    table = "agent_executions" if path == AGENTS else "productivity_metrics"
    assert query(app, f"SELECT COUNT(*) FROM {table}") == [(2,)]


def test_a_lone_surrogate_is_400_and_does_not_stall_ingestion(seeded_db, acme, tmp_path):
    databases.copy(seeded_db[0], tmp_path / "metrics.db")
    server = Server(tmp_path / "metrics.db", ack_timeout_seconds=0.5).start()
    try:
        headers = {**acme["developer"].headers, "Content-Type": "application/json"}
        raw = json.dumps(execution()).replace('"code-reviewer"', '"\\ud800"').encode()
        status, _, body = http("POST", server.url + AGENTS, raw=raw, headers=headers)
        assert status == 400, body
        status, _, body = http("POST", server.url + AGENTS, execution(), headers=headers)
        assert status == 201, body
    finally:
        server.stop(signal.SIGKILL)  # a stalled writer would hold a graceful stop for its whole timeout


# --- whose data it is ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "item"),
    [
        (AGENTS, lambda acme: execution(user_id=acme["manager"].user.id)),
        (AGENTS, lambda acme: execution(user_identifier=acme["admin"].user.email)),
        (PRODUCTIVITY, lambda acme: metric(user_id=acme["manager"].user.id)),
    ],
    ids=["agents user_id", "agents user_identifier", "productivity user_id"],
)
def test_a_developer_cannot_send_metrics_for_someone_else(app, client, acme, path, item):
    response = post(client, path, [valid_item(path), item(acme)], acme["developer"])
    error = assert_api_error(response, 403)
    assert error["details"] == {"items[1].user_id": "Outside your scope"}
    assert counts(app) == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize("path", SURFACES)
def test_a_manager_sends_for_their_teams_members_but_not_for_other_developers(app, client, acme, path):
    manager, developer = acme["manager"], acme["developer"].user
    make_team(app, developer.organization_id, "Platform", manager.user, developer)
    outsider = add_developer(app, developer.organization_id, "outsider@acme.test")

    created(post(client, path, valid_item(path, user_id=developer.id), manager), accepted=1)
    table = "agent_executions" if path == AGENTS else "productivity_metrics"
    assert query(app, f"SELECT user_id FROM {table}") == [(developer.id,)]

    error = assert_api_error(post(client, path, valid_item(path, user_id=outsider.id), manager), 403)
    assert error["details"] == {"user_id": "Outside your scope"}
    assert query(app, f"SELECT user_id FROM {table}") == [(developer.id,)]


def test_an_admin_sends_for_anyone_in_the_organization(app, client, acme):
    admin, developer, manager = acme["admin"], acme["developer"].user, acme["manager"].user
    created(post(client, PRODUCTIVITY, metric(user_id=developer.id), admin), accepted=1)
    batch = [execution(user_id=manager.id), execution(user_identifier=developer.email.upper())]
    created(post(client, AGENTS, batch, admin), accepted=2)
    assert query(app, "SELECT user_id FROM productivity_metrics") == [(developer.id,)]
    assert sorted(query(app, "SELECT user_id FROM agent_executions")) == sorted([(manager.id,), (developer.id,)])


def test_an_admin_metric_without_user_or_team_belongs_to_the_organization(app, client, acme):
    created(post(client, PRODUCTIVITY, metric(type="deployments", value=1), acme["admin"]), accepted=1)
    assert query(app, "SELECT organization_id, user_id, team_id FROM productivity_metrics") == [
        (acme["admin"].user.organization_id, None, None)
    ]
    assert query(app, "SELECT user_id, team_id, samples FROM productivity_hourly") == [("", "", 1)]


@pytest.mark.parametrize("path", SURFACES)
@pytest.mark.parametrize("role", ["admin", "developer"])
def test_a_user_id_of_another_organization_is_400(app, client, acme, globex, path, role):
    stranger = globex["developer"].user.id
    error = assert_api_error(post(client, path, valid_item(path, user_id=stranger), acme[role]), 400)
    assert error["details"] == {"user_id": "No such user in this organization"}
    assert counts(app) == dict.fromkeys(TABLES, 0)


def test_a_team_of_another_organization_is_400(app, client, acme, globex):
    theirs = make_team(app, globex["admin"].user.organization_id, "Their team", globex["developer"].user)
    error = assert_api_error(post(client, PRODUCTIVITY, metric(team_id=theirs), acme["admin"]), 400)
    assert error["details"] == {"team_id": "No such team in this organization"}
    assert counts(app) == dict.fromkeys(TABLES, 0)


def test_a_developer_tags_only_teams_they_belong_to(app, client, acme):
    developer = acme["developer"]
    org = developer.user.organization_id
    mine = make_team(app, org, "Mine", developer.user)
    other = make_team(app, org, "Other", acme["manager"].user)

    error = assert_api_error(post(client, PRODUCTIVITY, [metric(), metric(team_id=other)], developer), 403)
    assert error["details"] == {"items[1].team_id": "Not one of your teams"}
    assert counts(app) == dict.fromkeys(TABLES, 0)

    created(post(client, PRODUCTIVITY, metric(team_id=mine, user_id=developer.user.id), developer), accepted=1)
    assert query(app, "SELECT user_id, team_id FROM productivity_metrics") == [(developer.user.id, mine)]


# --- Idempotency-Key ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SURFACES)
def test_a_repeated_idempotency_key_and_body_is_stored_once(app, client, acme, path):
    batch = [valid_item(path), valid_item(path)]
    first = created(post(client, path, batch, acme["developer"], key="retry-1"), accepted=2)
    again = created(post(client, path, batch, acme["developer"], key="retry-1"), accepted=2)
    assert again["batch_id"] == first["batch_id"]
    table = "agent_executions" if path == AGENTS else "productivity_metrics"
    assert query(app, f"SELECT COUNT(*), COUNT(DISTINCT batch_id) FROM {table}") == [(2, 1)]


@pytest.mark.parametrize("path", SURFACES)
def test_an_idempotency_key_reused_with_another_body_is_409(app, client, acme, path):
    created(post(client, path, valid_item(path), acme["developer"], key="k"), accepted=1)
    before = counts(app)
    error = assert_api_error(post(client, path, [valid_item(path), valid_item(path)], acme["developer"], key="k"), 409)
    assert "Idempotency-Key" in error["message"]
    assert counts(app) == before


def test_an_idempotency_key_is_per_organization_and_per_surface(app, client, acme, globex):
    batch = metric()
    ours = created(post(client, PRODUCTIVITY, batch, acme["developer"], key="shared"), accepted=1)
    theirs = created(post(client, PRODUCTIVITY, batch, globex["developer"], key="shared"), accepted=1)
    assert theirs["batch_id"] != ours["batch_id"]
    created(post(client, AGENTS, execution(), acme["developer"], key="shared"), accepted=1)
    stored = query(app, "SELECT organization_id FROM productivity_metrics ORDER BY id")
    assert stored == [(acme["developer"].user.organization_id,), (globex["developer"].user.organization_id,)]
    assert query(app, "SELECT COUNT(*) FROM agent_executions") == [(1,)]


def test_two_users_with_the_same_idempotency_key_each_get_their_executions_stored(app, client, acme):
    run = execution()  # each sends its own run of the same agent: the same body, owned by the sender
    created(post(client, AGENTS, run, acme["developer"], key="run-1"), accepted=1)
    created(post(client, AGENTS, run, acme["manager"], key="run-1"), accepted=1)
    owners = {row[0] for row in query(app, "SELECT user_id FROM agent_executions")}
    assert owners == {acme["developer"].user.id, acme["manager"].user.id}


@pytest.mark.parametrize("path", SURFACES)
def test_an_idempotency_key_over_255_characters_is_400(app, client, acme, path):
    error = assert_api_error(post(client, path, valid_item(path), acme["developer"], key="k" * 256), 400)
    assert "Idempotency-Key" in error["details"]
    assert counts(app) == dict.fromkeys(TABLES, 0)
    created(post(client, path, valid_item(path), acme["developer"], key="k" * 255), accepted=1)


# --- /metrics ---------------------------------------------------------------------------------------

ROWS_RECEIVED = "weather_metrics_organization_rows_received_total"


def test_metrics_count_committed_rows_by_kind_but_not_replays_or_refused_batches(client, acme):
    series = {
        "agents": {"kind": "agent_executions", "surface": "api"},
        "productivity": {"kind": "productivity_metrics", "surface": "api"},
        "collect": {"kind": "agent_executions", "surface": "mcp"},
    }
    before = {name: scraped(client, ROWS_RECEIVED, labels) for name, labels in series.items()}
    batch = [execution(), execution()]
    created(post(client, AGENTS, batch, acme["developer"], key="counted-1"), accepted=2)
    created(post(client, AGENTS, batch, acme["developer"], key="counted-1"), accepted=2)  # a replay
    assert_api_error(post(client, AGENTS, [execution(), execution(success="yes")], acme["developer"]), 400)
    created(post(client, PRODUCTIVITY, metric(), acme["developer"]), accepted=1)
    # The writer counts each commit in turn: once the productivity row is counted, the executions are.
    scraped(client, ROWS_RECEIVED, series["productivity"], expect=before["productivity"] + 1)
    after = {name: scraped(client, ROWS_RECEIVED, labels) for name, labels in series.items()}
    assert after == {
        "agents": before["agents"] + 2,
        "productivity": before["productivity"] + 1,
        "collect": before["collect"],
    }


# --- rate limits -----------------------------------------------------------------------------------

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def test_the_ingest_rate_limit_counts_per_organization(service, acme, globex):
    app = service(metrics_ingest_rate_limit="3 per hour")
    client = app.test_client()
    for member in (acme["developer"], acme["developer"], acme["manager"]):
        created(post(client, PRODUCTIVITY, metric(), member), accepted=1)

    before = counts(app)
    response = post(client, PRODUCTIVITY, metric(), acme["admin"])  # another user: the same budget
    assert_api_error(response, 429)
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > time.time()
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    assert response.headers["X-RateLimit-Retry-After"] == response.headers["Retry-After"]
    assert counts(app) == before

    created(post(client, PRODUCTIVITY, metric(), globex["developer"]), accepted=1)


def test_agents_and_productivity_share_the_organization_budget(service, acme):
    app = service(metrics_ingest_rate_limit="3 per hour")
    client = app.test_client()
    for member, path in ((acme["developer"], PRODUCTIVITY), (acme["manager"], AGENTS), (acme["admin"], PRODUCTIVITY)):
        created(post(client, path, valid_item(path), member), accepted=1)
    assert_api_error(post(client, AGENTS, execution(), acme["developer"]), 429)


def test_the_per_user_api_rate_limit_does_not_apply_to_ingestion(service, acme):
    app = service(api_rate_limit="2 per hour", metrics_ingest_rate_limit="100 per hour")
    client = app.test_client()
    developer = acme["developer"]
    for path in (AGENTS, PRODUCTIVITY, AGENTS, PRODUCTIVITY):
        response = post(client, path, valid_item(path), developer)
        created(response, accepted=1)
        assert response.headers["X-RateLimit-Limit"] == "100"
    # The per-user limit is live for the rest of /api.
    statuses = [client.get("/api/organization", headers=developer.headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


# --- backpressure --------------------------------------------------------------------------------


def assert_unavailable(response: TestResponse, retry_after: int) -> str:
    """A 503 with the error body and Retry-After; returns the message."""
    assert response.status_code == 503, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details", "timestamp", "request_id"}
    assert error["code"] == "SERVICE_UNAVAILABLE"
    assert error["details"] == {"retry_after": retry_after}
    assert int(response.headers["Retry-After"]) > 0
    return error["message"]  # type: ignore[no-any-return]


def test_a_blocked_writer_answers_202_pending_or_503_and_a_withdrawn_batch_is_never_stored(service, acme, tmp_path):
    app = service(ack_timeout_seconds=0.5, retry_after_seconds=2)
    client = app.test_client()
    developer, focus = acme["developer"], metric(type="focus_minutes", value=25)
    # Hold the write lock: the writer stalls on the first batch it takes.
    with databases.holding_write_lock(tmp_path / "metrics.db"):
        # The writer has taken this batch and is waiting for the lock: it cannot be withdrawn and will
        # be stored, so the answer is 202 "pending", never a 503 that would invite a duplicate.
        taken = post(client, PRODUCTIVITY, focus, developer, key="focus-1")
        assert taken.status_code == 202, taken.get_data(as_text=True)
        assert taken.get_json()["status"] == "pending" and taken.get_json()["batch_id"]
        # This one waits in the queue behind it, and is taken back when its time is up.
        queued = post(client, AGENTS, execution(agent_name="withdrawn"), developer)
        assert "not stored" in assert_unavailable(queued, 2)

    created(post(client, AGENTS, execution(agent_name="after"), developer), accepted=1)  # queued after the others
    assert query(app, "SELECT agent_name FROM agent_executions") == [("after",)]
    assert query(app, "SELECT metric_type, value FROM productivity_metrics") == [("focus_minutes", 25.0)]
    # Retrying the batch whose outcome was unknown, with its key, stores nothing twice.
    created(post(client, PRODUCTIVITY, focus, developer, key="focus-1"), accepted=1)
    assert query(app, "SELECT COUNT(*) FROM productivity_metrics") == [(1,)]


def test_a_503_tells_the_client_to_retry_after_retry_after_seconds(service, acme):
    # The limiter would put its window's reset (up to an hour) into Retry-After.
    app = service(retry_after_seconds=2)
    client = app.test_client()
    created(post(client, PRODUCTIVITY, metric(), acme["developer"]), accepted=1)
    app.extensions["weather_metrics"].writer.close()  # the writer takes nothing more: 503
    response = post(client, PRODUCTIVITY, [metric()] * 101, acme["developer"])
    assert "writer has stopped" in assert_unavailable(response, 2)
    assert counts(app)["productivity_metrics"] == 1
    assert response.headers["Retry-After"] == "2"


# --- attribution rules ---------------------------------------------------------------------------


def test_user_id_must_be_an_id_not_an_email(app, client, acme):
    developer = acme["developer"].user
    error = assert_api_error(post(client, PRODUCTIVITY, [metric(user_id=developer.email)], acme["admin"]), 400)
    assert error["details"] == {"items[0].user_id": "No such user in this organization"}
    assert counts(app)["productivity_metrics"] == 0
    created(post(client, PRODUCTIVITY, metric(user_id=developer.id), acme["admin"]), accepted=1)
    assert query(app, "SELECT user_id FROM productivity_metrics") == [(developer.id,)]


def test_a_metric_names_a_team_only_of_its_user(app, client, acme):
    """Else a manager of two teams could show one team's manager data of someone outside it."""
    org = acme["admin"].user.organization_id
    outsider = add_developer(app, org, "x@acme.test")
    inside = make_team(app, org, "A", acme["manager"].user, outsider)
    other = make_team(app, org, "B", acme["manager"].user)
    for member in (acme["manager"], acme["admin"]):
        error = assert_api_error(post(client, PRODUCTIVITY, [metric(user_id=outsider.id, team_id=other)], member), 400)
        assert error["details"] == {"items[0].team_id": "The user is not a member of this team"}
    assert counts(app)["productivity_metrics"] == 0
    created(post(client, PRODUCTIVITY, metric(user_id=outsider.id, team_id=inside), acme["manager"]), accepted=1)


def test_a_signed_in_sender_cannot_attribute_executions_to_nobody(app, client, acme):
    """An unmatched user_identifier is kept from MCP servers, but a user would change organization totals."""
    response = post(client, AGENTS, [execution(user_identifier="nobody@elsewhere.example")], acme["developer"])
    error = assert_api_error(response, 400)
    assert error["details"] == {"items[0].user_identifier": "No such user in this organization"}
    assert counts(app)["agent_executions"] == 0
    mine = execution(user_identifier=acme["developer"].user.email.upper())
    created(post(client, AGENTS, mine, acme["developer"]), accepted=1)
    assert query(app, "SELECT user_id FROM agent_executions") == [(acme["developer"].user.id,)]


def test_a_logged_out_token_does_not_spend_the_organization_budget(service, acme):
    app = service(metrics_ingest_rate_limit="3 per hour")
    client = app.test_client()
    with app.app_context():  # a session of its own, so the seeded tokens stay valid
        tokens = app.extensions["weather_metrics"].tokens.start_session(acme["developer"].user).as_dict()
    stale = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.post("/api/auth/logout", headers=stale).status_code == 204
    statuses = [client.post(AGENTS, json=[execution()], headers=stale).status_code for _ in range(3)]
    assert statuses == [401] * 3  # counted against the caller's address, not Acme
    for _ in range(3):
        created(post(client, AGENTS, execution(), acme["admin"]), accepted=1)
    assert_api_error(post(client, AGENTS, execution(), acme["admin"]), 429)
