"""/mcp: agent executions from MCP servers with an organization API key, and their configuration."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, TestResponse

from tests.support import TEST_JWT_SECRET, Member, assert_api_error, scraped, seed_org, seeded_database
from weather_metrics.store.db import database

COLLECT = "/mcp/metrics/collect"
TABLES = ("agent_executions", "agent_hourly", "agent_user_hourly")


@dataclass
class Org:
    """A seeded organization: its members and two API keys (id, prefix, secret)."""

    members: dict[str, Member]
    keys: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return self.members["admin"].user.organization_id  # type: ignore[no-any-return]

    def key_headers(self, index: int = 0) -> dict[str, str]:
        return {"X-API-Key": self.keys[index]["secret"]}


def stamp(seconds: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def execution(**overrides: Any) -> dict[str, Any]:
    """A valid execution as an MCP server sends it; a value of None removes the field."""
    item = {
        "session_id": "sess-1",
        "agent_name": "test-runner",
        "command": "pytest -q",
        "execution_time_ms": 850,
        "success": True,
        "error_details": None,
        "metadata": {"client": "claude-code"},
        "timestamp": stamp(-30),
        **overrides,
    }
    return {k: v for k, v in item.items() if v is not None}


def collect(client: FlaskClient, body: Any, headers: dict[str, str], key: str | None = None) -> TestResponse:
    headers = dict(headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(COLLECT, json=body, headers=headers)


def created(response: TestResponse, accepted: int) -> dict[str, Any]:
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"status", "batch_id", "accepted", "received_at"}, body
    assert body["status"] == "accepted" and body["accepted"] == accepted, body
    assert abs(datetime.fromisoformat(body["received_at"]).timestamp() - time.time()) < 60, body
    return body  # type: ignore[no-any-return]


def query(app: Flask, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with app.app_context():
        return list(database.execute_sql(sql, params).fetchall())


def counts(app: Flask) -> dict[str, int]:
    return {table: query(app, f"SELECT COUNT(*) FROM {table}")[0][0] for table in TABLES}


NOTHING = dict.fromkeys(TABLES, 0)


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Org]]:
    """A database file with two organizations, each with members and two API keys."""

    def seed(app: Flask) -> dict[str, Org]:
        client, orgs = app.test_client(), {}
        for name in ("Acme", "Globex"):
            members = seed_org(app, name)
            keys = []
            for key_name in ("mcp-1", "mcp-2"):
                response = client.post("/api/keys", json={"name": key_name}, headers=members["admin"].headers)
                assert response.status_code == 201, response.get_json()
                keys.append(response.get_json())
            orgs[name.lower()] = Org(members, keys)
        return orgs

    path = tmp_path_factory.mktemp("seeded") / "metrics.db"
    return path, seeded_database(path, seed)


@pytest.fixture
def app(service: Callable[..., Flask]) -> Flask:
    return service()


@pytest.fixture
def acme(seeded_db) -> Org:
    return seeded_db[1]["acme"]  # type: ignore[no-any-return]


@pytest.fixture
def globex(seeded_db) -> Org:
    return seeded_db[1]["globex"]  # type: ignore[no-any-return]


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["X-API-Key", "Bearer", "bearer"])
def test_collect_takes_the_key_as_x_api_key_or_bearer_token(app, client, acme, style):
    secret = acme.keys[0]["secret"]
    headers = {"X-API-Key": secret} if style == "X-API-Key" else {"Authorization": f"{style} {secret}"}
    answer = created(collect(client, [execution(), execution(success=False)], headers), accepted=2)
    rows = query(app, "SELECT organization_id, batch_id, agent_name, success FROM agent_executions ORDER BY success")
    assert rows == [(acme.id, answer["batch_id"], "test-runner", 0), (acme.id, answer["batch_id"], "test-runner", 1)]
    assert query(app, "SELECT organization_id, success, calls FROM agent_hourly ORDER BY success") == [
        (acme.id, 0, 1),
        (acme.id, 1, 1),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        lambda org: {},
        lambda org: {"X-API-Key": "wm_" + "A" * 43},
        lambda org: {"X-API-Key": org.keys[0]["secret"][:-1]},
        lambda org: {"X-API-Key": "not-a-key"},
        lambda org: {"Authorization": "Bearer wm_" + "A" * 43},
        lambda org: {"Authorization": "Basic " + org.keys[0]["secret"]},
        lambda org: org.members["admin"].headers,
        lambda org: {"X-API-Key": org.members["admin"].headers["Authorization"].split()[1]},
    ],
    ids=[
        "no key",
        "unknown key",
        "truncated key",
        "not a key",
        "unknown bearer key",
        "basic scheme",
        "access token as bearer",
        "access token as x-api-key",
    ],
)
def test_collect_without_a_live_api_key_is_401_and_stores_nothing(app, client, acme, headers):
    assert_api_error(collect(client, execution(), headers(acme)), 401)
    assert counts(app) == NOTHING


def test_a_revoked_key_is_401_while_the_other_keys_still_work(app, client, acme):
    revoked, kept = acme.keys
    response = client.delete(f"/api/keys/{revoked['id']}", headers=acme.members["admin"].headers)
    assert response.status_code == 204
    assert_api_error(collect(client, execution(), {"X-API-Key": revoked["secret"]}), 401)
    assert_api_error(collect(client, execution(), {"Authorization": f"Bearer {revoked['secret']}"}), 401)
    assert counts(app) == NOTHING
    created(collect(client, execution(), {"X-API-Key": kept["secret"]}), accepted=1)


def test_collect_sets_last_used_at_of_the_key_that_sent(app, client, acme):
    admin = acme.members["admin"].headers
    # A key made here: the writer stamps a key at most once a minute, and the seeded keys' ids recur in every test.
    fresh = client.post("/api/keys", json={"name": "deploy-bot"}, headers=admin).get_json()

    def last_used() -> dict[str, Any]:
        response = client.get("/api/keys", headers=admin)
        return {key["id"]: key["last_used_at"] for key in response.get_json()["keys"]}

    assert set(last_used().values()) == {None}
    created(collect(client, execution(), {"Authorization": f"Bearer {fresh['secret']}"}), accepted=1)
    used = last_used()
    assert abs(datetime.fromisoformat(used.pop(fresh["id"])).timestamp() - time.time()) < 60
    assert set(used.values()) == {None}  # the organization's other keys were not used


# --- whose executions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier",
    [
        lambda dev: dev.email,
        lambda dev: dev.email.upper(),
        lambda dev: dev.email.title(),
        lambda dev: dev.id,
    ],
    ids=["email", "upper-case email", "mixed-case email", "user id"],
)
def test_a_user_identifier_of_the_organization_maps_to_the_user(app, client, acme, identifier):
    developer = acme.members["developer"].user
    sent = identifier(developer)
    created(collect(client, execution(user_identifier=sent), acme.key_headers()), accepted=1)
    assert query(app, "SELECT user_id, user_identifier FROM agent_executions") == [(developer.id, sent)]
    assert query(app, "SELECT user_id, calls FROM agent_user_hourly") == [(developer.id, 1)]


@pytest.mark.parametrize(
    "identifier",
    [
        lambda globex: "laptop-7@ci.internal",
        lambda globex: "someone",
        lambda globex: globex.members["developer"].user.email,
        lambda globex: globex.members["developer"].user.id,
    ],
    ids=["unknown email", "unknown name", "email of another organization", "id of another organization"],
)
def test_an_unknown_or_foreign_user_identifier_is_kept_without_a_user(app, client, acme, globex, identifier):
    sent = identifier(globex)
    created(collect(client, execution(user_identifier=sent), acme.key_headers()), accepted=1)
    assert query(app, "SELECT organization_id, user_id, user_identifier FROM agent_executions") == [
        (acme.id, None, sent)
    ]
    assert query(app, "SELECT calls FROM agent_hourly") == [(1,)]
    assert query(app, "SELECT COUNT(*) FROM agent_user_hourly") == [(0,)]


def test_an_execution_without_user_identifier_has_no_user(app, client, acme):
    created(collect(client, execution(), acme.key_headers()), accepted=1)
    assert query(app, "SELECT user_id, user_identifier FROM agent_executions") == [(None, None)]


def test_a_user_id_of_another_organization_is_400(app, client, acme, globex):
    stranger = globex.members["developer"].user.id
    batch = [execution(user_id=acme.members["developer"].user.id), execution(user_id=stranger)]
    error = assert_api_error(collect(client, batch, acme.key_headers()), 400)
    assert error["details"] == {"items[1].user_id": "No such user in this organization"}
    assert counts(app) == NOTHING


def test_each_key_sends_for_its_own_organization(app, client, acme, globex):
    created(collect(client, execution(agent_name="ours"), acme.key_headers()), accepted=1)
    created(collect(client, execution(agent_name="theirs"), globex.key_headers()), accepted=1)
    assert sorted(query(app, "SELECT organization_id, agent_name FROM agent_executions")) == sorted(
        [(acme.id, "ours"), (globex.id, "theirs")]
    )


# --- rate limit --------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_minute_window")
def test_the_rate_limit_counts_per_organization_across_its_keys(service, acme, globex):
    app = service(mcp_rate_limit="3 per minute")
    client = app.test_client()
    for index in (0, 0, 1):
        created(collect(client, execution(), acme.key_headers(index)), accepted=1)
    before = counts(app)
    response = collect(client, execution(), acme.key_headers(1))
    assert_api_error(response, 429)
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > time.time()
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Retry-After"] == response.headers["Retry-After"]
    assert counts(app) == before

    response = collect(client, execution(), globex.key_headers())
    created(response, accepted=1)
    assert response.headers["X-RateLimit-Remaining"] == "2"


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "details"),
    [
        (b"[]", {"_body": "Must contain between 1 and 1000 items"}),
        (b'"run"', {}),
        (b"3.5", {}),
        (b"true", {}),
        (b'[{"agent_name": "x"', {}),
        (b"", {}),
        (b"[1, []]", {"items[0]": "Must be an object.", "items[1]": "Must be an object."}),
    ],
    ids=["empty array", "string", "number", "boolean", "truncated", "empty body", "non-object items"],
)
def test_a_body_that_is_not_executions_is_400(app, client, acme, raw, details):
    headers = {**acme.key_headers(), "Content-Type": "application/json"}
    error = assert_api_error(client.post(COLLECT, data=raw, headers=headers), 400)
    assert error["details"] == details
    assert counts(app) == NOTHING


FIELD_CASES = [
    ({"success": "yes"}, "success", "Must be a boolean."),
    ({"success": 0}, "success", "Must be a boolean."),
    ({"execution_time_ms": False}, "execution_time_ms", "Must be a finite number."),
    ({"execution_time_ms": "850"}, "execution_time_ms", "Must be a finite number."),
    ({"agent_name": ["a"]}, "agent_name", "Must be a string."),
    ({"user_identifier": 42}, "user_identifier", "Must be a string."),
    ({"error_details": {"msg": "x"}}, "error_details", "Must be a string."),
    ({"metadata": "k=v"}, "metadata", "Must be an object."),
    ({"command": None}, "command", "Missing data for required field."),
    ({"session_id": "s" * 129}, "session_id", "Length must be between 1 and 128."),
    ({"organization_id": "x"}, "organization_id", "Unknown field."),
    ({"timestamp": "2025-02-30T00:00:00Z"}, "timestamp", "Must be an ISO 8601 date-time."),
]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    FIELD_CASES,
    ids=[f"{next(iter(change))}={next(iter(change.values()))!r}"[:40] for change, _, _ in FIELD_CASES],
)
def test_a_bad_field_is_400_naming_the_item(app, client, acme, change, field, message):
    error = assert_api_error(collect(client, [execution(), execution(**change)], acme.key_headers()), 400)
    assert error["details"] == {f"items[1].{field}": message}
    assert counts(app) == NOTHING


def test_timestamps_in_the_future_or_past_retention_are_400(app, client, acme):
    batch = [execution(timestamp=stamp(400)), execution(timestamp=stamp(200)), execution(timestamp=stamp(-91 * 86400))]
    error = assert_api_error(collect(client, batch, acme.key_headers()), 400)
    assert error["details"] == {
        "items[0].timestamp": "Must not be in the future (beyond the allowed clock skew).",
        "items[2].timestamp": "Older than the retention period.",
    }
    assert counts(app) == NOTHING


def test_more_items_than_metrics_max_items_is_400(service, acme):
    app = service(metrics_max_items=5)
    client = app.test_client()
    error = assert_api_error(collect(client, [execution()] * 6, acme.key_headers()), 400)
    assert error["details"] == {"_body": "Must contain between 1 and 5 items"}
    assert counts(app) == NOTHING
    created(collect(client, [execution()] * 5, acme.key_headers()), accepted=5)


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "no content-length"])
def test_a_body_over_metrics_max_body_bytes_is_413(service, acme, content_length):
    app = service(metrics_max_body_bytes=1024)
    client = app.test_client()

    def send(raw: bytes) -> TestResponse:
        headers = {**acme.key_headers(), "Content-Type": "application/json"}
        builder = EnvironBuilder(path=COLLECT, method="POST", input_stream=io.BytesIO(raw), headers=headers)
        environ = builder.get_environ()
        if not content_length:
            del environ["CONTENT_LENGTH"]  # as a chunked upload arrives
            environ["wsgi.input_terminated"] = True
        return client.open(environ)

    assert_api_error(send(json.dumps([execution(command="x" * 600)] * 2).encode()), 413)
    assert counts(app) == NOTHING
    created(send(json.dumps(execution()).encode()), accepted=1)


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_a_repeated_idempotency_key_and_body_is_stored_once(app, client, acme):
    batch = [execution(), execution(agent_name="linter")]
    first = created(collect(client, batch, acme.key_headers(0), key="flush-0042"), accepted=2)
    again = created(collect(client, batch, acme.key_headers(1), key="flush-0042"), accepted=2)  # another key, same org
    assert again["batch_id"] == first["batch_id"]
    assert query(app, "SELECT COUNT(*), COUNT(DISTINCT batch_id) FROM agent_executions") == [(2, 1)]


def test_an_idempotency_key_reused_with_another_body_is_409(app, client, acme):
    created(collect(client, execution(), acme.key_headers(), key="flush-1"), accepted=1)
    error = assert_api_error(collect(client, execution(agent_name="other"), acme.key_headers(), key="flush-1"), 409)
    assert "Idempotency-Key" in error["message"]
    assert query(app, "SELECT agent_name FROM agent_executions") == [("test-runner",)]


def test_another_organization_may_use_the_same_idempotency_key(app, client, acme, globex):
    batch = execution()
    ours = created(collect(client, batch, acme.key_headers(), key="flush-1"), accepted=1)
    theirs = created(collect(client, batch, globex.key_headers(), key="flush-1"), accepted=1)
    assert ours["batch_id"] != theirs["batch_id"]
    assert sorted(query(app, "SELECT organization_id FROM agent_executions")) == sorted([(acme.id,), (globex.id,)])


def test_an_idempotency_key_over_255_characters_is_400(app, client, acme):
    error = assert_api_error(collect(client, execution(), acme.key_headers(), key="k" * 256), 400)
    assert "Idempotency-Key" in error["details"]
    assert counts(app) == NOTHING


def test_metrics_count_collected_rows_as_the_mcp_surface_and_a_replay_not_again(client, acme):
    series = "weather_metrics_organization_rows_received_total"
    mcp, api = ({"kind": "agent_executions", "surface": surface} for surface in ("mcp", "api"))
    before = {"mcp": scraped(client, series, mcp), "api": scraped(client, series, api)}
    batch = [execution(), execution(), execution()]
    created(collect(client, batch, acme.key_headers(0), key="counted-1"), accepted=3)
    created(collect(client, batch, acme.key_headers(1), key="counted-1"), accepted=3)  # a replay
    created(collect(client, execution(), acme.key_headers(0)), accepted=1)
    assert scraped(client, series, mcp, expect=before["mcp"] + 4) == before["mcp"] + 4
    assert scraped(client, series, api) == before["api"]


def test_a_503_tells_the_mcp_server_to_retry_after_retry_after_seconds(service, acme):
    # The limiter would put its window's reset (up to an hour) into Retry-After.
    app = service(retry_after_seconds=2, mcp_rate_limit="10000 per hour")
    client = app.test_client()
    created(collect(client, execution(), acme.key_headers()), accepted=1)
    app.extensions["weather_metrics"].writer.close()  # the writer takes nothing more: 503
    response = collect(client, [execution()] * 101, acme.key_headers())
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert counts(app)["agent_executions"] == 1
    assert response.headers["Retry-After"] == "2"


# --- GET /mcp/config/<organization_id> ---------------------------------------------------------

CONFIG_SETTINGS = {
    "metrics_max_items": 7,
    "metrics_max_body_bytes": 4096,
    "clock_skew_seconds": 120,
    "retention_days": 30,
    "mcp_rate_limit": "50 per minute",
}


def assert_config(response: TestResponse, org: Org) -> dict[str, Any]:
    """The configuration of `org` with the numbers of CONFIG_SETTINGS and no secret; returns it."""
    assert response.status_code == 200, response.get_data(as_text=True)
    config = response.get_json()
    assert config["organization_id"] == org.id and config["organization_name"] == "Acme"
    assert config["endpoints"]["collect"].endswith(COLLECT)
    assert config["batching"]["max_items_per_request"] == 7
    assert config["batching"]["max_body_bytes"] == 4096
    assert config["rate_limits"] == {"collect": "50 per minute per organization"}
    limits = config["fields"]["limits"]
    assert limits["timestamp_max_future_seconds"] == 120 and limits["timestamp_max_age_days"] == 30
    assert sorted(config["fields"]["required"]) == [
        "agent_name",
        "command",
        "execution_time_ms",
        "success",
        "timestamp",
    ]
    text = response.get_data(as_text=True)
    for key in org.keys:
        assert key["secret"] not in text
        assert key["secret"][11:] not in text
    assert TEST_JWT_SECRET not in text
    return config  # type: ignore[no-any-return]


@pytest.mark.parametrize("index", [0, 1])
def test_config_with_an_api_key_shows_the_settings_and_the_key_prefix_only(service, acme, index):
    client = service(**CONFIG_SETTINGS).test_client()
    response = client.get(f"/mcp/config/{acme.id}", headers=acme.key_headers(index))
    config = assert_config(response, acme)
    assert config["authentication"]["key_prefix"] == acme.keys[index]["prefix"]


@pytest.mark.parametrize("role", ["admin", "manager", "developer"])
def test_config_with_an_access_token_of_the_organization(service, acme, role):
    client = service(**CONFIG_SETTINGS).test_client()
    config = assert_config(client.get(f"/mcp/config/{acme.id}", headers=acme.members[role].headers), acme)
    assert config["authentication"]["key_prefix"] is None
    for key in acme.keys:
        assert key["prefix"] not in json.dumps(config)


@pytest.mark.parametrize(
    "headers",
    [lambda org: org.key_headers(), lambda org: org.members["admin"].headers],
    ids=["api key", "access token"],
)
def test_config_of_another_or_unknown_organization_is_404(app, client, acme, globex, headers):
    for org_id in (globex.id, "00000000-0000-0000-0000-000000000000"):
        error = assert_api_error(client.get(f"/mcp/config/{org_id}", headers=headers(acme)), 404)
        assert "Globex" not in json.dumps(error)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wm_" + "B" * 43}, {"Authorization": "Bearer not-a-token"}],
    ids=["none", "unknown key", "bad token"],
)
def test_config_without_credentials_is_401(app, client, acme, headers):
    assert_api_error(client.get(f"/mcp/config/{acme.id}", headers=headers), 401)


def test_a_revoked_key_cannot_read_the_config(app, client, acme):
    revoked = acme.keys[0]
    assert client.delete(f"/api/keys/{revoked['id']}", headers=acme.members["admin"].headers).status_code == 204
    assert_api_error(client.get(f"/mcp/config/{acme.id}", headers=acme.key_headers(0)), 401)
